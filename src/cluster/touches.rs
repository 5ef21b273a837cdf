//! Reads' last-used times and leases (and tokens' last uses), batched: a
//! read records them in memory, and one statement per kind per flush
//! writes every replica-local update, so the read path makes no database
//! write. The leader's eviction and GC
//! allow for the lag (`settled_before`): nothing used within two flush
//! intervals is evicted or collected.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_postgres::GenericClient;

use super::ClusterError;
use crate::cas::ContentId;

#[derive(Default)]
struct Pending {
    /// Entry id → the latest time it was used.
    entries: HashMap<i64, i64>,
    /// Blob → the latest time a lease on it runs to.
    leases: HashMap<ContentId, i64>,
    /// Blob → (last touched, write lease until): HEAD and GET of a blob.
    blobs: HashMap<ContentId, (i64, i64)>,
    /// Blob → the latest time an entry pinned it, which ends write leases
    /// taken before.
    pinned: HashMap<ContentId, i64>,
    /// Token id → when it was last used (Unix seconds).
    tokens: HashMap<String, i64>,
    /// Token id → its record, for tokens this replica saw for the first
    /// time: minted offline, they have none until their first use.
    new_tokens: HashMap<String, Vec<u8>>,
}

impl Pending {
    /// Folds `other` (a batch that failed to flush) back in.
    fn merge(&mut self, other: Pending) {
        for (entry, t) in other.entries {
            let cur = self.entries.entry(entry).or_insert(t);
            *cur = (*cur).max(t);
        }
        for (blob, t) in other.leases {
            let cur = self.leases.entry(blob).or_insert(t);
            *cur = (*cur).max(t);
        }
        for (blob, (t, u)) in other.blobs {
            let cur = self.blobs.entry(blob).or_insert((t, u));
            *cur = (cur.0.max(t), cur.1.max(u));
        }
        for (blob, t) in other.pinned {
            let cur = self.pinned.entry(blob).or_insert(t);
            *cur = (*cur).max(t);
        }
        for (jti, t) in other.tokens {
            let cur = self.tokens.entry(jti).or_insert(t);
            *cur = (*cur).max(t);
        }
        self.new_tokens.extend(other.new_tokens);
    }
}

#[derive(Default)]
pub struct Touches {
    pending: Mutex<Pending>,
}

impl Touches {
    pub fn touch_entry(&self, entry: i64, now_ms: i64) {
        let mut p = self.pending.lock();
        let t = p.entries.entry(entry).or_insert(now_ms);
        *t = (*t).max(now_ms);
    }

    pub fn lease(&self, blob: ContentId, until_ms: i64) {
        let mut p = self.pending.lock();
        let t = p.leases.entry(blob).or_insert(until_ms);
        *t = (*t).max(until_ms);
    }

    /// A HEAD or GET of `blob` at `now_ms`: a write lease to `until_ms`,
    /// ended by the next pin.
    pub fn touch_blob(&self, blob: ContentId, now_ms: i64, until_ms: i64) {
        let mut p = self.pending.lock();
        let t = p.blobs.entry(blob).or_insert((now_ms, until_ms));
        *t = (t.0.max(now_ms), t.1.max(until_ms));
    }

    /// Token `jti` verified at `now_secs`.
    pub fn token_used(&self, jti: &str, now_secs: i64) {
        let mut p = self.pending.lock();
        match p.tokens.get_mut(jti) {
            Some(t) => *t = (*t).max(now_secs),
            None => {
                p.tokens.insert(jti.to_owned(), now_secs);
            }
        }
    }

    /// Token `jti`, seen for the first time, is recorded as `meta` unless
    /// a record of it exists (the admin API's, or another replica's).
    pub fn token_seen(&self, jti: &str, meta: Vec<u8>) {
        self.pending.lock().new_tokens.insert(jti.to_owned(), meta);
    }

    /// An entry pinned `blobs` at `now_ms`.
    pub fn pinned(&self, blobs: &[ContentId], now_ms: i64) {
        let mut p = self.pending.lock();
        for blob in blobs {
            let t = p.pinned.entry(*blob).or_insert(now_ms);
            *t = (*t).max(now_ms);
        }
    }

    /// Writes what is pending: `(entries, leases)` written. On failure the
    /// updates go back into the batch for the next flush, so none is lost
    /// while the database is away.
    pub async fn flush(&self, client: &impl GenericClient) -> Result<(usize, usize), ClusterError> {
        let taken = std::mem::take(&mut *self.pending.lock());
        match write(client, &taken).await {
            Ok(()) => Ok((taken.entries.len(), taken.leases.len())),
            Err(e) => {
                self.pending.lock().merge(taken);
                Err(e)
            }
        }
    }
}

/// Locks the blob rows named by `$1` in id order, as an entry write locks
/// its pins (`FOR SHARE ... ORDER BY id`): an update of many rows taking
/// them in the join's order would deadlock against concurrent manifest
/// PUTs sharing layers.
const LOCK_IN_ORDER: &str = "WITH locked AS MATERIALIZED (
    SELECT id FROM blobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE)";

async fn write(client: &impl GenericClient, p: &Pending) -> Result<(), ClusterError> {
    if !p.entries.is_empty() {
        let (ids, times): (Vec<i64>, Vec<i64>) = p.entries.iter().map(|(k, v)| (*k, *v)).unzip();
        client
            .execute(
                "UPDATE entries SET last_used = greatest(entries.last_used, t.used)
                   FROM unnest($1::bigint[], $2::bigint[]) AS t(id, used)
                  WHERE entries.id = t.id",
                &[&ids, &times],
            )
            .await?;
    }
    if !p.leases.is_empty() {
        let (blobs, until): (Vec<&[u8]>, Vec<i64>) =
            p.leases.iter().map(|(k, v)| (&k.0[..], *v)).unzip();
        // Only blobs still recorded: a lease on one GC already took is moot.
        client
            .execute(
                "INSERT INTO leases (blob, until_ms)
                      SELECT t.blob, t.until_ms
                        FROM unnest($1::bytea[], $2::bigint[]) AS t(blob, until_ms)
                        JOIN blobs ON blobs.id = t.blob
                 ON CONFLICT (blob) DO UPDATE
                     SET until_ms = greatest(leases.until_ms, excluded.until_ms)",
                &[&blobs, &until],
            )
            .await?;
    }
    if !p.blobs.is_empty() {
        let blobs: Vec<&[u8]> = p.blobs.keys().map(|k| &k.0[..]).collect();
        let (touched, until): (Vec<i64>, Vec<i64>) = p.blobs.values().copied().unzip();
        client
            .execute(
                &format!(
                    "{LOCK_IN_ORDER}
                     UPDATE blobs SET touched_at = greatest(blobs.touched_at, t.touched),
                                      lease_until = greatest(blobs.lease_until, t.until_ms)
                       FROM unnest($1::bytea[], $2::bigint[], $3::bigint[])
                            AS t(blob, touched, until_ms)
                      WHERE blobs.id = t.blob AND blobs.id IN (SELECT id FROM locked)"
                ),
                &[&blobs, &touched, &until],
            )
            .await?;
    }
    if !p.new_tokens.is_empty() {
        let (ids, metas): (Vec<&str>, Vec<&[u8]>) = p
            .new_tokens
            .iter()
            .map(|(k, v)| (k.as_str(), &v[..]))
            .unzip();
        client
            .execute(
                "INSERT INTO tokens (jti, meta)
                      SELECT * FROM unnest($1::text[], $2::bytea[])
                 ON CONFLICT (jti) DO NOTHING",
                &[&ids, &metas],
            )
            .await?;
    }
    if !p.tokens.is_empty() {
        let (ids, times): (Vec<&str>, Vec<i64>) =
            p.tokens.iter().map(|(k, v)| (k.as_str(), *v)).unzip();
        client
            .execute(
                "UPDATE tokens SET last_used = greatest(tokens.last_used, t.at)
                   FROM unnest($1::text[], $2::bigint[]) AS t(jti, at)
                  WHERE tokens.jti = t.jti",
                &[&ids, &times],
            )
            .await?;
    }
    if !p.pinned.is_empty() {
        let (blobs, at): (Vec<&[u8]>, Vec<i64>) =
            p.pinned.iter().map(|(k, v)| (&k.0[..], *v)).unzip();
        client
            .execute(
                &format!(
                    "{LOCK_IN_ORDER}
                     UPDATE blobs SET pinned_at = greatest(blobs.pinned_at, t.at)
                       FROM unnest($1::bytea[], $2::bigint[]) AS t(blob, at)
                      WHERE blobs.id = t.blob AND blobs.id IN (SELECT id FROM locked)"
                ),
                &[&blobs, &at],
            )
            .await?;
    }
    Ok(())
}

/// SQL true when blob row `b` is held by a lease at the time in parameter
/// `now` (a read lease, or a write lease no pin has ended since): the one
/// definition GC, eviction and the numbers share.
pub fn held_by_lease(now: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM leases l WHERE l.blob = b.id AND l.until_ms > {now})
          OR (b.touched_at > b.pinned_at AND b.lease_until > {now}))"
    )
}

/// The time before which every replica's touches are in the database,
/// given how often they flush: what the leader may act on.
pub fn settled_before(now_ms: i64, flush_interval: Duration) -> i64 {
    now_ms - 2 * flush_interval.as_millis() as i64
}
