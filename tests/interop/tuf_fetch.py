#!/usr/bin/env python3
"""python-tuf ngclient (an independent TUF implementation) fetches targets through a mirror.

Usage: tuf_fetch.py BASE_URL INITIAL_ROOT CACHE_DIR TARGET [TARGET ...]
Prints one JSON line per target: {"target", "sha256", "length", "root_version", "timestamp_version"}.
Exits non-zero (with python-tuf's exception) when any step of the TUF workflow fails.
"""
import hashlib, json, os, sys
from tuf.ngclient import Updater

base, root, cache = sys.argv[1:4]
targets = sys.argv[4:]
out = os.path.join(cache, "targets")
os.makedirs(cache, exist_ok=True)
os.makedirs(out, exist_ok=True)
u = Updater(metadata_dir=cache, metadata_base_url=base.rstrip("/") + "/",
            target_base_url=base.rstrip("/") + "/targets/", target_dir=out,
            bootstrap=open(root, "rb").read())
u.refresh()
for t in targets:
    info = u.get_targetinfo(t)
    if info is None:
        sys.exit(f"target {t} not found")
    path = u.find_cached_target(info) or u.download_target(info)
    data = open(path, "rb").read()
    print(json.dumps({"target": t, "sha256": hashlib.sha256(data).hexdigest(), "length": len(data),
                      "root_version": u._trusted_set.root.version,
                      "timestamp_version": u._trusted_set.timestamp.version}))
