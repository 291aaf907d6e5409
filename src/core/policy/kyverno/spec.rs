//! The Kyverno `ClusterPolicy` / `Policy` document as written (kyverno.io/v1): every field
//! Kyverno's CRD has for the parts trustmirror reads, so a misspelled field is an error and a
//! field trustmirror cannot honour is refused by name in [`super`].

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields accepted so that Kyverno documents load; they decide nothing here
pub(super) struct Spec {
    #[serde(default)]
    pub(super) validation_failure_action: Option<String>,
    #[serde(default)]
    pub(super) validation_failure_action_overrides: Vec<Override>,
    #[serde(default)]
    pub(super) rules: Vec<Rule>,
    // decide nothing here
    #[serde(default)]
    pub(super) background: Option<bool>,
    #[serde(default)]
    pub(super) failure_policy: Option<String>,
    #[serde(default)]
    pub(super) webhook_timeout_seconds: Option<u32>,
    #[serde(default)]
    pub(super) admission: Option<bool>,
    #[serde(default)]
    pub(super) emit_warning: Option<bool>,
    #[serde(default)]
    pub(super) apply_rules: Option<String>,
    #[serde(default)]
    pub(super) schema_validation: Option<bool>,
    #[serde(default)]
    pub(super) use_server_side_apply: Option<bool>,
    #[serde(default)]
    pub(super) mutate_existing_on_policy_update: Option<bool>,
    #[serde(default)]
    pub(super) generate_existing: Option<bool>,
    #[serde(default)]
    pub(super) webhook_configuration: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Override {
    pub(super) action: String,
    #[serde(default)]
    pub(super) namespaces: Vec<String>,
    #[serde(default)]
    pub(super) namespace_selector: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields accepted so that Kyverno documents load; they decide nothing here
pub(super) struct Rule {
    pub(super) name: String,
    #[serde(default, rename = "match")]
    pub(super) matcher: Option<MatchSpec>,
    #[serde(default)]
    pub(super) exclude: Option<MatchSpec>,
    #[serde(default)]
    pub(super) verify_images: Vec<VerifyImages>,
    #[serde(default)]
    pub(super) validate: Option<Value>,
    #[serde(default)]
    pub(super) mutate: Option<Value>,
    #[serde(default)]
    pub(super) generate: Option<Value>,
    #[serde(default)]
    pub(super) context: Option<Value>,
    #[serde(default)]
    pub(super) preconditions: Option<Value>,
    #[serde(default)]
    pub(super) cel_preconditions: Option<Value>,
    #[serde(default)]
    pub(super) image_extractors: Option<Value>,
    #[serde(default)]
    pub(super) skip_background_requests: Option<bool>,
    #[serde(default)]
    pub(super) report_properties: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MatchSpec {
    #[serde(default)]
    pub(super) any: Vec<Filter>,
    #[serde(default)]
    pub(super) all: Vec<Filter>,
    #[serde(default)]
    pub(super) resources: Option<Description>,
    #[serde(default)]
    pub(super) subjects: Option<Value>,
    #[serde(default)]
    pub(super) roles: Option<Value>,
    #[serde(default)]
    pub(super) cluster_roles: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Filter {
    #[serde(default)]
    pub(super) resources: Option<Description>,
    #[serde(default)]
    pub(super) subjects: Option<Value>,
    #[serde(default)]
    pub(super) roles: Option<Value>,
    #[serde(default)]
    pub(super) cluster_roles: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Description {
    #[serde(default)]
    pub(super) kinds: Vec<String>,
    #[serde(default)]
    pub(super) namespaces: Vec<String>,
    #[serde(default)]
    pub(super) namespace_selector: Option<Value>,
    #[serde(default)]
    pub(super) names: Option<Value>,
    #[serde(default)]
    pub(super) name: Option<Value>,
    #[serde(default)]
    pub(super) annotations: Option<Value>,
    #[serde(default)]
    pub(super) selector: Option<Value>,
    #[serde(default)]
    pub(super) operations: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields accepted so that Kyverno documents load; they decide nothing here
pub(super) struct VerifyImages {
    #[serde(default, rename = "type")]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) image_references: Vec<String>,
    #[serde(default)]
    pub(super) skip_image_references: Vec<String>,
    #[serde(default)]
    pub(super) attestors: Vec<AttestorSet>,
    #[serde(default)]
    pub(super) attestations: Vec<AttestationSpec>,
    #[serde(default)]
    pub(super) mutate_digest: Option<bool>,
    #[serde(default)]
    pub(super) verify_digest: Option<bool>,
    #[serde(default)]
    pub(super) required: Option<bool>,
    #[serde(default)]
    pub(super) use_cache: Option<bool>,
    #[serde(default)]
    pub(super) failure_action: Option<String>,
    #[serde(default, rename = "cosignOCI11")]
    pub(super) cosign_oci11: Option<bool>,
    // legacy single-attestor fields (`ImageVerification.Convert()`)
    #[serde(default)]
    pub(super) image: Option<String>,
    #[serde(default)]
    pub(super) key: Option<String>,
    #[serde(default)]
    pub(super) subject: Option<String>,
    #[serde(default)]
    pub(super) issuer: Option<String>,
    #[serde(default)]
    pub(super) roots: Option<String>,
    #[serde(default)]
    pub(super) annotations: Option<Value>,
    #[serde(default)]
    pub(super) additional_extensions: Option<Value>,
    // looked up at admission time
    #[serde(default)]
    pub(super) repository: Option<String>,
    #[serde(default)]
    pub(super) image_registry_credentials: Option<Value>,
    #[serde(default)]
    pub(super) validate: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AttestorSet {
    #[serde(default)]
    pub(super) count: Option<usize>,
    #[serde(default)]
    pub(super) entries: Vec<Attestor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Attestor {
    #[serde(default)]
    pub(super) keyless: Option<Keyless>,
    #[serde(default)]
    pub(super) keys: Option<Keys>,
    #[serde(default)]
    pub(super) certificates: Option<Value>,
    #[serde(default)]
    pub(super) attestor: Option<Value>,
    #[serde(default)]
    pub(super) annotations: Option<Value>,
    #[serde(default)]
    pub(super) repository: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields accepted so that Kyverno documents load; they decide nothing here
pub(super) struct Keyless {
    #[serde(default)]
    pub(super) subject: Option<String>,
    #[serde(default)]
    pub(super) subject_reg_exp: Option<String>,
    #[serde(default)]
    pub(super) issuer: Option<String>,
    #[serde(default)]
    pub(super) issuer_reg_exp: Option<String>,
    #[serde(default)]
    pub(super) rekor: Option<Value>,
    #[serde(default)]
    pub(super) ctlog: Option<Value>,
    #[serde(default)]
    pub(super) roots: Option<String>,
    #[serde(default)]
    pub(super) additional_extensions: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields accepted so that Kyverno documents load; they decide nothing here
pub(super) struct Keys {
    #[serde(default)]
    pub(super) public_keys: Option<String>,
    #[serde(default)]
    pub(super) signature_algorithm: Option<String>,
    #[serde(default)]
    pub(super) kms: Option<String>,
    #[serde(default)]
    pub(super) secret: Option<Value>,
    #[serde(default)]
    pub(super) rekor: Option<Value>,
    #[serde(default)]
    pub(super) ctlog: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AttestationSpec {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default, rename = "type")]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) predicate_type: Option<String>,
    #[serde(default)]
    pub(super) attestors: Vec<AttestorSet>,
    #[serde(default)]
    pub(super) conditions: Vec<Value>,
}
