//! Names in a scope that point at entries (OCI tags at manifests), and the
//! other digests blobs are found by. A name goes when its entry goes: the
//! row references the entry.

use tokio_postgres::GenericClient;

use super::ClusterError;
use crate::cas::{ContentId, Digest};
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

/// The key of the entry `name` points at in `scope`.
pub async fn name(
    client: &impl GenericClient,
    scope: &str,
    name: &str,
) -> Result<Option<EntryKey>, ClusterError> {
    let row = client
        .query_opt(
            "SELECT e.protocol, e.namespace, e.name FROM names n
               JOIN entries e ON e.id = n.entry
              WHERE n.scope = $1 AND n.name = $2",
            &[&scope, &name],
        )
        .await?;
    row.map(|r| super::meta::entry_key(r.get(0), r.get(1), r.get(2)))
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

/// The live blob `digest` names, with its size.
pub async fn blob_by_digest(
    client: &impl GenericClient,
    digest: &Digest,
) -> Result<Option<(ContentId, u64)>, ClusterError> {
    let row = match digest {
        Digest::Blake3(id) => {
            client
                .query_opt(
                    "SELECT id, size FROM blobs WHERE id = $1 AND state = 'live'",
                    &[&&id[..]],
                )
                .await?
        }
        other => {
            client
                .query_opt(
                    "SELECT b.id, b.size FROM blob_aliases a JOIN blobs b ON b.id = a.blob
                      WHERE a.digest = $1 AND b.state = 'live'",
                    &[&other.to_string()],
                )
                .await?
        }
    };
    Ok(row.and_then(|r| {
        let id: [u8; 32] = r.get::<_, &[u8]>(0).try_into().ok()?;
        Some((ContentId(id), r.get::<_, i64>(1) as u64))
    }))
}
