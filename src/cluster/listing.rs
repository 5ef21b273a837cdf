//! Listings for operators, from the cluster's records: namespaces with
//! their usage, entries in LRU, MRU or size order with cursors, and the
//! store-wide counts. Same shapes as a single node's (`cache::listing`).

use std::collections::HashMap;

use tokio_postgres::GenericClient;

use super::entry_rows::{record, ENTRY_COLUMNS};
use super::evict::namespace_usage;
use super::ClusterError;
use crate::cache::{EntryOrder, EntryPage, NamespaceInfo};
use crate::index::Protocol;

/// Namespaces holding entries or given a quota, sorted by name.
pub async fn namespaces(
    client: &impl GenericClient,
    quotas: &HashMap<String, u64>,
) -> Result<Vec<NamespaceInfo>, ClusterError> {
    let rows = client
        .query(
            "SELECT namespace, count(*), max(last_used) FROM entries GROUP BY namespace",
            &[],
        )
        .await?;
    let mut seen: HashMap<String, (u64, u64)> = rows
        .iter()
        .map(|r| {
            let (n, last): (i64, i64) = (r.get(1), r.get(2));
            (r.get(0), (n as u64, last as u64))
        })
        .collect();
    for q in quotas.keys() {
        seen.entry(q.clone()).or_insert((0, 0));
    }
    let mut out = Vec::with_capacity(seen.len());
    for (name, (entries, last_used)) in seen {
        out.push(NamespaceInfo {
            used_bytes: namespace_usage(client, &name).await?,
            quota: quotas.get(&name).copied(),
            name,
            entries,
            last_used,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A page of at most `limit` entries matching the filters, in `order`,
/// after `cursor` (the previous page's `next`).
pub async fn list_entries(
    client: &impl GenericClient,
    namespace: Option<&str>,
    protocol: Option<Protocol>,
    prefix: Option<&str>,
    order: EntryOrder,
    limit: usize,
    cursor: Option<&str>,
) -> Result<EntryPage, ClusterError> {
    let skip: i64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
    let by = match order {
        EntryOrder::Lru => "last_used, id",
        EntryOrder::Mru => "last_used DESC, id DESC",
        EntryOrder::Size => "size DESC, id",
    };
    let limit = limit.min(10_000) as i64;
    // One more than asked, to know whether a next page exists.
    let rows = client
        .query(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM entries e
                  WHERE ($1::text IS NULL OR namespace = $1)
                    AND ($2::text IS NULL OR protocol = $2)
                    AND ($3::text IS NULL OR starts_with(name, $3))
                  ORDER BY {by} LIMIT $4 OFFSET $5"
            ),
            &[
                &namespace,
                &protocol.map(Protocol::name),
                &prefix,
                &(limit + 1),
                &skip,
            ],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let entries = rows
        .iter()
        .take(limit as usize)
        .map(record)
        .collect::<Result<Vec<_>, _>>()?;
    let next = (more && !entries.is_empty()).then(|| (skip + entries.len() as i64).to_string());
    Ok(EntryPage { entries, next })
}

/// Store-wide counts: recorded blobs and their bytes, entries, uploads.
pub async fn counts(client: &impl GenericClient) -> Result<(u64, u64, u64, u64), ClusterError> {
    let r = client
        .query_one(
            "SELECT blobs, bytes, (SELECT count(*) FROM entries), (SELECT count(*) FROM uploads)
               FROM usage WHERE id = 1",
            &[],
        )
        .await?;
    let n = |i: usize| r.get::<_, i64>(i) as u64;
    Ok((n(0), n(1), n(2), n(3)))
}
