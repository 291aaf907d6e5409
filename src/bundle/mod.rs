//! Air-gap bundles: one file carrying trust material and image evidence across the gap — the
//! TUF repository, the witnessed log history with its proofs, every mirrored digest's
//! signatures and attestations, tag resolutions, optionally policy files — created from a store
//! on the connected side ([`create`]), verified offline in full and imported in one transaction
//! on the disconnected side ([`import`]).
//!
//! The format is an OCI image layout in a tar ([`layout`]): inspectable with standard tools,
//! content-addressed throughout, and pushable to a registry as an OCI artifact.

pub mod create;
pub mod import;
pub mod layout;
