//! Blobs by the digests clients use, and the scopes (OCI repositories)
//! that may read them: a repository sees a blob only once it was pushed
//! there or mounted into it, as on a single node.

use tokio_postgres::{GenericClient, ToStatement};

use super::ClusterError;
use crate::cache::BlobInfo;
use crate::cas::{ContentId, Digest};

/// What `blob` runs: a pooled connection prepares it once
/// (`prepare_cached`), sparing a round trip and a plan per lookup.
pub const BLOB: &str = "SELECT b.id, b.size, s.digest FROM blobs b
       JOIN blob_aliases s ON s.blob = b.id AND starts_with(s.digest, 'sha256:')
      WHERE b.id = coalesce($1, (SELECT blob FROM blob_aliases WHERE digest = $2))
        AND b.state = 'live'
        AND ($3::text IS NULL
             OR EXISTS (SELECT 1 FROM blob_links l WHERE l.blob = b.id AND l.scope = $3))
      LIMIT 1";

/// The live blob `digest` names, as seen from `scope` when one is given
/// (a miss unless it is linked there), with `BLOB` or its prepared
/// statement. Blobs are found by their SHA-256 alias, which every blob the
/// store writes has.
pub async fn blob(
    client: &impl GenericClient,
    query: &(impl ToStatement + Sync + Send + ?Sized),
    digest: &Digest,
    scope: Option<&str>,
) -> Result<Option<BlobInfo>, ClusterError> {
    let (id, alias): (Option<&[u8]>, Option<String>) = match digest {
        Digest::Blake3(id) => (Some(&id[..]), None),
        other => (None, Some(other.to_string())),
    };
    let row = client.query_opt(query, &[&id, &alias, &scope]).await?;
    row.map(|r| {
        let corrupt = |what: &str| ClusterError::Corrupt(format!("blob {what}"));
        let id: [u8; 32] = r.get::<_, &[u8]>(0).try_into().map_err(|_| corrupt("id"))?;
        let sha256 = r
            .get::<_, &str>(2)
            .parse::<Digest>()
            .ok()
            .and_then(|d| match d {
                Digest::Sha256(h) => Some(h),
                _ => None,
            })
            .ok_or_else(|| corrupt("SHA-256 alias"))?;
        Ok(BlobInfo {
            id: ContentId(id),
            sha256,
            size: r.get::<_, i64>(1) as u64,
        })
    })
    .transpose()
}

/// Lets `scope` read blob `id` and marks the blob used now; false when the
/// blob is not live (never stored, or being collected). The row lock the
/// update takes orders this against GC's mark.
pub async fn link(
    client: &impl GenericClient,
    id: &ContentId,
    scope: &str,
    now_ms: i64,
) -> Result<bool, ClusterError> {
    let found: i64 = client
        .query_one(
            "WITH b AS (UPDATE blobs SET touched_at = greatest(touched_at, $3)
                         WHERE id = $1 AND state = 'live' RETURNING id),
                  l AS (INSERT INTO blob_links (blob, scope) SELECT id, $2 FROM b
                        ON CONFLICT DO NOTHING)
             SELECT count(*) FROM b",
            &[&&id.0[..], &scope, &now_ms],
        )
        .await?
        .get(0);
    Ok(found == 1)
}

/// Stops `scope` from reading blob `id`; false if it could not.
pub async fn unlink(
    client: &impl GenericClient,
    id: &ContentId,
    scope: &str,
) -> Result<bool, ClusterError> {
    let n = client
        .execute(
            "DELETE FROM blob_links WHERE blob = $1 AND scope = $2",
            &[&&id.0[..], &scope],
        )
        .await?;
    Ok(n == 1)
}

/// Lets `scope` read blob `id`, in the transaction that records the blob.
pub async fn link_in(
    tx: &impl GenericClient,
    id: &ContentId,
    scope: &str,
) -> Result<(), ClusterError> {
    tx.execute(
        "INSERT INTO blob_links (blob, scope) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&&id.0[..], &scope],
    )
    .await?;
    Ok(())
}
