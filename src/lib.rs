//! trustmirror: keeps Kubernetes clusters enforcing software-supply-chain policy with no outside
//! network.
//!
//! Data flows one way (see README "Design"):
//! `mirror` (the only code that talks to upstreams) → `core` (pure verification: bytes and a
//! clock in, verdicts out) → `store` (the only code that touches persistent state) → `serve`
//! (HTTP) and the CLI.

pub mod admission;
pub mod bundles;
pub mod cli;
pub mod config;
pub mod core;
pub mod fuzz;
pub mod mirror;
pub mod serve;
pub mod store;
pub mod testbed;
