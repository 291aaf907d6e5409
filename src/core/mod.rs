//! The pure verification core: no tokio, no network, no disk. Fed bytes and a clock.
pub mod clock;
pub mod cosign;
pub mod cosign_key;
pub mod digest;
pub mod dsse;
pub mod evidence;
pub mod freshness;
pub mod material;
pub mod merkle;
pub mod nodepolicy;
pub mod pem;
pub mod policy;
pub mod reference;
pub mod tlog;
pub mod tuf;
pub mod verify;
pub mod vsa;
