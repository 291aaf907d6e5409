//! The embedded admission verifier: Kubernetes `AdmissionReview`s decided from the local store.
//!
//! ```text
//!   API server ──HTTPS──▶ server (axum + rustls) ──▶ validate ──▶ Engine::decide_image ──▶ core::policy (pure)
//!                                                     │   ▲
//!                                     store lookups ◀─┘   └─ decision cache, exemptions
//! ```
//!
//! The [`Engine`] never talks to a registry, TUF, Rekor or Fulcio: it reads the mirrored tag
//! resolutions, per-digest material and trust root from the [`Store`], evaluates the one policy
//! engine ([`PolicySet::evaluate`]) and, on a miss, queues the reference for the mirror. Decisions
//! are cached by (repository, digest, material ETag, policy version, trust-root digest), so any
//! change to the evidence, the policy or the trust root is a different key.//!
//! | file | what |
//! |---|---|
//! | [`review`] | AdmissionReview v1 in (parsed once into a typed [`review::Review`]) and out |
//! | [`engine`] | the engine: policy, trust, exemptions; one image decided from the store |
//! | [`cache`] | the decision cache |
//! | [`validate`] | a whole review: every image, the patch or the verdict, audit records |
//! | [`audit`] | the audit log writer |
//! | [`report`] | violations per policy and namespace, from the audit log |
//! | [`metrics`] | `trustmirror_admission_*` |
//! | [`loaders`] | policy, banned list and exemptions files |
//! | [`server`], [`tls`], [`watch`] | the HTTPS webhook, its certificate, file watches |

pub mod audit;
pub mod cache;
pub mod engine;
pub mod loaders;
pub mod metrics;
pub mod report;
pub mod review;
pub mod server;
pub mod tls;
pub mod validate;
pub mod watch;

pub use engine::{Endpoint, Engine, EngineOptions, ImageOutcome};
pub use loaders::{FILE_EXEMPTION_BASE, LoadError, load_exemptions_file, load_policy, load_policy_and_sources, policy_source_path};
pub use metrics::AdmissionMetrics;
pub use report::{Report, report};
