//! The testbed's OCI registry — Debian's real `docker-registry` (distribution 2.8) on 127.0.0.1,
//! anonymous or with htpasswd auth — and a small pusher (oci-client) for images built from
//! scratch and for signature artifacts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use oci_client::secrets::RegistryAuth;
use serde_json::json;
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

pub fn digest_of(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A running `docker-registry` process (killed on drop).
pub struct Registry {
    pub addr: String,
    pub dir: PathBuf,
    pub auth: Option<(String, String)>,
    child: Option<Child>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Registry {
    /// Start Debian's `docker-registry` on 127.0.0.1 (a free port), storing under `dir`. With
    /// `auth`, htpasswd (bcrypt) Basic auth is required for every request.
    pub fn start(dir: &Path, auth: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let bin = which("docker-registry")
            .ok_or_else(|| anyhow!("docker-registry not found: install Debian's docker-registry package (.ci/install)"))?;
        std::fs::create_dir_all(dir.join("data"))?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if let Some((u, p)) = auth {
            let hash = bcrypt::hash(p, 5).context("bcrypt")?;
            std::fs::write(dir.join("htpasswd"), format!("{u}:{hash}\n"))?;
            cfg.push_str(&format!("auth:\n  htpasswd:\n    realm: testbed-registry\n    path: {}\n", dir.join("htpasswd").display()));
        }
        std::fs::write(dir.join("config.yml"), cfg)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        let mut r = Self { addr, dir: dir.to_path_buf(), auth: auth.map(|(u, p)| (u.into(), p.into())), child: Some(child) };
        r.wait_ready()?;
        Ok(r)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
                return Err(anyhow!("docker-registry exited ({st}): {log}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(anyhow!("docker-registry did not listen on {} within 10 s", self.addr))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Leave the process running (the CLI's `testbed up` hands it to `testbed down`).
    pub fn detach(mut self) -> u32 {
        self.child.take().map(|c| c.id()).unwrap_or(0)
    }

    pub fn registry_auth(&self) -> RegistryAuth {
        crate::mirror::oci::Credentials {
            username: self.auth.as_ref().map(|a| a.0.clone()),
            password: self.auth.as_ref().map(|a| a.1.clone()),
            token: None,
        }
        .auth()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

pub use crate::mirror::oci::push::Pusher;

/// A single-layer image built from scratch (a tar.gz with one file), pushed as an OCI manifest.
pub struct BuiltImage {
    pub repo: String,
    pub tag: String,
    pub digest: String,
    pub manifest: Vec<u8>,
    pub config_digest: String,
}

/// Build a deterministic image whose only file is `/etc/<name>` containing `content`, push it
/// to `repo:tag`, and return its manifest digest.
pub async fn push_scratch_image(p: &Pusher, repo: &str, tag: &str, name: &str, content: &[u8]) -> anyhow::Result<BuiltImage> {
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("etc/{name}"))?;
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, content)?;
        b.finish()?;
    }
    let diff_id = digest_of(&tar_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar_bytes)?;
    let layer = gz.finish()?;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": format!("trustmirror testbed: {name}")}],
    }))?;
    let layer_digest = p.push_blob(repo, &layer).await?;
    let config_digest = p.push_blob(repo, &config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": layer.len()}],
    }))?;
    let digest = p.push_manifest(repo, Some(tag), OCI_MANIFEST, &manifest).await?;
    Ok(BuiltImage { repo: repo.into(), tag: tag.into(), digest, manifest, config_digest })
}
