//! Names in a scope that point at entries (OCI tags at manifests). A name
//! goes when its entry goes: the row references the entry.

use tokio_postgres::{GenericClient, ToStatement};

use super::ClusterError;
use crate::index::EntryKey;

/// Points `name` in `scope` at the entry under `target`; false when there
/// is no such entry.
pub async fn set_name(
    client: &impl GenericClient,
    scope: &str,
    name: &str,
    target: &EntryKey,
) -> Result<bool, ClusterError> {
    let set = client
        .execute(
            "INSERT INTO names (scope, name, entry)
                  SELECT $1, $2, id FROM entries
                   WHERE protocol = $3 AND namespace = $4 AND name = $5
             ON CONFLICT (scope, name) DO UPDATE SET entry = excluded.entry",
            &[
                &scope,
                &name,
                &target.protocol.name(),
                &target.namespace,
                &target.name,
            ],
        )
        .await?;
    Ok(set == 1)
}

/// What `name` runs (see `links::BLOB`).
pub const NAME: &str = "SELECT e.protocol, e.namespace, e.name FROM names n
       JOIN entries e ON e.id = n.entry
      WHERE n.scope = $1 AND n.name = $2";

/// The key of the entry `name` points at in `scope`, with `NAME` or its
/// prepared statement.
pub async fn name(
    client: &impl GenericClient,
    query: &(impl ToStatement + Sync + Send + ?Sized),
    scope: &str,
    name: &str,
) -> Result<Option<EntryKey>, ClusterError> {
    let row = client.query_opt(query, &[&scope, &name]).await?;
    row.map(|r| super::entry_rows::entry_key(r.get(0), r.get(1), r.get(2)))
        .transpose()
}

pub async fn remove_name(
    client: &impl GenericClient,
    scope: &str,
    name: &str,
) -> Result<bool, ClusterError> {
    let n = client
        .execute(
            "DELETE FROM names WHERE scope = $1 AND name = $2",
            &[&scope, &name],
        )
        .await?;
    Ok(n == 1)
}

/// Up to `limit` names in `scope`, in lexical order, after `after`.
pub async fn names(
    client: &impl GenericClient,
    scope: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, ClusterError> {
    let rows = client
        .query(
            "SELECT name FROM names WHERE scope = $1 AND name > $2
              ORDER BY name COLLATE \"C\" LIMIT $3",
            &[
                &scope,
                &after.unwrap_or(""),
                &(limit.min(i64::MAX as usize) as i64),
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
