#!/usr/bin/env python3
"""sigstore-python (in-process Verifier.verify_artifact) over a list of bundles.

Usage: sigstore_python_bench.py MANIFEST.json SECONDS
MANIFEST: {"trusted_root": path, "identity": san, "issuer": iss,
           "items": [{"bundle": path, "artifact": path | null, "identity": san?, "issuer": iss?}]}
DSSE bundles are verified by their statement (no artifact); an item's identity overrides the default.
Prints one JSON line: {"impl": "sigstore-python", "bundles_per_s": ..., "verified": n, "rounds": r}.
"""
import json, sys, time, hashlib
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity
from sigstore._internal.rekor.client import RekorClient  # noqa: F401 (imported for side effects)

man = json.load(open(sys.argv[1]))
seconds = float(sys.argv[2])
verifier = Verifier(trusted_root=TrustedRoot.from_file(man["trusted_root"]))
items = []
unsupported = []
for it in man["items"]:
    try:
        b = Bundle.from_json(open(it["bundle"], "rb").read())
    except Exception as e:  # e.g. v0.1 bundles without an inclusion proof (sigstore-python 4 requires one)
        unsupported.append({"bundle": it["bundle"], "error": " ".join(l.strip() for l in str(e).splitlines()[:3])})
        continue
    data = open(it["artifact"], "rb").read() if it.get("artifact") else None
    policy = Identity(identity=it.get("identity") or man["identity"], issuer=it.get("issuer") or man["issuer"])
    items.append((it["bundle"], b, data, policy))


def verify(b, data, policy):
    if b._dsse_envelope is not None:
        verifier.verify_dsse(b, policy)
    else:
        verifier.verify_artifact(data, b, policy)


# every bundle must verify once before timing; what it cannot verify is reported, not timed
ok = []
for name, b, data, policy in items:
    try:
        verify(b, data, policy)
        ok.append((name, b, data, policy))
    except Exception as e:
        unsupported.append({"bundle": name, "error": str(e).splitlines()[0]})
items = ok
if not items:
    print(json.dumps({"impl": "sigstore-python", "bundles_per_s": None, "verified": 0, "unsupported": unsupported}))
    sys.exit(0)
n = 0
start = time.perf_counter()
while time.perf_counter() - start < seconds:
    for name, b, data, policy in items:
        # parse inside the loop too: the other implementations parse each time
        verify(Bundle.from_json(b.to_json()), data, policy)
        n += 1
el = time.perf_counter() - start
print(json.dumps({"impl": "sigstore-python", "bundles_per_s": n / el, "verified": n, "seconds": el, "unsupported": unsupported}))
