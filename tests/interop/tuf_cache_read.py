#!/usr/bin/env python3
"""python-tuf (an independent TUF client) takes over a TUF client cache another client wrote.

Usage: tuf_cache_read.py METADATA_DIR BASE_URL TARGET

Starts from the cache's own root.json (no bootstrap root: python-tuf must accept the cache as its
trusted state), refreshes against BASE_URL, and looks TARGET up in the cache's targets/ directory
(find_cached_target checks its length and hashes against the verified metadata) without
downloading it. Prints {"target", "sha256", "root_version", "timestamp_version", "cached"};
exits non-zero when python-tuf rejects the cache's metadata or the cached target.
"""
import hashlib, json, os, sys
from tuf.ngclient import Updater

meta, base, target = sys.argv[1:4]
u = Updater(metadata_dir=meta, metadata_base_url=base.rstrip("/") + "/",
            target_base_url=base.rstrip("/") + "/targets/", target_dir=os.path.join(meta, "targets"), bootstrap=None)
u.refresh()
info = u.get_targetinfo(target)
if info is None:
    sys.exit(f"target {target} not found")
path = u.find_cached_target(info)
if path is None:
    sys.exit(f"python-tuf does not accept the cached {target}")
data = open(path, "rb").read()
print(json.dumps({"target": target, "sha256": hashlib.sha256(data).hexdigest(), "cached": True,
                  "root_version": u._trusted_set.root.version,
                  "timestamp_version": u._trusted_set.timestamp.version}))
