//! The registry's HTTP API (OCI distribution), read-only and bounded: every response body is read
//! as a stream and refused the moment it passes its limit — a registry that answers a manifest
//! request with gigabytes costs at most the limit, never the memory to hold the answer.
//!
//! Written here rather than taken from oci-client, which reads whole bodies (manifests, tag
//! lists, catalogs, referrers, token responses) into memory before any size check can run. What
//! it covers is small: GET with `Accept`, the registry token flow (`401` + `WWW-Authenticate:
//! Bearer realm,service,scope` → token, cached per scope) and Basic authentication, plain HTTP
//! only for hosts marked insecure, extra CA certificates. Pushing (the testbed) stays oci-client's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};

use super::material::{Credentials, OciError, RegistryOptions};

/// Largest token response accepted.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A bounded response: status, headers, body.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub struct Http {
    client: reqwest::Client,
    opts: RegistryOptions,
    /// Bearer tokens by (host, scope).
    tokens: Mutex<HashMap<(String, String), String>>,
}

/// The token scope a path needs (`repository:<name>:pull`, or the catalog's).
fn scope_of(path: &str) -> String {
    let p = path.split('?').next().unwrap_or(path);
    if p.starts_with("/v2/_catalog") {
        return "registry:catalog:*".into();
    }
    let rest = p.strip_prefix("/v2/").unwrap_or(p);
    let name = ["/manifests/", "/blobs/", "/tags/", "/referrers/"].iter().find_map(|m| rest.find(m).map(|i| &rest[..i])).unwrap_or(rest);
    format!("repository:{name}:pull")
}

/// The host to talk to for a registry name (Docker Hub's API is not at `docker.io`).
fn api_host(host: &str) -> &str {
    if host == "docker.io" { "registry-1.docker.io" } else { host }
}

/// A `WWW-Authenticate` challenge: scheme and parameters.
fn challenge(h: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    // key="value" pairs separated by commas; values may contain commas inside quotes
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else { break };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, tail) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match v.find(',') {
                Some(c) => (&v[..c], &v[c..]),
                None => (v, ""),
            }
        };
        params.insert(k, val.to_string());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Http {
    pub fn new(opts: &RegistryOptions) -> Result<Self, OciError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("trustmirror/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(t) = opts.timeout {
            b = b.read_timeout(t);
        }
        if let Some(pem) = &opts.ca_pem {
            for c in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| OciError::Malformed { what: "registry CA".into(), detail: e.to_string() })?
            {
                b = b.add_root_certificate(c);
            }
        }
        let client = b.build().map_err(|e| OciError::Malformed { what: "registry client".into(), detail: e.to_string() })?;
        Ok(Self { client, opts: opts.clone(), tokens: Mutex::new(HashMap::new()) })
    }

    fn creds(&self, host: &str) -> &Credentials {
        self.opts.per_host.get(host).unwrap_or(&self.opts.credentials)
    }

    fn url(&self, host: &str, path: &str) -> String {
        let scheme = if self.opts.insecure_hosts.iter().any(|h| h == host) { "http" } else { "https" };
        format!("{scheme}://{}{path}", api_host(host))
    }

    /// Read `resp`'s body, refusing more than `max` bytes while reading.
    async fn body(what: &str, mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, OciError> {
        if let Some(len) = resp.content_length()
            && len as usize > max
        {
            return Err(OciError::TooLarge { what: what.into(), size: len as usize, max });
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| OciError::Fetch { what: what.into(), detail: e.to_string() })? {
            if buf.len() + chunk.len() > max {
                return Err(OciError::TooLarge { what: what.into(), size: buf.len() + chunk.len(), max });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    /// A bearer token for `scope` from the challenge's realm (with the host's credentials, if any).
    async fn token(&self, host: &str, params: &HashMap<String, String>) -> Result<String, OciError> {
        let what = format!("token for {host}");
        let realm =
            params.get("realm").ok_or_else(|| OciError::Fetch { what: what.clone(), detail: "Bearer challenge without realm".into() })?;
        let mut q: Vec<(&str, &str)> = vec![];
        if let Some(s) = params.get("service") {
            q.push(("service", s));
        }
        if let Some(s) = params.get("scope") {
            q.push(("scope", s));
        }
        let mut req = self.client.get(realm).query(&q);
        let c = self.creds(host);
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.map_err(|e| OciError::Fetch { what: what.clone(), detail: e.to_string() })?;
        if !resp.status().is_success() {
            return Err(OciError::Fetch { what, detail: format!("token endpoint answered {}", resp.status()) });
        }
        let body = Self::body(&what, resp, MAX_TOKEN_RESPONSE).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| OciError::Malformed { what: what.clone(), detail: e.to_string() })?;
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| OciError::Malformed { what, detail: "token response has no token".into() })
    }

    /// GET `path` from `host` with `accept`, authenticating as the registry asks; the body is
    /// bounded by `max`. `Ok(None)`: 404.
    pub async fn get(&self, host: &str, path: &str, accept: &[&str], max: usize) -> Result<Option<Resp>, OciError> {
        let url = self.url(host, path);
        let what = format!("{host}{path}");
        let scope = scope_of(path);
        let mut auth: Option<String> = None;
        // a token already fetched for this scope, or a configured one
        if let Some(t) = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&(host.to_string(), scope.clone())) {
            auth = Some(format!("Bearer {t}"));
        } else if let Some(t) = &self.creds(host).token {
            auth = Some(format!("Bearer {t}"));
        }
        for attempt in 0..2 {
            let mut req = self.client.get(&url).header(ACCEPT, accept.join(", "));
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| OciError::Fetch { what: what.clone(), detail: crate::core::tuf::display_chain(&e) })?;
            match resp.status() {
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    let h = resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    let (scheme, params) = challenge(&h);
                    auth = Some(match scheme.as_str() {
                        "bearer" => {
                            let t = self.token(host, &params).await?;
                            self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert((host.to_string(), scope.clone()), t.clone());
                            format!("Bearer {t}")
                        }
                        "basic" => {
                            let c = self.creds(host);
                            let (Some(u), Some(p)) = (&c.username, &c.password) else {
                                return Err(OciError::Fetch {
                                    what,
                                    detail: "the registry wants credentials (HTTP 401); none are configured for it".into(),
                                });
                            };
                            format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{u}:{p}")))
                        }
                        _ => return Err(OciError::Fetch { what, detail: format!("HTTP 401 with an unusable challenge {h:?}") }),
                    });
                }
                s if s.is_success() => {
                    let headers = resp.headers().clone();
                    let body = Self::body(&what, resp, max).await?;
                    return Ok(Some(Resp { status: s, headers, body }));
                }
                s => return Err(OciError::Fetch { what, detail: format!("HTTP {s}") }),
            }
        }
        Err(OciError::Fetch { what, detail: "HTTP 401 after authenticating".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quoted_commas() {
        let (s, p) = challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#);
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((s.as_str(), p["realm"].as_str()), ("basic", "Registry Realm"));
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(scope_of("/v2/myorg/app/manifests/v1"), "repository:myorg/app:pull");
        assert_eq!(scope_of("/v2/a/b/c/tags/list?n=1000"), "repository:a/b/c:pull");
        assert_eq!(scope_of("/v2/_catalog?n=10"), "registry:catalog:*");
    }
}
