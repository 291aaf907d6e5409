//! Kubernetes `AdmissionReview` (`admission.k8s.io/v1`) as the API server sends and expects it,
//! the images of the workload kinds trustmirror admits, and JSONPatch for tag → digest.
//!
//! Hand-written serde types rather than `k8s-openapi`: we read six fields of the request and the
//! container lists of seven workload kinds; the full generated API would add ~1 minute of build
//! time and a Kubernetes-version feature flag for nothing we use.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const API_VERSION: &str = "admission.k8s.io/v1";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Kind {
    #[serde(default)]
    kind: String,
}

/// The part of an `AdmissionRequest` trustmirror reads (everything else is ignored).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    uid: String,
    #[serde(default)]
    kind: Kind,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    user_info: Option<UserInfo>,
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Default)]
struct UserInfo {
    #[serde(default)]
    username: String,
}

/// One container image in a workload, with where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// JSON pointer to the `image` field (for the patch).
    pub path: String,
    /// `containers[app]`, `initContainers[init]`, …
    pub container: String,
    pub image: String,
}

/// A review, parsed once: everything the engine decides from and the response needs.
#[derive(Debug, Clone)]
pub struct Review {
    pub uid: String,
    pub operation: String,
    /// The object's kind (`Pod`, `Deployment`, …).
    pub kind: String,
    /// The request's namespace, else the object's, else `default`.
    pub namespace: String,
    /// `Kind/name`, for messages and audit records.
    pub object: String,
    pub user: String,
    /// The AdmissionRequest as received (Gatekeeper constraints read it as `input.review`).
    pub request: Value,
    /// Every container image of the object, with its JSON pointer; or why the object's pod
    /// spec could not be read. Empty for kinds trustmirror does not admit, objectless requests,
    /// and DELETE/CONNECT.
    pub images: Result<Vec<ImageRef>, String>,
}

/// Parse an `AdmissionReview` request body; the error says what was wrong.
pub fn parse(body: &[u8]) -> Result<Review, String> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    match (env.api_version.as_deref(), env.kind.as_deref()) {
        (Some(API_VERSION), Some("AdmissionReview")) => {}
        (v, k) => {
            return Err(format!(
                "expected apiVersion {API_VERSION} kind AdmissionReview, got {} {} (configure admissionReviewVersions: [v1])",
                v.unwrap_or("(none)"),
                k.unwrap_or("(none)")
            ));
        }
    }
    let raw = env.request.ok_or("AdmissionReview has no request")?;
    let req: RawRequest = serde_json::from_value(raw.clone()).map_err(|e| format!("the AdmissionReview request: {e}"))?;
    if req.uid.is_empty() {
        return Err("AdmissionReview request has no uid".into());
    }
    let object = req.object.as_ref();
    let images = match object {
        Some(o) if !matches!(req.operation.as_str(), "DELETE" | "CONNECT") => images(&req.kind.kind, o),
        _ => Ok(vec![]),
    };
    let namespace = req
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| object.and_then(|o| o["metadata"]["namespace"].as_str()).map(str::to_string))
        .unwrap_or_else(|| "default".into());
    let name = req
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| object.and_then(|o| o["metadata"]["name"].as_str().or(o["metadata"]["generateName"].as_str())).map(str::to_string))
        .unwrap_or_else(|| "?".into());
    Ok(Review {
        object: format!("{}/{name}", req.kind.kind),
        uid: req.uid,
        operation: req.operation,
        kind: req.kind.kind,
        namespace,
        user: req.user_info.map(|u| u.username).unwrap_or_default(),
        images,
        request: raw,
    })
}

/// Where the pod spec sits in each admitted kind (`None`: not a workload trustmirror admits).
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// Every container, initContainer and ephemeralContainer image of the object.
pub fn images(kind: &str, object: &Value) -> Result<Vec<ImageRef>, String> {
    let Some(base) = pod_spec_pointer(kind) else { return Ok(vec![]) };
    let Some(spec) = object.pointer(base) else { return Err(format!("{kind} has no pod spec at {base}")) };
    let mut out = vec![];
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(cs) = spec.get(list) else { continue };
        let cs = cs.as_array().ok_or_else(|| format!("{base}/{list} is not a list"))?;
        for (i, c) in cs.iter().enumerate() {
            let name = c["name"].as_str().unwrap_or("?");
            let image = c["image"].as_str().ok_or_else(|| format!("{list}[{name}] has no image"))?;
            out.push(ImageRef { path: format!("{base}/{list}/{i}/image"), container: format!("{list}[{name}]"), image: image.to_string() });
        }
    }
    Ok(out)
}

/// The response envelope.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// base64 of the JSONPatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub code: u16,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Response {
    pub fn allow(uid: &str) -> Self {
        Self { uid: uid.into(), allowed: true, status: None, warnings: vec![], patch_type: None, patch: None }
    }
    pub fn deny(uid: &str, message: String) -> Self {
        Self {
            uid: uid.into(),
            allowed: false,
            status: Some(Status { code: 403, message, reason: Some("Forbidden".into()) }),
            warnings: vec![],
            patch_type: None,
            patch: None,
        }
    }
    /// Attach a JSONPatch (RFC 6902) of `replace` operations.
    pub fn with_patch(mut self, ops: &[(String, String)]) -> Self {
        if !ops.is_empty() {
            let p: Vec<Value> = ops.iter().map(|(path, v)| json!({"op": "replace", "path": path, "value": v})).collect();
            self.patch_type = Some("JSONPatch".into());
            self.patch = Some(base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&p).expect("json")));
        }
        self
    }
    pub fn to_review(&self) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": self})
    }
}

/// `registry/repo:tag` → `registry/repo@digest` (a reference that already names a digest keeps it).
pub fn pin(image: &str, digest: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    let name = match image[slash..].find(':') {
        Some(c) => &image[..slash + c],
        None => image,
    };
    format!("{name}@{digest}")
}

/// Apply a JSONPatch of `replace` operations to a value (the demo and tests apply what the
/// mutating endpoint returned, as the API server would).
pub fn apply_patch(object: &mut Value, patch_b64: &str) -> Result<(), String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(patch_b64).map_err(|e| format!("patch: {e}"))?;
    let ops: Vec<Value> = serde_json::from_slice(&raw).map_err(|e| format!("patch: {e}"))?;
    for op in ops {
        if op["op"] != "replace" {
            return Err(format!("unsupported patch op {}", op["op"]));
        }
        let path = op["path"].as_str().ok_or("patch op without path")?;
        let slot = object.pointer_mut(path).ok_or_else(|| format!("patch path {path} does not exist"))?;
        *slot = op["value"].clone();
    }
    Ok(())
}

/// An `AdmissionReview` request for an object (the demo, tests and benchmarks send these).
pub fn request_for(uid: &str, namespace: &str, object: &Value) -> Value {
    let kind = object["kind"].as_str().unwrap_or("Pod");
    let (group, version) = match object["apiVersion"].as_str().unwrap_or("v1").split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), object["apiVersion"].as_str().unwrap_or("v1").to_string()),
    };
    json!({
        "apiVersion": API_VERSION, "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_ascii_lowercase())},
            "name": object["metadata"]["name"], "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
            "object": object, "oldObject": null, "dryRun": false
        }
    })
}

/// A Pod running `images` (one container each).
pub fn pod(name: &str, namespace: &str, images: &[&str]) -> Value {
    let cs: Vec<Value> = images.iter().enumerate().map(|(i, im)| json!({"name": format!("c{i}"), "image": im})).collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": {"containers": cs}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_every_workload_kind() {
        let spec = json!({"initContainers": [{"name": "i", "image": "r/init:1"}], "containers": [{"name": "a", "image": "r/a:1"}, {"name": "b", "image": "r/b@sha256:00"}], "ephemeralContainers": [{"name": "dbg", "image": "r/dbg:1"}]});
        let pod = json!({"spec": spec});
        let got = images("Pod", &pod).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            ImageRef { path: "/spec/initContainers/0/image".into(), container: "initContainers[i]".into(), image: "r/init:1".into() }
        );
        assert_eq!(got[3].path, "/spec/ephemeralContainers/0/image");
        let dep = json!({"spec": {"template": {"spec": spec}}});
        for k in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"] {
            assert_eq!(images(k, &dep).unwrap()[1].path, "/spec/template/spec/containers/0/image", "{k}");
        }
        let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}});
        assert_eq!(images("CronJob", &cj).unwrap()[2].image, "r/b@sha256:00");
        assert!(images("ConfigMap", &json!({})).unwrap().is_empty());
        assert!(images("Deployment", &json!({"spec": {}})).unwrap_err().contains("no pod spec"));
        assert!(images("Pod", &json!({"spec": {"containers": [{"name": "x"}]}})).unwrap_err().contains("has no image"));
        assert!(images("Pod", &json!({"spec": {"containers": {"a": 1}}})).unwrap_err().contains("not a list"));
    }

    #[test]
    fn pinning_and_patches() {
        assert_eq!(pin("127.0.0.1:5000/myorg/app:v1", "sha256:ab"), "127.0.0.1:5000/myorg/app@sha256:ab");
        assert_eq!(pin("127.0.0.1:5000/myorg/app", "sha256:ab"), "127.0.0.1:5000/myorg/app@sha256:ab");
        assert_eq!(pin("nginx:1.25", "sha256:ab"), "nginx@sha256:ab");
        assert_eq!(pin("r/a@sha256:cd", "sha256:ab"), "r/a@sha256:cd");
        let mut p = pod("x", "ns", &["r/a:1", "r/b:2"]);
        let r = Response::allow("u").with_patch(&[("/spec/containers/1/image".into(), "r/b@sha256:ab".into())]);
        apply_patch(&mut p, r.patch.as_ref().unwrap()).unwrap();
        assert_eq!(p["spec"]["containers"][1]["image"], "r/b@sha256:ab");
        assert_eq!(p["spec"]["containers"][0]["image"], "r/a:1");
        assert!(Response::allow("u").with_patch(&[]).patch.is_none());
    }

    #[test]
    fn hostile_reviews_are_refused_with_reasons() {
        assert!(parse(b"{").unwrap_err().contains("not an AdmissionReview"));
        assert!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}"#)
                .unwrap_err()
                .contains("v1beta1")
        );
        assert!(parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).unwrap_err().contains("no request"));
        assert!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#).unwrap_err().contains("no uid")
        );
        let r = parse(serde_json::to_vec(&request_for("u1", "prod", &pod("p", "prod", &["r/a:1"]))).unwrap().as_slice()).unwrap();
        assert_eq!((r.uid.as_str(), r.namespace.as_str(), r.kind.as_str(), r.operation.as_str()), ("u1", "prod", "Pod", "CREATE"));
        assert_eq!(r.object, "Pod/p");
        assert_eq!(r.images.unwrap()[0].path, "/spec/containers/0/image");
    }
}
