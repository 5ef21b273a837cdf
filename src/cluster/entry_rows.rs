//! Entries as rows: the columns a query selects to read an entry back
//! (`ENTRY_COLUMNS`, its pins and children included) and the record made
//! of them, shared by every query that returns entries.

use std::sync::LazyLock;

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, ToStatement};

use super::ClusterError;
use crate::cas::ContentId;
use crate::index::{EntryKey, EntryRecord, Protocol};

/// What `entry` runs (see `links::BLOB`).
pub static ENTRY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ENTRY_COLUMNS} FROM entries e
          WHERE protocol = $1 AND namespace = $2 AND name = $3"
    )
});

/// The entry under `key`, with its pins and children, with `ENTRY` or its
/// prepared statement.
pub async fn entry(
    client: &impl GenericClient,
    query: &(impl ToStatement + Sync + Send + ?Sized),
    key: &EntryKey,
) -> Result<Option<EntryRecord>, ClusterError> {
    let params: [&(dyn ToSql + Sync); 3] = [&key.protocol.name(), &key.namespace, &key.name];
    let row = client.query_opt(query, &params).await?;
    row.as_ref().map(record).transpose()
}

/// What `record` reads: `SELECT {ENTRY_COLUMNS} FROM entries e …`.
pub(super) const ENTRY_COLUMNS: &str = "id, content, size, created_at, last_used, meta,
    ARRAY(SELECT blob FROM entry_pins WHERE entry = e.id ORDER BY blob),
    ARRAY(SELECT protocol || '/' || namespace || '/' || name
            FROM entry_children WHERE parent = e.id),
    protocol, namespace, name";

/// An entry record from a row of `ENTRY_COLUMNS`.
pub(super) fn record(r: &Row) -> Result<EntryRecord, ClusterError> {
    let id_of = |raw: &[u8]| -> Result<ContentId, ClusterError> {
        raw.try_into()
            .map(ContentId)
            .map_err(|_| ClusterError::Corrupt(format!("a blob id of {} bytes", raw.len())))
    };
    let pins: Vec<Vec<u8>> = r.get(6);
    let children: Vec<String> = r.get(7);
    Ok(EntryRecord {
        id: r.get::<_, i64>(0) as u64,
        key: entry_key(r.get(8), r.get(9), r.get(10))?,
        content: id_of(r.get(1))?,
        size: r.get::<_, i64>(2) as u64,
        created: r.get::<_, i64>(3) as u64,
        last_used: r.get::<_, i64>(4) as u64,
        meta: r.get(5),
        pins: pins.iter().map(|p| id_of(p)).collect::<Result<_, _>>()?,
        children: children
            .iter()
            .map(|c| child_key(c))
            .collect::<Result<_, _>>()?,
    })
}

fn child_key(joined: &str) -> Result<EntryKey, ClusterError> {
    let bad = || ClusterError::Corrupt(format!("child entry {joined:?}"));
    let (protocol, rest) = joined.split_once('/').ok_or_else(bad)?;
    let (namespace, name) = rest.split_once('/').ok_or_else(bad)?;
    entry_key(protocol, namespace.to_owned(), name.to_owned())
}

/// An entry key from its columns.
pub(super) fn entry_key(
    protocol: &str,
    namespace: String,
    name: String,
) -> Result<EntryKey, ClusterError> {
    Ok(EntryKey {
        protocol: Protocol::from_name(protocol)
            .ok_or_else(|| ClusterError::Corrupt(format!("protocol {protocol:?}")))?,
        namespace,
        name,
    })
}
