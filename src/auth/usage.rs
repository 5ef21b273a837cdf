//! When each token was last used, and tokens minted offline made known.
//!
//! Every authenticated request verifies a token, so recording its use must
//! not cost an index write each time: the last use is kept in memory and
//! written to the token's record at most once per `FLUSH_EVERY` (the first
//! use after a start, or after a quiet spell, is written at once). A crash
//! loses at most that much of "last used", never a record.
//!
//! A token minted offline (`larder token create`) is signed with the key but
//! never told to the server (the server holds the index). The first time the
//! server verifies one, it records it with what its claims say, so `GET
//! /admin/v1/tokens` lists it from then on and it can be revoked by id.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::{Claims, READ, WRITE};
use crate::index::Index;

/// The longest a last use stays in memory only.
const FLUSH_EVERY: u64 = 60;
/// Above this many tracked tokens, expired ones are forgotten (their record
/// in the index keeps the last use that was flushed).
const TRACK_AT_MOST: usize = 10_000;

struct Seen {
    last_used: u64,
    /// When the last use was last written (or found nothing to write to).
    flushed_at: Option<u64>,
    /// Whether the index holds a record of this token.
    recorded: bool,
    exp: u64,
}

#[derive(Default)]
pub struct Usage {
    seen: Mutex<HashMap<String, Seen>>,
}

impl Usage {
    /// Notes a successful verification at `now` (unix seconds), written to
    /// `index` when there is one (a cluster replica keeps uses in memory).
    /// True when the token it counts for was not seen before since the
    /// start (a cluster replica then has it recorded).
    pub fn used(&self, index: Option<&Index>, claims: &Claims, now: u64) -> bool {
        let Some((jti, record_new)) = credited(claims) else {
            return false;
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let first = !seen.contains_key(jti);
        if seen.len() >= TRACK_AT_MOST && first {
            seen.retain(|_, s| s.exp > now);
        }
        let s = seen.entry(jti.to_owned()).or_insert(Seen {
            last_used: now,
            flushed_at: None,
            recorded: false,
            exp: claims.exp,
        });
        s.last_used = now;
        let Some(index) = index else {
            return first;
        };
        // The token itself (not a token exchanged from it) makes its record
        // at once even if its children's uses were seen first.
        let due = match s.flushed_at {
            None => true,
            Some(at) => now.saturating_sub(at) >= FLUSH_EVERY || (record_new && !s.recorded),
        };
        if !due {
            return first;
        }
        s.flushed_at = Some(now);
        // Best effort: a failed write only loses a last-use time, and the
        // request it came with must not fail for it.
        match write_last_use(index, jti, record_new.then_some(claims), now) {
            Ok(recorded) => s.recorded |= recorded,
            Err(e) => tracing::warn!(error = %e, token = jti, "cannot record the token's last use"),
        }
        first
    }

    /// Writes every last use not yet written, so a clean stop loses none.
    pub fn flush(&self, index: &Index) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (jti, s) in seen.iter_mut() {
            if !s.recorded || s.flushed_at.is_some_and(|at| at >= s.last_used) {
                continue;
            }
            s.flushed_at = Some(s.last_used);
            if let Err(e) = write_last_use(index, jti, None, s.last_used) {
                tracing::warn!(error = %e, token = %jti, "cannot record the token's last use");
            }
        }
    }

    /// The last use of `jti` seen since the start, if any (it may be newer
    /// than the one in the index).
    pub fn last_used(&self, jti: &str) -> Option<u64> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(jti).map(|s| s.last_used)
    }
}

/// The token a verification counts as a use of, and whether it is the
/// token itself (whose record a first use may make). A token exchanged at
/// the registry token endpoint is short-lived and minted by the hundred: its
/// use is the use of the token it was exchanged from, which the exchange
/// itself verified (and recorded). One exchanged by an anonymous reader
/// stands for nobody.
pub fn credited(claims: &Claims) -> Option<(&str, bool)> {
    match &claims.parent {
        Some(parent) => Some((parent.as_str(), false)),
        None if claims.sub == "anonymous" => None,
        None => Some((claims.jti.as_str(), true)),
    }
}

/// Sets the last use on `jti`'s record; without one, makes it from `new`'s
/// claims when given, else writes nothing (false).
fn write_last_use(
    index: &Index,
    jti: &str,
    new: Option<&Claims>,
    now: u64,
) -> Result<bool, crate::index::IndexError> {
    let mut meta = match (index.token_meta(jti)?, new) {
        (Some(raw), _) => match serde_json::from_slice::<Value>(&raw) {
            Ok(v) if v.is_object() => v,
            _ => return Ok(false),
        },
        (None, Some(claims)) => offline_meta(claims),
        (None, None) => return Ok(false),
    };
    meta["last_used"] = json!(now);
    index.put_token_meta(jti, meta.to_string().as_bytes())?;
    Ok(true)
}

/// The record of a token the server did not mint, from its claims: the same
/// fields the admin API records when it mints one.
pub fn offline_meta(c: &Claims) -> Value {
    let grants = c.grants();
    let bits = grants.iter().fold(0, |acc, g| acc | g.permission);
    let namespaces: Vec<&str> = grants.iter().map(|g| g.scope.as_str()).collect();
    json!({
        "id": c.jti,
        "name": c.sub,
        "namespaces": namespaces,
        "read": bits & READ != 0,
        "write": bits & WRITE != 0,
        "admin": c.larder_admin,
        "metrics": grants
            .iter()
            .any(|g| g.scope == super::ANY_NAMESPACE && g.permission & super::METRICS != 0),
        "issued_at": c.iat,
        "expires_at": c.exp,
        "created_by": "offline (larder token create)",
        "revoked": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{mint, TokenSpec};
    use crate::auth::Grant;

    fn claims(parent: Option<&str>) -> Claims {
        let spec = TokenSpec {
            subject: "ci".into(),
            grants: vec![Grant {
                scope: "team-a".into(),
                permission: READ,
            }],
            admin: false,
            ttl_secs: 3600,
            parent: parent.map(str::to_owned),
        };
        mint(b"key", &spec).1
    }

    fn recorded(index: &Index, jti: &str) -> Option<Value> {
        let raw = index.token_meta(jti).unwrap()?;
        Some(serde_json::from_slice(&raw).unwrap())
    }

    #[test]
    fn a_use_is_written_first_then_at_most_once_per_interval() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        let usage = Usage::default();
        let c = claims(None);
        assert!(usage.used(Some(&index), &c, 1000), "first seen");
        let meta = recorded(&index, &c.jti).expect("recorded at the first use");
        assert_eq!(meta["last_used"], 1000);
        assert_eq!(meta["namespaces"], json!(["team-a"]));
        assert_eq!(
            (meta["read"].clone(), meta["write"].clone()),
            (json!(true), json!(false))
        );

        assert!(!usage.used(Some(&index), &c, 1000 + FLUSH_EVERY - 1));
        assert_eq!(recorded(&index, &c.jti).unwrap()["last_used"], 1000);
        assert_eq!(usage.last_used(&c.jti), Some(1000 + FLUSH_EVERY - 1));
        usage.used(Some(&index), &c, 1000 + FLUSH_EVERY);
        assert_eq!(
            recorded(&index, &c.jti).unwrap()["last_used"],
            1000 + FLUSH_EVERY
        );

        // A clean stop writes the use that was still in memory only.
        usage.used(Some(&index), &c, 1000 + FLUSH_EVERY + 5);
        usage.flush(&index);
        assert_eq!(
            recorded(&index, &c.jti).unwrap()["last_used"],
            1000 + FLUSH_EVERY + 5
        );
    }

    #[test]
    fn an_exchanged_token_counts_as_a_use_of_its_parent_and_is_not_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(tmp.path()).unwrap();
        let usage = Usage::default();
        let parent = claims(None);
        let child = claims(Some(&parent.jti));
        assert!(usage.used(Some(&index), &child, 5), "its parent first seen");
        assert!(recorded(&index, &child.jti).is_none());
        assert!(recorded(&index, &parent.jti).is_none(), "unknown parent");
        assert!(
            !usage.used(Some(&index), &parent, 10),
            "seen through its child"
        );
        usage.used(Some(&index), &child, 10 + FLUSH_EVERY);
        assert_eq!(
            recorded(&index, &parent.jti).unwrap()["last_used"],
            10 + FLUSH_EVERY
        );
        assert!(recorded(&index, &child.jti).is_none());
    }
}
