//! trustmirror: keeps Kubernetes clusters enforcing software-supply-chain policy with no outside
//! network.
//!
//! Data flows one way (ARCHITECTURE.md; README "Design"): `mirror` (the only code that talks to
//! upstreams) → `core` (pure verification and the policy engine: bytes and a clock in, verdicts
//! out) → `store` (the only owner of persistent state, one schema) → `trust` (the one provider of
//! trusted roots) → `serve` (HTTP), `admission` (the webhook), `daemon` (the service wired
//! together), `testbed` (the internal Sigstore stack for tests and the demo) → `cli` (arguments
//! and printing only; nothing imports it). Besides the store, the process writes only the audit
//! log file, the witness key, generated TLS files and the testbed's directory (`files`).

pub mod admission;
pub mod bundle;
pub mod bundles;
pub mod cli;
pub mod core;
pub mod daemon;
pub mod files;
pub mod fuzz;
pub mod gate;
pub mod mirror;
pub mod node;
pub mod serve;
pub mod signals;
pub mod store;
pub mod supervise;
pub mod testbed;
pub mod trust;
