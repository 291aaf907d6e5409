//! The loopback Sigstore stack used by tests, the demo and air-gap drills. This part: keys and a
//! TUF repository writer.
pub mod keys;
pub mod tufrepo;
pub mod pki;
pub mod rekor;
pub mod tsa;
pub mod sigstore;
