//! Attestation policies kept in files beside the policy documents (`policy.url: file:…`).
//!
//! The core reads no files: the caller hands it a reader (the admission loader reads relative
//! paths from the policy files' directory), and everything read becomes part of the policy set's
//! version, so an edit to a referenced file is a new policy version. Remote policies
//! (`configMapRef`, `http(s)` URLs) would be fetched at admission time and are refused.

use std::cell::RefCell;

/// Reads a referenced policy file (the path after `file:`/`file://`), or says why not.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> Result<String, String>;

#[derive(Default)]
pub struct Sources<'a> {
    read: Option<ReadFile<'a>>,
    /// (path as referenced, text), in the order read.
    pub(super) read_so_far: RefCell<Vec<(String, String)>>,
}

impl<'a> Sources<'a> {
    pub fn with(read: ReadFile<'a>) -> Self {
        Self { read: Some(read), read_so_far: RefCell::default() }
    }

    /// The policy text of an attestation policy: inline `data`, or the file `url` names.
    pub(super) fn policy_text(
        &self,
        data: Option<&str>,
        url: Option<&str>,
        config_map: bool,
        kind: &str,
        at: &str,
    ) -> Result<String, String> {
        if config_map {
            return Err(format!(
                "{at}.policy.configMapRef: read from the cluster at admission time; give the policy inline as data or as a local file (url: file:…)"
            ));
        }
        match (data, url) {
            (Some(_), Some(_)) => Err(format!("{at}.policy: give data or url, not both")),
            (Some(d), None) => Ok(d.to_string()),
            (None, Some(u)) => {
                let Some(rest) = u.strip_prefix("file:") else {
                    return Err(format!(
                        "{at}.policy.url {u:?}: fetched over the network at admission time; give the policy inline as data or as a local file (url: file:///path or file:relative/path)"
                    ));
                };
                let path = match rest.strip_prefix("//") {
                    Some(p) if p.starts_with('/') => p,
                    Some(_) => {
                        return Err(format!(
                            "{at}.policy.url {u:?}: a file URL names a path on this host: file:///absolute/path or file:relative/path"
                        ));
                    }
                    None => rest,
                };
                if path.is_empty() {
                    return Err(format!("{at}.policy.url {u:?}: no path"));
                }
                let read = self.read.ok_or_else(|| {
                    format!(
                        "{at}.policy.url {u:?}: a policy in a file needs the policy documents loaded from files (policy check, serve, gate)"
                    )
                })?;
                let text = read(path).map_err(|e| format!("{at}.policy.url {u:?}: {e}"))?;
                self.read_so_far.borrow_mut().push((path.to_string(), text.clone()));
                Ok(text)
            }
            (None, None) => Err(format!("{at}.policy: a {kind} policy needs data (inline) or url: file:…")),
        }
    }

    /// The paths read so far, as referenced.
    pub fn paths(&self) -> Vec<String> {
        self.read_so_far.borrow().iter().map(|(p, _)| p.clone()).collect()
    }
}
