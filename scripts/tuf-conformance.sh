#!/usr/bin/env bash
# Run theupdateframework/tuf-conformance against trustmirror's TUF client, offline.
# Usage: scripts/tuf-conformance.sh PATH_TO_TUF_CONFORMANCE_CHECKOUT [pytest args...]
# The suite is not on PyPI; get a checkout yourself (never commit it). Runs inside a new network
# namespace with only loopback when `unshare -n` is permitted, to prove no outside access.
set -euo pipefail
suite=${1:?usage: $0 PATH_TO_TUF_CONFORMANCE [pytest args]}; shift
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/.ci/install"
py=${TM_TOOLS:-$HOME/.cache/trustmirror-tools}/venv/bin/python
(cd "$here" && cargo build --release --bin trustmirror)
export TRUSTMIRROR_BIN=${CARGO_TARGET_DIR:-$here/target}/release/trustmirror
cmd=(env -C "$suite" "$py" -m pytest tuf_conformance --entrypoint "$here/tests/conformance/tuf-client" -p no:cacheprovider -q "$@")
if unshare -n true 2>/dev/null; then
  echo "running offline in a new network namespace (loopback only)" >&2
  exec unshare -n sh -c 'ip link set lo up 2>/dev/null || true; exec "$@"' sh "${cmd[@]}"
fi
exec "${cmd[@]}"
