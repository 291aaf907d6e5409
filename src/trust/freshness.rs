//! The facts the freshness policy judges ([`crate::core::freshness`]), read from the store: the
//! TUF repository's last verified refresh and earliest expiry, the trusted root's certificate
//! authorities' validity, the newest witnessed checkpoint.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::core::freshness::{Facts, Kind};
use crate::store::{Store, StoreError};

pub fn facts(store: &Store, repo: &str) -> Result<BTreeMap<Kind, Facts>, StoreError> {
    let mut out = BTreeMap::new();
    let st = store.tuf_state(repo)?;
    let expires =
        ["timestamp", "snapshot", "targets"].iter().filter_map(|r| st.bytes(r).and_then(crate::core::tuf::peek).map(|(_, _, e)| e)).min();
    out.insert(Kind::Tuf, Facts { fresh_since: st.status.last_success, expires, absent: st.current.is_empty() });

    // the trusted root: when the last CA stops being valid (none with an end: never)
    let root = store.tuf_targets(repo)?.into_keys().find(|p| p == "trusted_root.json");
    let mut ca = Facts { absent: true, ..Default::default() };
    if let Some(p) = root {
        let bytes = store.tuf_served(repo)?.into_iter().find(|(_, t)| t.path == p).map(|(served, _)| served);
        if let Some(served) = bytes
            && let Some((_, b)) = store.tuf_target(repo, &served)?
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b)
        {
            let ends: Vec<Option<Timestamp>> = v["certificateAuthorities"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.pointer("/validFor/end").and_then(|e| e.as_str()).and_then(|e| e.parse().ok()))
                .collect();
            ca.absent = ends.is_empty();
            // any CA without an end keeps the root usable; otherwise the latest end
            ca.expires = if ends.iter().any(Option::is_none) { None } else { ends.into_iter().flatten().max() };
        }
    }
    out.insert(Kind::TrustedRoot, ca);

    let logs = store.tlog_states()?;
    let newest = logs.iter().filter_map(|l| l.witnessed_at).max();
    out.insert(Kind::Checkpoints, Facts { fresh_since: newest, expires: None, absent: logs.iter().all(|l| l.latest.is_none()) });
    Ok(out)
}
