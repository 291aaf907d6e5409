//! Material compiled into the binary so that it works out of the box and offline.

/// The Sigstore public-good production TUF root (root-signing, v15): the default pinned root when
/// no `--root` is given. It chains forward to newer roots when the upstream serves them.
pub const SIGSTORE_PRODUCTION_ROOT: &[u8] = include_bytes!("../bundles/sigstore-production-root.json");

/// The demo TUF repository (`bundles/demo-tuf/`): a repository in Sigstore's layout, signed by
/// demo keys, carrying the production `trusted_root.json` and friends plus a delegated role.
/// `(relative path, bytes)`; written to a temporary directory and mirrored by `serve --demo`.
pub const DEMO_TUF: &[(&str, &[u8])] = &include!(concat!(env!("OUT_DIR"), "/demo_tuf.rs"));

/// The Sigstore public-good production `trusted_root.json` (root-signing targets): the default
/// trust root of `verify*` without `--trusted-root`.
pub const SIGSTORE_PRODUCTION_TRUSTED_ROOT: &[u8] = include_bytes!("../bundles/sigstore-production-trusted_root.json");

/// The Sigstore staging `trusted_root.json` (`--staging`).
pub const SIGSTORE_STAGING_TRUSTED_ROOT: &[u8] = include_bytes!("../bundles/sigstore-staging-trusted_root.json");

/// The demo's admission policy template (`${REGISTRY}`, `${VENDOR_KEY}` placeholders).
pub const DEMO_POLICY: &str = include_str!("../bundles/policy/demo-policy.yaml");

/// The demo's banned-package list.
pub const DEMO_BANNED: &str = include_str!("../bundles/policy/demo-banned.yaml");
