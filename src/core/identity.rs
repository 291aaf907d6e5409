//! Who signed, and whether that is who the policy wants: cosign's identity vocabulary (SAN and
//! issuer, exact, regular expression or Kyverno wildcard) and the GitHub workflow claims Fulcio
//! puts in the certificate, applied to what verification established.

use serde::Serialize;

use super::verify::error::{Check, VerifyError, VerifyResult};

/// Exact or regular-expression match (cosign's `--certificate-identity` vs `…-regexp`).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    /// Anchored at both ends, as cosign (Go `regexp.MatchString` with the user's anchors) is not;
    /// trustmirror anchors to avoid the classic `https://github.com/org/` prefix mistakes.
    Regex(regex::Regex),
    /// A Kyverno wildcard (go-wildcard: whole string, `*` any run of characters including `/`,
    /// `?` exactly one), kept with the regular expression it compiles to.
    Wildcard(String, regex::Regex),
}

impl Matcher {
    pub fn regex(pattern: &str) -> VerifyResult<Self> {
        let anchored = format!("^(?:{pattern})$");
        regex::Regex::new(&anchored)
            .map(Matcher::Regex)
            .map_err(|e| VerifyError::new(Check::Parse, format!("invalid regular expression {pattern:?}: {e}")))
    }
    /// A Kyverno wildcard pattern.
    pub fn wildcard(pattern: &str) -> Self {
        let mut re = String::from("(?s)^");
        for c in pattern.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        re.push('$');
        Matcher::Wildcard(pattern.to_string(), regex::Regex::new(&re).expect("escaped wildcard is a valid regex"))
    }
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(e) => e == s,
            Matcher::Regex(r) | Matcher::Wildcard(_, r) => r.is_match(s),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(e) => write!(f, "{e:?}"),
            Matcher::Regex(r) => write!(f, "/{}/", r.as_str().trim_start_matches("^(?:").trim_end_matches(")$")),
            Matcher::Wildcard(p, _) => write!(f, "{p:?} (wildcard)"),
        }
    }
}

/// Who must have signed, for keyless signatures.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicy {
    pub san: Option<Matcher>,
    pub issuer: Option<Matcher>,
    /// GitHub `owner/repo` the workflow ran in (Fulcio source repository claim).
    pub github_repository: Option<String>,
    /// Git ref the workflow ran on (`refs/heads/main`).
    pub github_ref: Option<Matcher>,
    /// The workflow file (`.github/workflows/build.yml`), from the build-config URI claim.
    pub github_workflow: Option<Matcher>,
}

/// CI claims from the Fulcio certificate.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Claims {
    pub source_repository: Option<String>,
    pub source_ref: Option<String>,
    pub build_config: Option<String>,
    pub build_signer: Option<String>,
    pub runner_environment: Option<String>,
}

impl From<&sigstore_crypto::x509::FulcioCiClaims> for Claims {
    fn from(c: &sigstore_crypto::x509::FulcioCiClaims) -> Self {
        Claims {
            source_repository: c.source_repository_uri.clone(),
            source_ref: c.source_repository_ref.clone(),
            build_config: c.build_config_uri.clone(),
            build_signer: c.build_signer_uri.clone(),
            runner_environment: c.runner_environment.clone(),
        }
    }
}

fn github_repo(uri: &str) -> Option<&str> {
    uri.strip_prefix("https://github.com/")
}

/// The workflow path of a `https://github.com/OWNER/REPO/.github/workflows/F.yml@REF` URI.
fn workflow_path(uri: &str) -> Option<&str> {
    let rest = github_repo(uri)?;
    let (path, _) = rest.split_once('@').unwrap_or((rest, ""));
    let mut parts = path.splitn(3, '/');
    let (_, _, file) = (parts.next()?, parts.next()?, parts.next()?);
    Some(file)
}

impl IdentityPolicy {
    /// Does a verified certificate's SAN, issuer and CI claims satisfy this policy?
    pub fn check(&self, san: Option<&str>, issuer: Option<&str>, claims: &Claims) -> VerifyResult<()> {
        check_identity(self, san, issuer, claims)
    }
}

pub(crate) fn check_identity(p: &IdentityPolicy, san: Option<&str>, issuer: Option<&str>, c: &Claims) -> VerifyResult<()> {
    if let Some(m) = &p.issuer {
        match issuer {
            Some(i) if m.matches(i) => {}
            other => return Err(VerifyError::new(Check::Issuer, format!("certificate issuer {other:?} does not match {m}"))),
        }
    }
    if let Some(m) = &p.san {
        match san {
            Some(s) if m.matches(s) => {}
            other => return Err(VerifyError::new(Check::Identity, format!("certificate identity {other:?} does not match {m}"))),
        }
    }
    if let Some(want) = &p.github_repository {
        let got = c.source_repository.as_deref().and_then(github_repo);
        if got != Some(want.as_str()) {
            return Err(VerifyError::new(Check::Claim, format!("source repository {got:?} is not {want:?}")));
        }
    }
    if let Some(m) = &p.github_ref {
        match c.source_ref.as_deref() {
            Some(r) if m.matches(r) => {}
            other => return Err(VerifyError::new(Check::Claim, format!("source ref {other:?} does not match {m}"))),
        }
    }
    if let Some(m) = &p.github_workflow {
        let wf = c.build_config.as_deref().and_then(workflow_path);
        match wf {
            Some(w) if m.matches(w) => {}
            other => return Err(VerifyError::new(Check::Claim, format!("workflow {other:?} does not match {m}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_anchored() {
        let m = Matcher::regex("https://github.com/myorg/.*").unwrap();
        assert!(m.matches("https://github.com/myorg/app/.github/workflows/b.yml@refs/heads/main"));
        assert!(!m.matches("https://evil.example/?https://github.com/myorg/x"));
        assert!(Matcher::regex("(").is_err());
    }

    #[test]
    fn workflow_paths_are_extracted() {
        assert_eq!(
            workflow_path("https://github.com/myorg/app/.github/workflows/build.yml@refs/heads/main"),
            Some(".github/workflows/build.yml")
        );
        assert_eq!(workflow_path("https://gitlab.com/x"), None);
    }
}
