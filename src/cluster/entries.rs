//! Entries by id, by name prefix and by namespace, for the protocols that
//! list (npm, the Actions cache's restore keys, catalogs) and for
//! operators: the same answers as a single node's index gives.

use tokio_postgres::GenericClient;

use super::entry_rows::{record, ENTRY_COLUMNS};
use super::meta::delete_with_parents;
use super::ClusterError;
use crate::index::{EntryRecord, Protocol};

pub async fn entry_by_id(
    client: &impl GenericClient,
    id: u64,
) -> Result<Option<EntryRecord>, ClusterError> {
    // Ids come from clients (the admin API): one past bigint is no entry.
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    let row = client
        .query_opt(
            &format!("SELECT {ENTRY_COLUMNS} FROM entries e WHERE id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(record).transpose()
}

/// Entries of `protocol` in `namespace` whose names start with `prefix`, in
/// name order (bytewise, as the single node's keys sort), at most `limit`.
pub async fn with_prefix(
    client: &impl GenericClient,
    protocol: Protocol,
    namespace: &str,
    prefix: &str,
    limit: Option<usize>,
) -> Result<Vec<EntryRecord>, ClusterError> {
    let limit = limit.map(|l| l.min(i64::MAX as usize) as i64);
    let rows = client
        .query(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM entries e
                  WHERE protocol = $1 AND namespace = $2 AND starts_with(name, $3)
                  ORDER BY name COLLATE \"C\" LIMIT $4"
            ),
            &[&protocol.name(), &namespace, &prefix, &limit],
        )
        .await?;
    rows.iter().map(record).collect()
}

/// (namespace, name) of every entry of `protocol`, sorted.
pub async fn names(
    client: &impl GenericClient,
    protocol: Protocol,
) -> Result<Vec<(String, String)>, ClusterError> {
    let rows = client
        .query(
            "SELECT namespace, name FROM entries WHERE protocol = $1
              ORDER BY namespace COLLATE \"C\", name COLLATE \"C\"",
            &[&protocol.name()],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Entries of each protocol, every protocol listed (0 when none), in one
/// query: the admin API and each `/metrics` scrape ask.
pub async fn counts(client: &impl GenericClient) -> Result<Vec<(Protocol, u64)>, ClusterError> {
    let rows = client
        .query(
            "SELECT protocol, count(*) FROM entries GROUP BY protocol",
            &[],
        )
        .await?;
    let of = |p: Protocol| {
        let row = rows.iter().find(|r| r.get::<_, &str>(0) == p.name());
        row.map_or(0, |r| r.get::<_, i64>(1) as u64)
    };
    Ok(Protocol::ALL.into_iter().map(|p| (p, of(p))).collect())
}

/// Removes entry `id` and every entry that needs it; returns what went.
pub async fn remove(
    client: &impl GenericClient,
    id: u64,
) -> Result<Vec<EntryRecord>, ClusterError> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(Vec::new());
    };
    // RETURNING reads pins and children before the cascade removes them.
    let rows = client
        .query(
            &format!(
                "{} RETURNING {ENTRY_COLUMNS}",
                delete_with_parents("id = $1")
            ),
            &[&id],
        )
        .await?;
    rows.iter().map(record).collect()
}

/// Removes every entry of `namespace` and every entry that needs one of
/// them; returns how many went.
pub async fn purge_namespace(
    client: &impl GenericClient,
    namespace: &str,
) -> Result<u64, ClusterError> {
    Ok(client
        .execute(&delete_with_parents("namespace = $1"), &[&namespace])
        .await?)
}

/// Namespaces holding entries, sorted.
pub async fn namespace_names(client: &impl GenericClient) -> Result<Vec<String>, ClusterError> {
    let rows = client
        .query("SELECT DISTINCT namespace FROM entries", &[])
        .await?;
    let mut names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    names.sort();
    Ok(names)
}
