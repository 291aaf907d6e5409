//! Loading what operators write: policy documents and the banned list, and the break-glass
//! exemptions file (a ConfigMap every replica sees). Errors name the file and what is wrong.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Deserialize;

use crate::core::policy::sources::Sources;
use crate::core::policy::{BannedList, PolicySet};
use crate::store::admission::{Exemption, Scope};

/// Why a file could not be loaded. Reloads keep the previous state on any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("reading {what} {path}: {detail}")]
    Read { what: &'static str, path: String, detail: String },
    #[error("{what} {path}: {size} bytes is larger than the {max}-byte limit")]
    TooLarge { what: &'static str, path: String, size: usize, max: usize },
    #[error("{what} {path}: {detail}")]
    Invalid { what: &'static str, path: String, detail: String },
}

/// Largest policy, banned-list or exemptions file read.
pub const MAX_FILE: usize = 4 << 20;

fn read(what: &'static str, p: &Path) -> Result<String, LoadError> {
    let path = p.display().to_string();
    let meta = std::fs::metadata(p).map_err(|e| LoadError::Read { what, path: path.clone(), detail: e.to_string() })?;
    if meta.len() as usize > MAX_FILE {
        return Err(LoadError::TooLarge { what, path, size: meta.len() as usize, max: MAX_FILE });
    }
    std::fs::read_to_string(p).map_err(|e| LoadError::Read { what, path, detail: e.to_string() })
}

/// Where a policy document's `url: file:PATH` is read from: an absolute path as written; a
/// relative one from the directory of the policy files (which must then share one directory).
pub fn policy_source_path(files: &[PathBuf], path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let dirs: std::collections::BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    match dirs.into_iter().collect::<Vec<_>>().as_slice() {
        [d] => Ok(d.join(p)),
        _ => Err(format!("{path}: a relative path needs the policy files in one directory; give an absolute path (file:///…)")),
    }
}

/// Load policy documents and the banned list from files; attestation policies the documents keep
/// in files (`url: file:…`) are read too. Returns the set and the files it read.
pub fn load_policy_and_sources(files: &[PathBuf], banned: Option<&PathBuf>) -> Result<(PolicySet, Vec<PathBuf>), LoadError> {
    let mut texts = vec![];
    for f in files {
        texts.push((f.display().to_string(), read("policy", f)?));
    }
    let banned = match banned {
        None => BannedList::default(),
        Some(p) => BannedList::parse(&read("banned list", p)?).map_err(|detail| LoadError::Invalid {
            what: "banned list",
            path: p.display().to_string(),
            detail,
        })?,
    };
    let path = files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
    let reader = |p: &str| -> Result<String, String> {
        let full = policy_source_path(files, p)?;
        read("attestation policy", &full).map_err(|e| e.to_string())
    };
    let sources = Sources::with(&reader);
    let refs: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let set = PolicySet::parse_files_with(&refs, banned, &sources).map_err(|detail| LoadError::Invalid { what: "policy", path, detail })?;
    let read_files = sources.paths().iter().filter_map(|p| policy_source_path(files, p).ok()).collect();
    Ok((set, read_files))
}

/// Load policy documents and the banned list from files.
pub fn load_policy(files: &[PathBuf], banned: Option<&PathBuf>) -> Result<PolicySet, LoadError> {
    load_policy_and_sources(files, banned).map(|(s, _)| s)
}

/// Exemptions file (`exemptions:` list), as a ConfigMap carries it.
#[derive(Debug, Deserialize)]
struct ExemptionsFile {
    #[serde(default)]
    exemptions: Vec<FileExemption>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileExemption {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    reason: String,
    #[serde(default)]
    created_by: Option<String>,
    created_at: Timestamp,
    expires_at: Timestamp,
}

/// File exemptions get ids above this (store ids count from 1).
pub const FILE_EXEMPTION_BASE: u64 = 1 << 40;

pub fn load_exemptions_file(path: &Path) -> Result<Vec<Exemption>, LoadError> {
    let t = read("exemptions", path)?;
    let invalid = |detail: String| LoadError::Invalid { what: "exemptions", path: path.display().to_string(), detail };
    let f: ExemptionsFile = serde_yaml::from_str(&t).map_err(|e| invalid(e.to_string()))?;
    f.exemptions
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let scope = match (e.namespace, e.digest) {
                (Some(n), None) => Scope::Namespace(n),
                (None, Some(d)) => Scope::Digest(d),
                _ => return Err(invalid(format!("exemption {i}: exactly one of namespace or digest"))),
            };
            if e.reason.trim().is_empty() {
                return Err(invalid(format!("exemption {i}: a reason is required")));
            }
            Ok(Exemption {
                id: FILE_EXEMPTION_BASE + i as u64,
                scope,
                reason: e.reason,
                created_by: e.created_by.unwrap_or_else(|| "exemptions file".into()),
                created_at: e.created_at,
                expires_at: e.expires_at,
                revoked: false,
            })
        })
        .collect()
}
