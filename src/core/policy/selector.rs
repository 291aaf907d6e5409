//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), as Gatekeeper's and
//! Kyverno's `labelSelector` / `namespaceSelector` use them.
//!
//! The webhook sees the admitted object (so its labels) but not the Namespace objects: of a
//! namespace it knows only the label the API server puts on every namespace,
//! `kubernetes.io/metadata.name`. A namespace selector over any other label could not be
//! decided here, so [`Selector::namespace`] refuses it at load time instead of guessing.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The one namespace label the webhook knows without reading Namespace objects.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<Expr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expr {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

impl Selector {
    pub fn parse(v: &Value) -> Result<Self, String> {
        let s: Spec = serde_json::from_value(v.clone()).map_err(|e| format!("label selector: {e}"))?;
        let mut reqs: Vec<Requirement> = s.match_labels.into_iter().map(|(k, v)| Requirement::In(k, vec![v])).collect();
        for e in s.match_expressions {
            reqs.push(match e.operator.as_str() {
                "In" | "NotIn" if e.values.is_empty() => return Err(format!("label selector: {} {} needs values", e.key, e.operator)),
                "In" => Requirement::In(e.key, e.values),
                "NotIn" => Requirement::NotIn(e.key, e.values),
                "Exists" | "DoesNotExist" if !e.values.is_empty() => {
                    return Err(format!("label selector: {} {} takes no values", e.key, e.operator));
                }
                "Exists" => Requirement::Exists(e.key),
                "DoesNotExist" => Requirement::DoesNotExist(e.key),
                o => return Err(format!("label selector: operator {o:?} (In, NotIn, Exists, DoesNotExist)")),
            });
        }
        Ok(Self { reqs })
    }

    /// A namespace selector this webhook can decide: one over `kubernetes.io/metadata.name` only.
    pub fn namespace(v: &Value) -> Result<Self, String> {
        let s = Self::parse(v)?;
        if let Some(k) = s.keys().find(|k| *k != NAMESPACE_NAME_LABEL) {
            return Err(format!(
                "namespaceSelector on label {k:?} needs the Namespace objects, which this webhook does not read: select on {NAMESPACE_NAME_LABEL} or list the namespaces (refused rather than guessed)"
            ));
        }
        Ok(s)
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.reqs.iter().map(|r| match r {
            Requirement::In(k, _) | Requirement::NotIn(k, _) | Requirement::Exists(k) | Requirement::DoesNotExist(k) => k.as_str(),
        })
    }

    /// Do these labels satisfy every requirement?
    pub fn matches(&self, labels: &dyn Fn(&str) -> Option<String>) -> bool {
        self.reqs.iter().all(|r| match r {
            Requirement::In(k, vs) => labels(k).is_some_and(|v| vs.contains(&v)),
            Requirement::NotIn(k, vs) => labels(k).is_none_or(|v| !vs.contains(&v)),
            Requirement::Exists(k) => labels(k).is_some(),
            Requirement::DoesNotExist(k) => labels(k).is_none(),
        })
    }

    /// Over a namespace, by name.
    pub fn matches_namespace(&self, namespace: &str) -> bool {
        self.matches(&|k| (k == NAMESPACE_NAME_LABEL).then(|| namespace.to_string()))
    }

    /// Over an object's `metadata.labels`.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.matches(&|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str).map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn match_labels_and_expressions() {
        let s = Selector::parse(&json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["dev"]}, {"key": "team", "operator": "Exists"}]})).unwrap();
        let o = |l: Value| json!({"metadata": {"labels": l}});
        assert!(s.matches_object(&o(json!({"app": "web", "team": "a"}))));
        assert!(!s.matches_object(&o(json!({"app": "web", "team": "a", "tier": "dev"}))));
        assert!(!s.matches_object(&o(json!({"app": "web"}))));
        assert!(!s.matches_object(&json!({})));
        assert!(Selector::parse(&json!({})).unwrap().matches_object(&json!({})), "the empty selector matches everything");
        assert!(Selector::parse(&json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})).is_err());
        assert!(Selector::parse(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]})).is_err());
    }

    #[test]
    fn namespace_selectors_only_on_the_name_label() {
        let s = Selector::namespace(
            &json!({"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": ["prod", "staging"]}]}),
        )
        .unwrap();
        assert!(s.matches_namespace("prod") && !s.matches_namespace("dev"));
        let e = Selector::namespace(&json!({"matchLabels": {"env": "prod"}})).unwrap_err();
        assert!(e.contains("\"env\"") && e.contains("does not read"), "{e}");
    }
}
