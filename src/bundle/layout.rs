//! The bundle file: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) in one
//! uncompressed tar. Standard tools read it (`tar`, `jq`, `oras cp --from-oci-layout`, `skopeo
//! copy oci-archive:`), so it can also be pushed to the internal registry and pulled on the
//! other side. Every file of the bundle is a content-addressed blob; the bundle manifest lists
//! them with their paths (`org.opencontainers.image.title`); a second manifest, whose subject is
//! the bundle manifest, carries the exporter's signature over it.
//!
//! Reading is hostile-input code: entries must be plain files and directories under the layout
//! with safe names, the archive and each file are size-capped, and every blob is re-hashed
//! against its name before anything reads it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::core::digest::sha256_hex;

pub const ARTIFACT_BUNDLE: &str = "application/vnd.trustmirror.airgap.bundle.v1";
pub const ARTIFACT_SIGNATURE: &str = "application/vnd.trustmirror.airgap.signature.v1";
pub const MT_CONFIG: &str = "application/vnd.trustmirror.airgap.config.v1+json";
pub const MT_FILE: &str = "application/octet-stream";
pub const MT_DSSE: &str = "application/vnd.dsse.envelope.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const TITLE: &str = "org.opencontainers.image.title";

/// Limits on what an import reads.
pub const MAX_ARCHIVE_ENTRIES: usize = 2_000_000;
pub const MAX_FILE: u64 = 1 << 30;

/// What the bundle says about itself (the manifest's config blob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleConfig {
    /// Who exported it (the signing key's id when signed, else a name).
    pub exporter: String,
    /// Increases with every bundle this exporter makes.
    pub sequence: u64,
    pub created: jiff::Timestamp,
    /// The bundle this one applies on top of (its manifest digest), for incremental bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The TUF repository's name in the store.
    pub tuf_repo: String,
    /// Files per kind (`tuf`, `oci`, `blob`, `tlog`, `policy`).
    pub counts: BTreeMap<String, usize>,
}

/// A bundle being written, streamed: each file goes into the archive as a blob as it is added
/// (only its digest is kept), the manifests and `index.json` at the end; the archive is written
/// under a temporary name and renamed into place by [`Writer::finish`] (dropped unfinished, it is
/// removed).
pub struct Writer {
    out: PathBuf,
    tmp: PathBuf,
    tar: Option<tar::Builder<std::io::BufWriter<std::fs::File>>>,
    mtime: u64,
    /// path → (digest `sha256:…`, size)
    files: BTreeMap<String, (String, usize)>,
    written: std::collections::HashSet<String>,
    /// The first write error: `add` cannot fail, `finish` reports it.
    error: Option<String>,
}

fn safe_path(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('/') && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..") && !p.contains('\\')
}

impl Writer {
    /// Start writing the bundle `out`; entries carry `created` as their time.
    pub fn create(out: &Path, created: jiff::Timestamp) -> Result<Self, String> {
        let tmp = out.with_extension("partial");
        let f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut w = Writer {
            out: out.to_path_buf(),
            tmp,
            tar: Some(tar::Builder::new(std::io::BufWriter::new(f))),
            mtime: created.as_second().max(0) as u64,
            files: BTreeMap::new(),
            written: Default::default(),
            error: None,
        };
        w.entry("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(w)
    }

    fn entry(&mut self, name: &str, b: &[u8]) -> Result<(), String> {
        let mut h = tar::Header::new_ustar();
        h.set_size(b.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(self.mtime);
        h.set_cksum();
        let t = self.tar.as_mut().expect("open until finished");
        t.append_data(&mut h, name, b).map_err(|e| format!("writing {}: {e}", self.out.display()))
    }

    /// Write `b` as a blob (once per content); its digest and size.
    fn put(&mut self, b: &[u8]) -> (String, usize) {
        let d = sha256_hex(b);
        if self.written.insert(d.clone())
            && let Err(e) = self.entry(&format!("blobs/sha256/{d}"), b)
        {
            self.error.get_or_insert(e);
        }
        (format!("sha256:{d}"), b.len())
    }

    pub fn add(&mut self, path: &str, bytes: Vec<u8>) {
        debug_assert!(safe_path(path), "{path}");
        let v = self.put(&bytes);
        self.files.insert(path.to_string(), v);
    }

    pub fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// Finish the layout: the manifest (and, with `sign`, the signature manifest over it) and
    /// `index.json`, then the archive is synced and renamed into place. Returns the manifest's
    /// digest.
    pub fn finish(mut self, config: &BundleConfig, sign: Option<&dyn Fn(&[u8]) -> Result<Value, String>>) -> Result<String, String> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let (cd, cs) = self.put(&serde_json::to_vec(config).expect("json"));
        let layers: Vec<Value> = self
            .files
            .iter()
            .map(|(path, (d, s))| json!({"mediaType": MT_FILE, "digest": d, "size": s, "annotations": {TITLE: path}}))
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MT_MANIFEST, "artifactType": ARTIFACT_BUNDLE,
            "config": {"mediaType": MT_CONFIG, "digest": cd, "size": cs},
            "layers": layers,
            "annotations": {"dev.trustmirror.bundle.exporter": config.exporter, "dev.trustmirror.bundle.sequence": config.sequence.to_string(),
                "org.opencontainers.image.created": config.created.to_string()},
        }))
        .expect("json");
        let (md, ms) = self.put(&manifest);
        let mut index = vec![json!({"mediaType": MT_MANIFEST, "digest": md, "size": ms, "artifactType": ARTIFACT_BUNDLE,
            "annotations": {"org.opencontainers.image.ref.name": "bundle"}})];
        if let Some(sign) = sign {
            let env = serde_json::to_vec(&sign(&manifest)?).expect("json");
            let (ed, es) = self.put(&env);
            let (empty, _) = self.put(b"{}");
            let sig = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": MT_MANIFEST, "artifactType": ARTIFACT_SIGNATURE,
                "config": {"mediaType": MT_EMPTY, "digest": empty, "size": 2},
                "layers": [{"mediaType": MT_DSSE, "digest": ed, "size": es}],
                "subject": {"mediaType": MT_MANIFEST, "digest": md, "size": ms},
            }))
            .expect("json");
            let (sd, ss) = self.put(&sig);
            index.push(json!({"mediaType": MT_MANIFEST, "digest": sd, "size": ss, "artifactType": ARTIFACT_SIGNATURE,
                "annotations": {"org.opencontainers.image.ref.name": "signature"}}));
        }
        let index = serde_json::to_vec_pretty(&json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": index})).expect("json");
        self.entry("index.json", &index)?;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let io = |e: std::io::Error| format!("writing {}: {e}", self.out.display());
        let t = self.tar.take().expect("open until finished");
        let mut w = t.into_inner().map_err(io)?;
        w.flush().map_err(io)?;
        w.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
        std::fs::rename(&self.tmp, &self.out).map_err(io)?;
        Ok(format!("sha256:{md}"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // not finished: nothing half-written is left behind
        if self.tar.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A bundle read and checked: every blob hashed against its name, the manifest and its files.
/// Blobs are read from the archive in place (an uncompressed tar: each at a known offset) and
/// hashed again on every read, so the file cannot change under the importer unnoticed.
pub struct Bundle {
    file: PathBuf,
    /// sha256 hex → (offset in the archive, size).
    blobs: BTreeMap<String, (u64, u64)>,
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    pub config: BundleConfig,
    /// path → sha256 hex of the file's blob.
    pub files: BTreeMap<String, String>,
    /// The signature envelope over the manifest, if any.
    pub signature: Option<Value>,
    pub size: u64,
}

impl Bundle {
    fn blob(&self, sha: &str) -> Result<Vec<u8>, String> {
        use std::io::Seek;
        let (off, size) = *self.blobs.get(sha).ok_or_else(|| format!("blob sha256:{sha} is missing"))?;
        let mut f = std::fs::File::open(&self.file).map_err(|e| format!("{}: {e}", self.file.display()))?;
        f.seek(std::io::SeekFrom::Start(off)).map_err(|e| e.to_string())?;
        let mut b = vec![0u8; size as usize];
        f.read_exact(&mut b).map_err(|e| format!("blob sha256:{sha}: {e}"))?;
        if sha256_hex(&b) != sha {
            return Err(format!("blob sha256:{sha} changed while the bundle was being read"));
        }
        Ok(b)
    }

    pub fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        let sha = self.files.get(path).ok_or_else(|| format!("the bundle has no {path}"))?;
        self.blob(sha).map_err(|e| format!("{path}: {e}"))
    }

    /// Paths under `prefix/`.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.files.keys().filter(move |p| p.starts_with(prefix))
    }
}

/// Open and check a bundle file.
pub fn open(file: &Path) -> Result<Bundle, String> {
    let size = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?.len();
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let mut n = 0usize;
    let mut blobs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for e in ar.entries().map_err(|e| format!("{}: not a tar archive: {e}", file.display()))? {
        let mut e = e.map_err(|e| format!("{}: damaged archive: {e}", file.display()))?;
        n += 1;
        if n > MAX_ARCHIVE_ENTRIES {
            return Err(format!("more than {MAX_ARCHIVE_ENTRIES} entries"));
        }
        let path = e.path().map_err(|e| format!("an entry with an unreadable name: {e}"))?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_string();
        match e.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            t => return Err(format!("{path}: a {t:?} entry (only plain files belong in a bundle)")),
        }
        let ok = path == "oci-layout"
            || path == "index.json"
            || path.strip_prefix("blobs/sha256/").is_some_and(crate::core::digest::is_sha256_hex);
        if !ok || !safe_path(&path) {
            return Err(format!("{path:?}: not part of an OCI image layout"));
        }
        if e.size() > MAX_FILE {
            return Err(format!("{path}: {} bytes, more than the {MAX_FILE}-byte limit", e.size()));
        }
        let (offset, len) = (e.raw_file_position(), e.size());
        match path.strip_prefix("blobs/sha256/") {
            Some(name) => {
                let mut h = <sha2::Sha256 as sha2::Digest>::new();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let k = e.read(&mut buf).map_err(|e| format!("{path}: {e}"))?;
                    if k == 0 {
                        break;
                    }
                    sha2::Digest::update(&mut h, &buf[..k]);
                }
                let got = hex::encode(sha2::Digest::finalize(h));
                if got != name {
                    return Err(format!("{path}: content hashes to sha256:{got}, not to its name (the file was altered)"));
                }
                if blobs.insert(name.to_string(), (offset, len)).is_some() {
                    return Err(format!("{path} appears twice"));
                }
            }
            None => {
                if len > 1 << 20 {
                    return Err(format!("{path}: {len} bytes"));
                }
                let mut b = vec![];
                e.read_to_end(&mut b).map_err(|e| format!("{path}: {e}"))?;
                small.insert(path, b);
            }
        }
    }
    let mut b = Bundle {
        file: file.to_path_buf(),
        blobs,
        manifest_digest: String::new(),
        manifest: vec![],
        config: BundleConfig {
            exporter: String::new(),
            sequence: 0,
            created: jiff::Timestamp::UNIX_EPOCH,
            since: None,
            tuf_repo: String::new(),
            counts: BTreeMap::new(),
        },
        files: BTreeMap::new(),
        signature: None,
        size,
    };
    let read = |p: &str| small.get(p).cloned().ok_or_else(|| format!("not an OCI image layout: no {p}"));
    let layout: Value = serde_json::from_slice(&read("oci-layout")?).map_err(|e| format!("oci-layout: {e}"))?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        return Err(format!("oci-layout: imageLayoutVersion {} (expected 1.0.0)", layout["imageLayoutVersion"]));
    }
    let index: Value = serde_json::from_slice(&read("index.json")?).map_err(|e| format!("index.json: {e}"))?;
    let blob = |b: &Bundle, d: &str| -> Result<Vec<u8>, String> {
        let hex = d
            .strip_prefix("sha256:")
            .filter(|h| crate::core::digest::is_sha256_hex(h))
            .ok_or_else(|| format!("digest {d:?}: not sha256"))?;
        b.blob(hex)
    };
    let manifests = index["manifests"].as_array().ok_or("index.json: no manifests")?;
    let find = |a: &str| manifests.iter().filter(|m| m["artifactType"] == a).collect::<Vec<_>>();
    let [m] = &find(ARTIFACT_BUNDLE)[..] else { return Err("index.json: not exactly one bundle manifest".into()) };
    let manifest_digest = m["digest"].as_str().ok_or("index.json: the bundle manifest has no digest")?.to_string();
    let manifest = blob(&b, &manifest_digest)?;
    let mv: Value = serde_json::from_slice(&manifest).map_err(|e| format!("the bundle manifest: {e}"))?;
    if mv["artifactType"] != ARTIFACT_BUNDLE || mv["config"]["mediaType"] != MT_CONFIG {
        return Err("the bundle manifest is not a trustmirror air-gap bundle".into());
    }
    let config: BundleConfig = serde_json::from_slice(&blob(&b, mv["config"]["digest"].as_str().unwrap_or_default())?)
        .map_err(|e| format!("the bundle's config: {e}"))?;
    let mut files = BTreeMap::new();
    for l in mv["layers"].as_array().ok_or("the bundle manifest has no layers")? {
        let path = l["annotations"][TITLE].as_str().ok_or("a layer without a path")?;
        if !safe_path(path) {
            return Err(format!("layer path {path:?} is not a safe relative path"));
        }
        let d = l["digest"].as_str().unwrap_or_default().trim_start_matches("sha256:").to_string();
        let (_, len) = b.blobs.get(&d).ok_or_else(|| format!("{path}: blob sha256:{d} is missing"))?;
        if Some(*len) != l["size"].as_u64() {
            return Err(format!("{path}: {len} bytes, the manifest says {}", l["size"]));
        }
        if files.insert(path.to_string(), d).is_some() {
            return Err(format!("{path} is listed twice"));
        }
    }
    let signature = match &find(ARTIFACT_SIGNATURE)[..] {
        [] => None,
        [s] => {
            let sm: Value = serde_json::from_slice(&blob(&b, s["digest"].as_str().unwrap_or_default())?)
                .map_err(|e| format!("the signature manifest: {e}"))?;
            if sm["subject"]["digest"] != manifest_digest {
                return Err("the signature manifest is about another manifest".into());
            }
            let env = blob(&b, sm["layers"][0]["digest"].as_str().unwrap_or_default())?;
            Some(serde_json::from_slice(&env).map_err(|e| format!("the signature envelope: {e}"))?)
        }
        _ => return Err("index.json: more than one signature manifest".into()),
    };
    (b.manifest_digest, b.manifest, b.config, b.files, b.signature) = (manifest_digest, manifest, config, files, signature);
    Ok(b)
}
