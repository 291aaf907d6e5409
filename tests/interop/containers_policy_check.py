#!/usr/bin/env python3
# Written for trustmirror (not copied code): a model of containers/image v5.36.1's policy.json parser,
# built by reading signature/policy_config*.go; cross-checked against Debian skopeo 1.9.3
# (containers/image 5.23) on 30 vectors with identical accept/reject results.
"""Reference checker for containers-policy.json(5), mirroring the parser in
containers/image (c/image) signature/policy_config.go + policy_config_sigstore.go
(identical from c/image v5.36.1 to container-libs image/v5.39.x).

It is a *test oracle* for a renderer: it reports
  ERROR  - things c/image rejects (the whole policy file fails to load, so
           every pull through CRI-O/podman fails);
  WARN   - valid JSON that will not do what a sigstore/cosign user expects.

Usage: policy_check.py [--cimage 5.33] policy.json [...]
Exit status 1 if any ERROR.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys

# ---- docker/reference grammar as vendored in c/image (docker/reference/regexp.go)
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]*)"
_NAMECOMP = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMCOMP = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMCOMP}(?:\.{_DOMCOMP})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_NAMECOMP}(?:/{_NAMECOMP})*"
_REF_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_DOMAIN_PREFIX_RE = re.compile(rf"^{_DOMAIN}/")
_NAME_RE = re.compile(rf"^{_NAME}$")
_ID64_RE = re.compile(r"^[a-f0-9]{64}$")

# c/image version (major.minor) that first accepts each sigstoreSigned key.
SIGSTORE_FIELD_MIN = {
    "type": (5, 22), "keyPath": (5, 22), "keyData": (5, 22), "signedIdentity": (5, 22),
    "fulcio": (5, 24), "rekorPublicKeyPath": (5, 24), "rekorPublicKeyData": (5, 24),
    "keyPaths": (5, 33), "keyDatas": (5, 33),
    "rekorPublicKeyPaths": (5, 33), "rekorPublicKeyDatas": (5, 33),
    "pki": (5, 35),
}
KEY_SOURCES = ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
REKOR_SOURCES = ("rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas")


class DupKey(Exception):
    pass


def _no_dups(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise DupKey(f'Duplicate key "{k}"')
        seen[k] = v
    return seen


def parse_normalized_named(s: str) -> tuple[str, str | None, str | None]:
    """Approximates reference.ParseNormalizedNamed; returns (name, tag, digest)."""
    if not isinstance(s, str) or s == "":
        raise ValueError("invalid reference format")
    if _ID64_RE.match(s):
        raise ValueError("cannot specify 64-byte hexadecimal strings")
    i = s.find("/")
    if i == -1 or (("." not in s[:i]) and (":" not in s[:i]) and s[:i] != "localhost" and s[:i].lower() == s[:i]):
        domain, rest = "docker.io", s
    else:
        domain, rest = s[:i], s[i + 1:]
    if domain == "docker.io" and "/" not in rest:
        rest = "library/" + rest
    remote = rest.split(":", 1)[0].split("@", 1)[0]
    if remote.lower() != remote:
        raise ValueError("repository name must be lowercase")
    m = _REF_RE.match(domain + "/" + rest)
    if not m:
        raise ValueError("invalid reference format")
    if len(m.group(1)) > 255:
        raise ValueError("repository name must not be more than 255 characters")
    return m.group(1), m.group(2), m.group(3)


class Checker:
    def __init__(self, cimage: tuple[int, int]):
        self.cimage = cimage
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def err(self, where, msg):
        self.errors.append(f"{where}: {msg}")

    def warn(self, where, msg):
        self.warnings.append(f"{where}: {msg}")

    # -- helpers
    def _exact(self, where, obj, fields):
        if not isinstance(obj, dict):
            self.err(where, "JSON object expected")
            return False
        for k in obj:
            if k not in fields:
                self.err(where, f'Unknown key "{k}"')
        for k in fields:
            if k not in obj:
                self.err(where, f'Key "{k}" missing in a JSON object')
        return True

    def _b64(self, where, v):
        if not isinstance(v, str):
            self.err(where, "must be a base64 string")
            return
        try:  # Go encoding/json: base64.StdEncoding (padding required, \r\n ignored)
            raw = base64.b64decode(v.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            self.err(where, "illegal base64 data (must be standard alphabet, padded)")
            return
        if not raw:
            self.warn(where, "empty data: parses, but fails at verification time")
        elif b"-----BEGIN" not in raw:
            self.warn(where, "decoded data is not PEM; c/image expects base64(PEM text)")

    def _str(self, where, v, nonempty=True):
        if not isinstance(v, str):
            self.err(where, "string expected")
            return False
        if nonempty and v == "":
            self.err(where, "empty string (treated as absent by c/image)")
            return False
        return True

    def _str_list(self, where, v, b64=False):
        if not isinstance(v, list):
            self.err(where, "array expected")
            return
        if not v:
            self.err(where, "contains no entries")
            return
        for i, x in enumerate(v):
            if b64:
                self._b64(f"{where}[{i}]", x)
            else:
                self._str(f"{where}[{i}]", x)

    # -- signedIdentity
    def prm(self, where, o) -> str | None:
        if not isinstance(o, dict):
            self.err(where, "JSON object expected")
            return None
        t = o.get("type")
        if t in ("matchExact", "matchRepoDigestOrExact", "matchRepository"):
            self._exact(where, o, ["type"])
        elif t == "exactReference":
            if self._exact(where, o, ["type", "dockerReference"]) and "dockerReference" in o:
                try:
                    _, tag, dig = parse_normalized_named(o["dockerReference"])
                    if tag is None and dig is None:
                        self.err(where, "dockerReference contains neither a tag nor digest")
                except ValueError as e:
                    self.err(where, f"Invalid format of dockerReference: {e}")
        elif t == "exactRepository":
            if self._exact(where, o, ["type", "dockerRepository"]) and "dockerRepository" in o:
                try:
                    _, tag, dig = parse_normalized_named(o["dockerRepository"])
                    if tag or dig:
                        self.warn(where, "dockerRepository carries a tag/digest; only the name is compared")
                except ValueError as e:
                    self.err(where, f"Invalid format of dockerRepository: {e}")
        elif t == "remapIdentity":
            if self._exact(where, o, ["type", "prefix", "signedPrefix"]):
                for f in ("prefix", "signedPrefix"):
                    v = o.get(f)
                    if not (isinstance(v, str) and (_DOMAIN_RE.match(v) or (_NAME_RE.match(v) and _DOMAIN_PREFIX_RE.match(v)))):
                        self.err(where, f'{f} "{v}" is not valid')
        else:
            self.err(where, f'Unknown policy reference match type "{t}"')
            return None
        return t

    # -- requirements
    def requirement(self, where, r, scope):
        if not isinstance(r, dict):
            self.err(where, "JSON object expected")
            return
        t = r.get("type")
        if t in ("insecureAcceptAnything", "reject"):
            self._exact(where, r, ["type"])
            if t == "insecureAcceptAnything" and scope not in ("", None):
                self.warn(where, "insecureAcceptAnything on a scope disables verification for it")
        elif t == "signedBy":
            self.signed_by(where, r)
        elif t == "signedBaseLayer":
            if self._exact(where, r, ["type", "baseLayerIdentity"]):
                self.prm(where + ".baseLayerIdentity", r.get("baseLayerIdentity"))
        elif t == "sigstoreSigned":
            self.sigstore(where, r)
        else:
            self.err(where, f'Unknown policy requirement type "{t}"')

    def signed_by(self, where, r):
        allowed = {"type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"}
        for k in r:
            if k not in allowed:
                self.err(where, f'Unknown key "{k}"')
        if r.get("keyType") not in ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs"):
            self.err(where, f'invalid keyType {r.get("keyType")!r}')
        n = sum(k in r for k in ("keyPath", "keyPaths", "keyData"))
        if n != 1:
            self.err(where, "Exactly one of keyPath, keyPaths and keyData must be specified")
        if "signedIdentity" in r:
            self.prm(where + ".signedIdentity", r["signedIdentity"])

    def sigstore(self, where, r):
        for k in r:
            if k not in SIGSTORE_FIELD_MIN:
                self.err(where, f'Unknown key "{k}"')
            elif SIGSTORE_FIELD_MIN[k] > self.cimage:
                need = "%d.%d" % SIGSTORE_FIELD_MIN[k]
                self.err(where, f'key "{k}" needs c/image >= {need} (older parsers: Unknown key)')
        # value types
        for k in ("keyPath", "rekorPublicKeyPath"):
            if k in r and not (k == "keyPath" and r[k] == ""):
                self._str(f"{where}.{k}", r[k])
        for k in ("keyPaths", "rekorPublicKeyPaths"):
            if k in r:
                self._str_list(f"{where}.{k}", r[k])
        for k in ("keyData", "rekorPublicKeyData"):
            if k in r:
                self._b64(f"{where}.{k}", r[k])
        for k in ("keyDatas", "rekorPublicKeyDatas"):
            if k in r:
                self._str_list(f"{where}.{k}", r[k], b64=True)
        # c/image >= 5.24 treats "keyPath": "" as absent; 5.22/5.23 accepted it and failed at pull time.
        empty_ok = self.cimage < (5, 24)
        if r.get("keyPath") == "" and empty_ok:
            self.warn(where, 'keyPath "" accepted by this c/image, but every verification will fail')
        present = [k for k in KEY_SOURCES if k in r and not (k == "keyPath" and r[k] == "" and not empty_ok)]
        if len(present) != 1:
            self.err(where, "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, and pki must be specified"
                     f" (got {present or 'none'})")
        rekor = [k for k in REKOR_SOURCES if k in r and not (k == "rekorPublicKeyPath" and r[k] == "")]
        if len(rekor) > 1:
            self.err(where, "at most one of rekorPublicKeyPath(s)/rekorPublicKeyData(s) can be used")
        if "fulcio" in r:
            self.fulcio(where + ".fulcio", r["fulcio"])
            if not rekor:
                self.err(where, "a Rekor public key (rekorPublicKey*) must be specified if fulcio is used")
        if "pki" in r:
            self.pki(where + ".pki", r["pki"])
            if rekor:
                self.err(where, "rekorPublicKey* are not supported for pki")
        if "signedIdentity" not in r:
            self.warn(where, "signedIdentity omitted => matchRepoDigestOrExact, which rejects every cosign "
                             "signature (cosign signs a repository name, no tag/digest); use matchRepository/exactRepository")
        else:
            t = self.prm(where + ".signedIdentity", r["signedIdentity"])
            if t in ("matchExact", "matchRepoDigestOrExact", "exactReference", "remapIdentity"):
                self.warn(where, f"signedIdentity {t} never matches cosign-created signatures "
                                 "(their docker-reference is name-only)")

    def fulcio(self, where, f):
        if not isinstance(f, dict):
            self.err(where, "JSON object expected")
            return
        for k in f:
            if k not in ("caPath", "caData", "oidcIssuer", "subjectEmail"):
                self.err(where, f'Unknown key "{k}"')
        if ("caPath" in f) == ("caData" in f):
            self.err(where, "exactly one of caPath and caData must be specified")
        if "caPath" in f:
            self._str(where + ".caPath", f["caPath"])
        if "caData" in f:
            self._b64(where + ".caData", f["caData"])
        for k in ("oidcIssuer", "subjectEmail"):
            if k not in f or not self._str(f"{where}.{k}", f[k]):
                self.err(where, f"{k} not specified")

    def pki(self, where, p):
        if not isinstance(p, dict):
            self.err(where, "JSON object expected")
            return
        allowed = ("caRootsPath", "caRootsData", "caIntermediatesPath", "caIntermediatesData",
                   "subjectEmail", "subjectHostname")
        for k in p:
            if k not in allowed:
                self.err(where, f'Unknown key "{k}"')
        if ("caRootsPath" in p) == ("caRootsData" in p):
            self.err(where, "exactly one of caRootsPath and caRootsData must be specified")
        if "caIntermediatesPath" in p and "caIntermediatesData" in p:
            self.err(where, "caIntermediatesPath and caIntermediatesData cannot be used simultaneously")
        for k in ("caRootsData", "caIntermediatesData"):
            if k in p:
                self._b64(f"{where}.{k}", p[k])
        if not (p.get("subjectEmail") or p.get("subjectHostname")):
            self.err(where, "At least one of subjectEmail, subjectHostname must be specified")

    def requirements(self, where, v, scope=None):
        if not isinstance(v, list):
            self.err(where, "array expected")
            return
        if not v:
            self.err(where, "List of verification policy requirements must not be empty")
        types = set()
        for i, r in enumerate(v):
            self.requirement(f"{where}[{i}]", r, scope)
            if isinstance(r, dict):
                types.add(r.get("type"))
        if "sigstoreSigned" in types and len(v) > 1:
            self.warn(where, "multiple requirements are ANDed (all must pass); there is no OR / M-of-N")

    def policy(self, p):
        if not isinstance(p, dict):
            self.err("$", "JSON object expected")
            return
        for k in p:
            if k not in ("default", "transports"):
                self.err("$", f'Unknown key "{k}"')
        if p.get("default") is None:
            self.err("$", "Default policy is missing")
        else:
            self.requirements("$.default", p["default"], "")
            if any(isinstance(r, dict) and r.get("type") == "insecureAcceptAnything" for r in p["default"] or []):
                self.warn("$.default", "global default accepts anything; consider reject")
        tr = p.get("transports", {})
        if not isinstance(tr, dict):
            self.err("$.transports", "JSON object expected")
            return
        for tname, scopes in tr.items():
            if not isinstance(scopes, dict):
                self.err(f"$.transports.{tname}", "JSON object expected")
                continue
            for scope, reqs in scopes.items():
                w = f"$.transports.{tname}[{scope!r}]"
                if tname == "docker" and scope:
                    self.docker_scope(w, scope)
                elif scope:
                    self.other_scope(w, tname, scope)
                self.requirements(w, reqs, scope)

    def other_scope(self, where, tname, s):
        # Non-docker transports DO validate scopes; an invalid one is reported by c/image as 'Unknown key'.
        import posixpath
        if tname in ("dir", "oci", "oci-archive", "sif"):
            if not s.startswith("/") or s == "/" or posixpath.normpath(s) != s:
                self.err(where, f"invalid {tname} scope (absolute, canonical path other than '/' required)")
        elif tname in ("docker-archive", "tarball"):
            self.err(where, f'{tname}: does not support any scopes except the default "" one')
        elif tname == "docker-daemon" and re.match(r"^[a-z0-9]+:[0-9a-fA-F]{32,}$", s):
            self.err(where, "docker-daemon: can not use algo:digest value as a namespace")
        elif tname == "containers-storage" and not s.startswith("["):
            self.err(where, "containers-storage scope must start with [store-spec]")

    def docker_scope(self, where, s):
        # c/image does not validate docker scopes (dockerTransport.ValidatePolicyConfigurationScope
        # returns nil), so these are WARNs: an invalid scope silently never matches.
        if s.startswith("*."):
            if ":" in s or "/" in s:
                self.warn(where, "wildcard scopes match host names only (no port, no path)")
            elif not _DOMAIN_RE.match(s[2:]):
                self.warn(where, "wildcard suffix is not a valid domain")
            return
        if "*" in s:
            self.warn(where, "'*' is only supported as a leading '*.' label; this scope never matches")
            return
        if s.startswith(("http://", "https://", "docker://")):
            self.warn(where, "scope must be a bare reference, no scheme; never matches")
            return
        host = s.split("/", 1)[0]
        if "/" not in s:
            if not _DOMAIN_RE.match(s):
                self.warn(where, "not a valid registry host[:port]")
            return
        if not ("." in host or ":" in host or host == "localhost"):
            self.warn(where, "first component is not a registry host; scopes must be fully expanded "
                             "(e.g. docker.io/library/busybox, not busybox)")
        m = _REF_RE.match(s)
        if not m or s != s.strip():
            self.warn(where, "not a valid (fully expanded) docker reference prefix; never matches")
        elif m.group(1).split("/", 1)[-1] != m.group(1).split("/", 1)[-1].lower():
            self.warn(where, "repository path must be lowercase; never matches")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cimage", default="5.36", help="c/image major.minor of the consumer (CRI-O 1.33 => 5.35)")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    ver = tuple(int(x) for x in a.cimage.split(".")[:2])
    bad = 0
    for fn in a.files:
        c = Checker(ver)
        try:
            with open(fn, "rb") as fh:
                doc = json.loads(fh.read(), object_pairs_hook=_no_dups)
            c.policy(doc)
        except DupKey as e:
            c.err("$", str(e))
        except json.JSONDecodeError as e:
            c.err("$", f"invalid JSON: {e}")
        for e in c.errors:
            print(f"{fn}: ERROR {e}")
        for w in c.warnings:
            print(f"{fn}: WARN  {w}")
        if not c.errors and not c.warnings:
            print(f"{fn}: OK")
        bad |= bool(c.errors)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
