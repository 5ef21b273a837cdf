//! Tokens across replicas: the metadata of tokens minted through the admin
//! API, and revocations. Every request checks revocation, so each replica
//! keeps the revoked ids in memory (`Revoked`) and fetches only what was
//! revoked since its last look: no database read on the request path, and
//! a revocation reaches every replica within one refresh interval.

use std::collections::HashSet;

use parking_lot::RwLock;
use tokio_postgres::GenericClient;

use super::ClusterError;

/// Revokes token `jti`; `until_s` (Unix seconds) is when it would have
/// expired anyway.
pub async fn revoke(
    client: &impl GenericClient,
    jti: &str,
    until_s: u64,
) -> Result<(), ClusterError> {
    // Stamped by the database's clock, which every replica's refresh
    // compares against: replicas' clocks may disagree.
    client
        .execute(
            "INSERT INTO revocations (jti, revoked_at, until_s)
                  VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, $2)
             ON CONFLICT (jti) DO NOTHING",
            &[&jti, &(until_s.min(i64::MAX as u64) as i64)],
        )
        .await?;
    Ok(())
}

/// Revokes token `jti` as `revoke` does and, in the same transaction,
/// marks its recorded metadata (JSON) `"revoked": true`, as a single node
/// does for its listings.
pub async fn revoke_and_mark(
    client: &mut tokio_postgres::Client,
    jti: &str,
    until_s: u64,
) -> Result<(), ClusterError> {
    let tx = client.transaction().await?;
    revoke(&tx, jti, until_s).await?;
    let row = tx
        .query_opt("SELECT meta FROM tokens WHERE jti = $1 FOR UPDATE", &[&jti])
        .await?;
    let meta = row.and_then(|r| serde_json::from_slice::<serde_json::Value>(r.get(0)).ok());
    if let Some(mut meta) = meta.filter(|m| m.is_object()) {
        meta["revoked"] = serde_json::Value::Bool(true);
        put_token_meta(&tx, jti, meta.to_string().as_bytes()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Stores a minted token's metadata (JSON) under its id.
pub async fn put_token_meta(
    client: &impl GenericClient,
    jti: &str,
    meta: &[u8],
) -> Result<(), ClusterError> {
    client
        .execute(
            "INSERT INTO tokens (jti, meta) VALUES ($1, $2)
             ON CONFLICT (jti) DO UPDATE SET meta = excluded.meta",
            &[&jti, &meta],
        )
        .await?;
    Ok(())
}

pub async fn token_meta(
    client: &impl GenericClient,
    jti: &str,
) -> Result<Option<Vec<u8>>, ClusterError> {
    let row = client
        .query_opt("SELECT meta FROM tokens WHERE jti = $1", &[&jti])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Every recorded token's metadata, by id, with when it was last used on
/// any replica (Unix seconds; 0: not since it was recorded).
pub async fn token_metas(
    client: &impl GenericClient,
) -> Result<Vec<(String, Vec<u8>, i64)>, ClusterError> {
    let rows = client
        .query("SELECT jti, meta, last_used FROM tokens ORDER BY jti", &[])
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// How long a revocation's statement may take between its stamp and its
/// commit and still be seen by every refresh (it is one short statement).
const COMMIT_SLACK_MS: i64 = 60_000;

/// A replica's copy of the revoked token ids.
#[derive(Default)]
pub struct Revoked {
    state: RwLock<Seen>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    /// The newest `revoked_at` fetched so far.
    through: i64,
}

impl Revoked {
    pub fn contains(&self, jti: &str) -> bool {
        self.state.read().ids.contains(jti)
    }

    /// Fetches what was revoked since the last refresh, looking back a
    /// minute more: a revocation is stamped before its statement commits,
    /// so one stamped just before the newest seen may become visible later.
    pub async fn refresh(&self, client: &impl GenericClient) -> Result<usize, ClusterError> {
        let since = self.state.read().through.saturating_sub(COMMIT_SLACK_MS);
        let rows = client
            .query(
                "SELECT jti, revoked_at FROM revocations WHERE revoked_at >= $1",
                &[&since],
            )
            .await?;
        let mut state = self.state.write();
        let before = state.ids.len();
        for r in &rows {
            state.ids.insert(r.get(0));
            state.through = state.through.max(r.get(1));
        }
        Ok(state.ids.len() - before)
    }
}
