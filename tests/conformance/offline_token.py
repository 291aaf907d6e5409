"""pytest plugin for running sigstore-conformance offline (`-p offline_token`).

The suite's `identity_token` fixture downloads a real OIDC token with urllib3 even for verify-only
tests, which never use it. Loaded before the suite's conftest, this plugin replaces
`urllib3.request` (which the conftest imports by name) with a stub that answers that one URL with
an unsigned, well-formed JWT and refuses everything else.
"""
import base64
import json
import time

import urllib3

TOKEN_URL = "https://storage.googleapis.com/sigstore-conformance-testing-token/untrusted-testing-token.txt"


def _b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")


class _Resp:
    def __init__(self, data: bytes):
        self.data = data
        self.status = 200


def _offline_request(method, url, *args, **kwargs):
    if url != TOKEN_URL:
        raise RuntimeError(f"offline run: refusing network request to {url}")
    payload = {"iss": "https://token.actions.githubusercontent.com", "email": "offline@trustmirror.invalid",
               "sub": "offline", "exp": int(time.time()) + 3600}
    return _Resp(f"{_b64({'alg': 'none'})}.{_b64(payload)}.".encode())


urllib3.request = _offline_request
