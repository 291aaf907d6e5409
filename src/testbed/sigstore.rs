//! The testbed's Sigstore services bound together: Fulcio (CA + CT log), Rekor, the TSA, the
//! trust material describing them (`trusted_root.json`, `signing_config.json`, legacy PEM
//! targets), and a signer that produces what real clients produce — Sigstore bundles v0.3
//! (message signature or DSSE) for keyless and key-based signers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::{SignedDuration, Timestamp};
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::testbed::keys::pem;
use crate::testbed::pki::{CertAuthority, CtLog, EcKey, Fulcio, Identity, tsa_leaf};
use crate::testbed::rekor::{self, LogEntry, Rekor, SharedRekor};
use crate::testbed::tsa::Tsa;

pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    v.extend_from_slice(payload);
    v
}

/// Who signs: an ephemeral key with a Fulcio certificate, or a long-lived key.
pub enum Signer {
    Keyless { key: EcKey, cert_der: Vec<u8>, identity: Identity },
    Key { key: EcKey },
}

impl Signer {
    pub fn key(&self) -> &EcKey {
        match self {
            Signer::Keyless { key, .. } | Signer::Key { key } => key,
        }
    }
    /// The verifier as Rekor records it: base64 of the PEM certificate or public key.
    pub fn verifier_pem_b64(&self) -> String {
        match self {
            Signer::Keyless { cert_der, .. } => rekor::pem_b64("CERTIFICATE", cert_der),
            Signer::Key { key } => rekor::pem_b64("PUBLIC KEY", &key.spki),
        }
    }
    fn verification_material(&self) -> Value {
        match self {
            Signer::Keyless { cert_der, .. } => json!({"certificate": {"rawBytes": B64.encode(cert_der)}}),
            Signer::Key { key } => json!({"publicKey": {"hint": B64.encode(key.key_id())}}),
        }
    }
}

/// Produced signatures, with everything the OCI forms need as well.
pub struct Signed {
    /// The Sigstore bundle (v0.3).
    pub bundle: Value,
    pub signature: Vec<u8>,
    pub entry: LogEntry,
    pub timestamp: Vec<u8>,
}

pub struct SigstoreStack {
    pub seed: String,
    pub fulcio: Fulcio,
    pub rekor: SharedRekor,
    pub tsa: Tsa,
    /// Start of the validity of all trust material.
    pub valid_from: Timestamp,
    counter: AtomicU64,
}

impl SigstoreStack {
    /// Keys and certificates derived from `seed`; trust material valid from a year before `now`
    /// for ten years.
    pub fn new(seed: &str, now: Timestamp) -> Self {
        let valid_from = now.checked_sub(SignedDuration::from_hours(24 * 365)).expect("range");
        let until = now.checked_add(SignedDuration::from_hours(24 * 3650)).expect("range");
        let ca = CertAuthority::new(
            &format!("{seed}/fulcio"),
            "trustmirror testbed",
            "testbed Fulcio",
            valid_from,
            until,
            ExtendedKeyUsagePurpose::CodeSigning,
        );
        let ctlog = CtLog { key: EcKey::from_seed(format!("{seed}/ctlog").as_bytes()) };
        let tsa_ca = CertAuthority::new(
            &format!("{seed}/tsa"),
            "trustmirror testbed",
            "testbed TSA CA",
            valid_from,
            until,
            ExtendedKeyUsagePurpose::TimeStamping,
        );
        let tsa_key = EcKey::from_seed(format!("{seed}/tsa/leaf").as_bytes());
        let leaf = tsa_leaf(&tsa_ca, &tsa_key, valid_from, until);
        Self {
            seed: seed.into(),
            fulcio: Fulcio { ca, ctlog },
            rekor: Arc::new(Mutex::new(Rekor::new(seed, "rekor.testbed.local"))),
            tsa: Tsa::new(tsa_ca, tsa_key, leaf),
            valid_from,
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// An ephemeral key and its Fulcio certificate for `identity`, issued at `at`.
    pub fn keyless(&self, identity: &Identity, at: Timestamp) -> Signer {
        let n = self.next();
        let key = EcKey::from_seed(format!("{}/ephemeral/{n}", self.seed).as_bytes());
        let cert_der = self.fulcio.issue(&key.spki, identity, at, &format!("{}/leaf/{n}", self.seed));
        Signer::Keyless { key, cert_der, identity: identity.clone() }
    }

    /// A long-lived signing key (cosign `--key`), derived from a name.
    pub fn static_key(&self, name: &str) -> Signer {
        Signer::Key { key: EcKey::from_seed(format!("{}/static/{name}", self.seed).as_bytes()) }
    }

    fn log(&self, body: &Value, at: Timestamp) -> LogEntry {
        self.rekor.lock().unwrap_or_else(|e| e.into_inner()).append(body, at.as_second())
    }

    /// Verification material for a Rekor v1 entry of `body` (logged at `at`, with its SET and
    /// inclusion proof) and an RFC 3161 timestamp over `signature`.
    fn v1_material(&self, signer: &Signer, body: &Value, signature: &[u8], at: Timestamp) -> (Value, LogEntry, Vec<u8>) {
        let entry = self.log(body, at);
        let timestamp = self.tsa.stamp(signature, at, None);
        let mut vm = signer.verification_material();
        vm["tlogEntries"] = json!([entry.bundle_json()]);
        vm["timestampVerificationData"] = json!({"rfc3161Timestamps": [{"signedTimestamp": B64.encode(&timestamp)}]});
        (vm, entry, timestamp)
    }

    /// Sign an artifact (by content) as `cosign sign-blob --bundle` / sigstore clients do:
    /// hashedrekord entry, RFC 3161 timestamp, bundle v0.3 with a message signature.
    pub fn sign_blob(&self, signer: &Signer, artifact: &[u8], at: Timestamp) -> Signed {
        let digest = Sha256::digest(artifact);
        self.sign_digest(signer, &digest, artifact, at)
    }

    /// Sign a message whose SHA-256 is `digest` (`message` is what the key signs; ECDSA-SHA256
    /// hashes it again, so the signature verifies over the message).
    fn sign_digest(&self, signer: &Signer, digest: &[u8], message: &[u8], at: Timestamp) -> Signed {
        let signature = signer.key().sign(message);
        let (vm, entry, timestamp) =
            self.v1_material(signer, &rekor::hashedrekord_body(digest, &signature, &signer.verifier_pem_b64()), &signature, at);
        let bundle = json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": vm,
            "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(digest)}, "signature": B64.encode(&signature)},
        });
        Signed { bundle, signature, entry, timestamp }
    }

    /// A DSSE envelope over `payload` (one signature), as JSON bytes, with its signature.
    pub fn dsse(&self, signer: &Signer, payload_type: &str, payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let sig = signer.key().sign(&pae(payload_type, payload));
        let env =
            json!({"payloadType": payload_type, "payload": B64.encode(payload), "signatures": [{"keyid": "", "sig": B64.encode(&sig)}]});
        (serde_json::to_vec(&env).expect("json"), sig)
    }

    /// Attest an in-toto statement as sigstore clients do: DSSE envelope, dsse 0.0.1 entry,
    /// RFC 3161 timestamp, bundle v0.3.
    pub fn attest(&self, signer: &Signer, statement: &Value, at: Timestamp) -> Signed {
        let payload = serde_json::to_vec(statement).expect("json");
        let (env, signature) = self.dsse(signer, INTOTO_PAYLOAD_TYPE, &payload);
        let (vm, entry, timestamp) =
            self.v1_material(signer, &rekor::dsse_body(&env, &payload, &signature, &signer.verifier_pem_b64()), &signature, at);
        let bundle = json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": vm,
            "dsseEnvelope": {"payload": B64.encode(&payload), "payloadType": INTOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": B64.encode(&signature), "keyid": ""}]},
        });
        Signed { bundle, signature, entry, timestamp }
    }

    /// A Rekor v2 `hashedrekord` 0.0.2 body: the SHA-256 of what was signed, the signature, and
    /// the verifier — the certificate (keyless) or the public key.
    fn hashedrekord_v2_body(signer: &Signer, digest: &[u8], signature: &[u8]) -> Value {
        let verifier = match signer {
            Signer::Keyless { cert_der, .. } => {
                json!({"x509Certificate": {"rawBytes": B64.encode(cert_der)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"})
            }
            Signer::Key { key } => json!({"publicKey": {"rawBytes": B64.encode(&key.spki)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}),
        };
        json!({"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
            "data": {"algorithm": "SHA2_256", "digest": B64.encode(digest)},
            "signature": {"content": B64.encode(signature), "verifier": verifier}}}})
    }

    /// Verification material for a Rekor v2 entry: the entry and the RFC 3161 timestamp v2
    /// requires (Rekor v2 gives no integrated time). Key-signed bundles name their key by hint.
    fn v2_material(&self, signer: &Signer, body: &Value, signature: &[u8], at: Timestamp) -> Value {
        let entry = self.rekor.lock().unwrap_or_else(|e| e.into_inner()).append_v2(body);
        let mut vm = signer.verification_material();
        vm["tlogEntries"] = json!([entry]);
        vm["timestampVerificationData"] =
            json!({"rfc3161Timestamps": [{"signedTimestamp": B64.encode(self.tsa.stamp(signature, at, None))}]});
        vm
    }

    /// `cosign sign-blob` as cosign v3 does by default: bundle v0.3, Rekor v2 (hashedrekord
    /// 0.0.2 in the tiles log), RFC 3161 timestamp. Verify with [`Self::trusted_root_with_tiles`].
    pub fn sign_blob_rekor_v2(&self, signer: &Signer, artifact: &[u8], at: Timestamp) -> Value {
        let digest = Sha256::digest(artifact);
        let signature = signer.key().sign(artifact);
        let vm = self.v2_material(signer, &Self::hashedrekord_v2_body(signer, &digest, &signature), &signature, at);
        json!({"mediaType": BUNDLE_V03, "verificationMaterial": vm,
            "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(digest)}, "signature": B64.encode(&signature)}})
    }

    /// `cosign attest` (v3, `--new-bundle-format`) with Rekor v2: the DSSE envelope logged as a
    /// hashedrekord 0.0.2 over its PAE, RFC 3161 timestamp.
    pub fn attest_rekor_v2(&self, signer: &Signer, statement: &Value, at: Timestamp) -> Value {
        let payload = serde_json::to_vec(statement).expect("json");
        let (_, signature) = self.dsse(signer, INTOTO_PAYLOAD_TYPE, &payload);
        let digest = Sha256::digest(pae(INTOTO_PAYLOAD_TYPE, &payload));
        let vm = self.v2_material(signer, &Self::hashedrekord_v2_body(signer, &digest, &signature), &signature, at);
        json!({"mediaType": BUNDLE_V03, "verificationMaterial": vm,
            "dsseEnvelope": {"payload": B64.encode(&payload), "payloadType": INTOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": B64.encode(&signature), "keyid": ""}]}})
    }

    /// Log a DSSE envelope as cosign's legacy `attest` does (intoto 0.0.2 entry), for `.att`.
    pub fn log_intoto(&self, signer: &Signer, env: &[u8], payload: &[u8], signature: &[u8], at: Timestamp) -> LogEntry {
        self.log(&rekor::intoto_body(env, INTOTO_PAYLOAD_TYPE, payload, signature, &signer.verifier_pem_b64()), at)
    }

    /// Log a cosign simple-signing payload signature (hashedrekord over the payload).
    pub fn log_payload_signature(&self, signer: &Signer, payload: &[u8], signature: &[u8], at: Timestamp) -> LogEntry {
        self.log(&rekor::hashedrekord_body(&Sha256::digest(payload), signature, &signer.verifier_pem_b64()), at)
    }

    /// `trusted_root.json` (protobuf-specs JSON) describing this stack at `base_url`.
    pub fn trusted_root(&self, base_url: &str) -> Value {
        let start = self.valid_from.to_string();
        let rekor_key = self.rekor.lock().unwrap_or_else(|e| e.into_inner()).key.spki.clone();
        let key =
            |spki: &[u8]| json!({"rawBytes": B64.encode(spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": start}});
        let chain =
            |certs: Vec<Vec<u8>>| json!({"certificates": certs.iter().map(|c| json!({"rawBytes": B64.encode(c)})).collect::<Vec<_>>()});
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{"baseUrl": base_url, "hashAlgorithm": "SHA2_256", "publicKey": key(&rekor_key),
                "logId": {"keyId": B64.encode(Sha256::digest(&rekor_key))}}],
            "certificateAuthorities": [{"subject": {"organization": "trustmirror testbed", "commonName": "testbed Fulcio"},
                "uri": base_url, "certChain": chain(self.fulcio.ca.chain()), "validFor": {"start": start}}],
            "ctlogs": [{"baseUrl": base_url, "hashAlgorithm": "SHA2_256", "publicKey": key(&self.fulcio.ctlog.key.spki),
                "logId": {"keyId": B64.encode(self.fulcio.ctlog.log_id())}}],
            "timestampAuthorities": [{"subject": {"organization": "trustmirror testbed", "commonName": "testbed TSA"},
                "uri": format!("{base_url}/api/v1/timestamp"), "certChain": chain(self.tsa.chain()), "validFor": {"start": start}}],
        })
    }

    /// The trusted root plus the testbed log's tlog-tiles face (`<base>/tiles`, Ed25519), as a
    /// trusted root listing a Rekor v2 log does.
    pub fn trusted_root_with_tiles(&self, base_url: &str) -> Value {
        let mut tr = self.trusted_root(base_url);
        let spki = self.rekor.lock().unwrap_or_else(|e| e.into_inner()).tiles_spki();
        tr["tlogs"].as_array_mut().expect("tlogs").push(json!({
            "baseUrl": format!("{base_url}/tiles"), "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": B64.encode(&spki), "keyDetails": "PKIX_ED25519", "validFor": {"start": self.valid_from.to_string()}},
            "logId": {"keyId": B64.encode(self.rekor.lock().unwrap_or_else(|e| e.into_inner()).tiles_log_id())}}));
        tr
    }

    /// `signing_config.json` (v0.2) pointing clients at this stack.
    pub fn signing_config(&self, base_url: &str) -> Value {
        let svc = |url: String| json!({"url": url, "majorApiVersion": 1, "validFor": {"start": self.valid_from.to_string()}, "operator": "trustmirror-testbed"});
        json!({
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [svc(base_url.to_string())],
            "oidcUrls": [],
            "rekorTlogUrls": [svc(base_url.to_string())],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaUrls": [svc(format!("{base_url}/api/v1/timestamp"))],
            "tsaConfig": {"selector": "ANY"},
        })
    }

    /// The legacy TUF targets: Fulcio chain, Rekor and CT log public keys (PEM).
    pub fn legacy_targets(&self) -> Vec<(&'static str, Vec<u8>)> {
        let rekor_key = self.rekor.lock().unwrap_or_else(|e| e.into_inner()).key.spki.clone();
        let chain: String = self.fulcio.ca.chain().iter().map(|c| pem("CERTIFICATE", c)).collect();
        vec![
            ("fulcio.crt.pem", chain.into_bytes()),
            ("rekor.pub", pem("PUBLIC KEY", &rekor_key).into_bytes()),
            ("ctfe.pub", pem("PUBLIC KEY", &self.fulcio.ctlog.key.spki).into_bytes()),
            ("tsa.crt.pem", self.tsa.chain().iter().map(|c| pem("CERTIFICATE", c)).collect::<String>().into_bytes()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigstore_verify::{VerificationPolicy, Verifier};

    fn verify(stack: &SigstoreStack, bundle: &Value, artifact: &[u8], id: &Identity) -> Result<(), String> {
        let tr = sigstore_trust_root::TrustedRoot::from_json(&stack.trusted_root("http://127.0.0.1:1").to_string())
            .map_err(|e| e.to_string())?;
        let b = sigstore_types::Bundle::from_json(&bundle.to_string()).map_err(|e| e.to_string())?;
        let policy = VerificationPolicy::new(id.san.clone(), id.issuer.clone());
        Verifier::new(&tr).map_err(|e| e.to_string())?.verify(artifact, &b, &policy).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn keyless_bundles_verify_with_sigstore_verify() {
        let now = Timestamp::now();
        let s = SigstoreStack::new("unit", now);
        let id = Identity::github_workflow("myorg/app", ".github/workflows/build.yml", "refs/heads/main");
        let signer = s.keyless(&id, now);
        let blob = s.sign_blob(&signer, b"hello artifact", now);
        verify(&s, &blob.bundle, b"hello artifact", &id).expect("message signature bundle verifies");
        assert!(verify(&s, &blob.bundle, b"other artifact", &id).is_err());
        let other = Identity::github_workflow("fork/app", ".github/workflows/build.yml", "refs/heads/main");
        assert!(verify(&s, &blob.bundle, b"hello artifact", &other).is_err());

        let digest = hex::encode(Sha256::digest(b"image manifest"));
        let st = json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "img", "digest": {"sha256": digest}}],
            "predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {}}});
        let att = s.attest(&signer, &st, now);
        verify(&s, &att.bundle, b"image manifest", &id).expect("DSSE bundle verifies");
    }
}
