//! The one policy engine: admission, the deploy gate and the CLI all decide through
//! [`PolicySet::evaluate`]. Pure: the caller gathers the image's mirrored material ([`Facts`]); the
//! engine verifies what it needs with [`crate::core::verify`] and returns a [`Evaluation`] naming
//! every failed property.
//!
//! Input formats (YAML, several documents per file):
//! * Sigstore policy-controller `ClusterImagePolicy` (`policy.sigstore.dev/v1beta1`/`v1alpha1`):
//!   `images[].glob`, `mode`, `authorities[]` with `key.data` or `keyless.identities[]`
//!   (`issuer`/`issuerRegExp`/`subject`/`subjectRegExp`), `attestations[]` with `predicateType`
//!   (cosign names or URIs) and an optional `policy: {type: rego, data: …}` evaluated with
//!   regorus (`data.sigstore.isCompliant`, as policy-controller does). `ctlog` is accepted and
//!   ignored: transparency is checked from mirrored material.
//! * trustmirror `ImagePolicy` (`trustmirror.dev/v1alpha1`): the same `images`, `mode` and
//!   `authorities`, plus the five properties as built-in checks — `provenance` (SLSA level by
//!   builder, buildType, source repository/ref), `sbom` (required; banned packages from the
//!   banned list), `vulnerabilities` (deny at/above a severity, maximum scan age), `baseImages`
//!   (approved, from the provenance's resolved dependencies) — and structural rules
//!   (`registries.allowed`, `requireDigest`), per-namespace modes, `threshold` (M of N
//!   authorities) and `trustRootRef`.
//!
//! | file | what |
//! |---|---|
//! | [`model`] | policies, requirements, facts, violations |
//! | [`parse`] | policy documents → model |
//! | [`evaluate`] | one function per property |
//! | [`predicates`] | reading provenance, SBOMs and scans |
//! | [`attestation`] | what a required attestation must satisfy, and who signs it |
//! | [`rego`] | Rego attestation policies |
//! | [`cue`] | CUE attestation policies (the subset policy-controller users write) |
//! | [`selector`] | Kubernetes label selectors (Gatekeeper / Kyverno matches) |
//! | [`kyverno`] | Kyverno ClusterPolicy/Policy verifyImages rules |
//! | [`gatekeeper`] | OPA Gatekeeper ConstraintTemplates + Constraints over the admitted object |

pub mod attestation;
pub mod cue;
pub mod evaluate;
pub mod gatekeeper;
pub mod kyverno;
pub mod kyverno_eval;
pub mod model;
pub mod parse;
pub mod predicates;
pub mod rego;
pub mod selector;
pub mod sources;

pub use model::*;

#[cfg(test)]
mod tests;
