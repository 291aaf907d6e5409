//! What lands in the node's directory, from verified material only. Every file is replaced
//! atomically and only when its content changes.
//!
//! | path | for |
//! |---|---|
//! | `trusted_root.json` | byte-identical to the TUF target: `cosign --trusted-root`, sigstore clients |
//! | `signing_config.v0.2.json`, `client_trust_config.json` | sigstore-python `--trust-config` (when the repository publishes a signing config) |
//! | `sigstore-python/sigstore-python/tuf/<mirror, %-encoded>/` | sigstore-python `--instance MIRROR --offline` with `XDG_CACHE_HOME=DIR/sigstore-python` |
//! | `tuf/` | the agent's TUF cache = cosign's `TUF_ROOT` (see [`super::cache`]) |
//! | `keys/<policy>--<authority>.pub` | public keys the policies name |
//! | `containers/policy.json`, `containers/registries.d/trustmirror.yaml` | CRI-O, podman, skopeo |
//! | `report.txt`, `report.json` | what the runtime policy carries over and what it does not |
//! | `status.json` | versions, expiries, source, last success and error |

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::cache::{SIGNING_CONFIG, TRUSTED_ROOT, Verified, write_if_changed};
use crate::core::nodepolicy::{NodePolicy, Severity};

pub const CLIENT_TRUST_CONFIG: &str = "client_trust_config.json";

/// sigstore-python's cache directory name for an instance URL: the URL without a trailing slash,
/// percent-encoded with nothing safe (Python's `urllib.parse.quote(url, safe="")`).
pub fn sigstore_python_dir(mirror: &str) -> String {
    const PY_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~');
    percent_encoding::utf8_percent_encode(mirror.trim_end_matches('/'), PY_SAFE).to_string()
}

/// Write the trust material. Returns the paths that changed.
pub fn trust_material(out: &Path, mirror: &str, v: &Verified) -> std::io::Result<Vec<PathBuf>> {
    let mut changed = vec![];
    let mut put = |p: PathBuf, b: &[u8]| -> std::io::Result<()> {
        if write_if_changed(&p, b)? {
            changed.push(p);
        }
        Ok(())
    };
    let root = &v.targets[TRUSTED_ROOT];
    put(out.join(TRUSTED_ROOT), root)?;
    let py = out.join("sigstore-python/sigstore-python/tuf").join(sigstore_python_dir(mirror));
    if let Some(sc) = v.targets.get(SIGNING_CONFIG) {
        put(out.join(SIGNING_CONFIG), sc)?;
        let parse = |b: &[u8], what: &str| -> std::io::Result<Value> {
            serde_json::from_slice(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what} is not JSON: {e}")))
        };
        let cfg = json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": parse(root, TRUSTED_ROOT)?,
            "signingConfig": parse(sc, SIGNING_CONFIG)?,
        });
        put(out.join(CLIENT_TRUST_CONFIG), &serde_json::to_vec_pretty(&cfg).expect("json"))?;
        put(py.join(SIGNING_CONFIG), sc)?;
    }
    put(py.join(TRUSTED_ROOT), root)?;
    Ok(changed)
}

/// Write the runtime policy, its keys and its report.
pub fn runtime_policy(out: &Path, np: &NodePolicy) -> std::io::Result<Vec<PathBuf>> {
    let mut changed = vec![];
    let mut put = |p: PathBuf, b: &[u8]| -> std::io::Result<()> {
        if write_if_changed(&p, b)? {
            changed.push(p);
        }
        Ok(())
    };
    for (name, pem) in &np.keys {
        put(out.join("keys").join(safe_name(name)), pem.as_bytes())?;
    }
    put(out.join("containers/policy.json"), &np.policy_json)?;
    put(out.join("containers/registries.d/trustmirror.yaml"), &np.registries_d)?;
    put(
        out.join("report.json"),
        &serde_json::to_vec_pretty(&json!({"scopes": np.scopes, "findings": np.findings, "partial": np.partial()})).expect("json"),
    )?;
    put(out.join("report.txt"), report_text(np).as_bytes())?;
    Ok(changed)
}

/// A report when the runtime policy could not be rendered (nothing else is written).
pub fn refusal(out: &Path, why: &str) -> std::io::Result<()> {
    write_if_changed(&out.join("report.txt"), format!("containers/policy.json NOT written:\n  {why}\n").as_bytes())?;
    write_if_changed(&out.join("report.json"), &serde_json::to_vec_pretty(&json!({"refused": why})).expect("json"))?;
    Ok(())
}

fn safe_name(n: &str) -> String {
    n.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

fn report_text(np: &NodePolicy) -> String {
    let mut s = String::from("containers/policy.json — what the runtime enforces, per scope:\n");
    for sc in &np.scopes {
        let scope = if sc.scope.is_empty() { "(every docker image)" } else { &sc.scope };
        s.push_str(&format!("  {scope}  [{}]: {}\n", sc.policies.join(", "), sc.requirements.join(" AND ")));
    }
    for (sev, title) in [(Severity::Weaker, "NOT enforced by the runtime (the webhook still enforces it):"), (Severity::Info, "Notes:")] {
        let fs: Vec<_> = np.findings.iter().filter(|f| f.severity == sev).collect();
        if fs.is_empty() {
            continue;
        }
        s.push_str(title);
        s.push('\n');
        for f in fs {
            let who = [f.policy.as_str(), f.scope.as_deref().unwrap_or_default()]
                .iter()
                .filter(|x| !x.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            s.push_str(&format!("  - {}{}\n", if who.is_empty() { String::new() } else { format!("[{who}] ") }, f.message));
        }
    }
    s
}
