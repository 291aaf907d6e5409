//! Everything that talks to upstreams: TUF repositories, registries, transparency logs.
pub mod oci;
pub mod tlog_mirror;
pub mod tuf_client;
pub mod tuf_mirror;
pub mod upstream;
