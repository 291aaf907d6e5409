#!/usr/bin/env bash
# Run sigstore/sigstore-conformance's offline verification tests against trustmirror, offline.
# Usage: scripts/sigstore-conformance.sh PATH_TO_SIGSTORE_CONFORMANCE [pytest args...]
# The suite is not on PyPI; get a checkout yourself (never commit it). Runs in a new network
# namespace (loopback only) when `unshare -n` is permitted. No expected failures are configured.
set -euo pipefail
suite=$(cd "${1:?usage: $0 PATH_TO_SIGSTORE_CONFORMANCE [pytest args]}" && pwd); shift
here=$(cd "$(dirname "$0")/.." && pwd)
tools=${TM_TOOLS:-$HOME/.cache/trustmirror-tools}
venv=$tools/sigstore-conformance-venv
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check -r "$suite/requirements.txt"
fi
(cd "$here" && cargo build --release --bin trustmirror)
export TRUSTMIRROR_BIN=${CARGO_TARGET_DIR:-$here/target}/release/trustmirror
export PYTHONPATH="$here/tests/conformance${PYTHONPATH:+:$PYTHONPATH}"
unset GHA_SIGSTORE_CONFORMANCE_XFAIL
cmd=(env -C "$suite" "$venv/bin/pytest" test/test_bundle.py::test_verify --skip-signing -p offline_token
     --entrypoint "$here/tests/conformance/sigstore-client" -p no:cacheprovider -q "$@")
if unshare -n true 2>/dev/null; then
  echo "running offline in a new network namespace (loopback only)" >&2
  exec unshare -n sh -c 'ip link set lo up 2>/dev/null || true; exec "$@"' sh "${cmd[@]}"
fi
exec "${cmd[@]}"
