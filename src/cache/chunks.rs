//! Chunks written at offsets (the Actions cache v1: `PATCH` with
//! `Content-Range`, out of order and in parallel), staged as parts named by
//! their offset instead of written into a sparse file. Usage then counts the
//! bytes that arrived, never a hole before a far offset; and a chunk that
//! never arrived cannot read back as zeros. The archive is assembled in
//! offset order when it is committed.

use bytes::Bytes;
use futures_util::Stream;

use super::reservations::{read_parts, stage_id, stage_scope};
use super::{Store, StoreError};
use crate::cas::CasError;

/// Part names sort as their offsets do.
pub fn chunk_name(offset: u64) -> String {
    format!("chunk-{offset:020}")
}

fn chunk_offset(name: &str) -> Option<u64> {
    name.strip_prefix("chunk-")?.parse().ok()
}

/// The staged chunks' names, (name, length), in offset order, when they
/// cover exactly `size` bytes from 0 without a gap or an overlap: the check
/// both engines make before assembling a reservation.
pub fn chunk_order(staged: Vec<(String, u64)>, size: u64) -> Result<Vec<String>, StoreError> {
    let mut chunks = Vec::with_capacity(staged.len());
    for (name, len) in staged {
        // Only this module names the parts of a reservation of the v1 API.
        let offset = chunk_offset(&name)
            .ok_or_else(|| CasError::Body(format!("part {name:?} is not a chunk")))?;
        chunks.push((offset, len, name));
    }
    chunks.sort_unstable();
    let mut covered = 0u64;
    let mut order = Vec::with_capacity(chunks.len());
    for (offset, len, name) in chunks {
        if offset > covered {
            return Err(StoreError::UploadGap {
                missing_at: covered,
            });
        }
        if offset < covered {
            return Err(CasError::Body(format!(
                "the chunk at offset {offset} overlaps bytes already received up to {covered}"
            ))
            .into());
        }
        covered = covered.saturating_add(len);
        order.push(name);
    }
    if covered != size {
        return Err(StoreError::UploadLength {
            len: covered,
            expected: size,
        });
    }
    Ok(order)
}

impl Store {
    /// Stages a chunk of exactly `len` bytes at `offset` of reservation `id`;
    /// staging the same offset again replaces that chunk. A chunk ending
    /// past `limit` is refused before a byte is read.
    pub async fn stage_chunk<S, E>(
        &self,
        scope: &str,
        id: &str,
        offset: u64,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<(), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if offset.checked_add(len).is_none_or(|end| end > limit) {
            return Err(CasError::TooLarge { limit }.into());
        }
        self.stage_part(scope, id, &chunk_name(offset), len, body, limit)
            .await
    }

    /// Makes reservation `id` hold its staged chunks in offset order, which
    /// must cover exactly `size` bytes from 0 without a gap or an overlap;
    /// otherwise nothing changes and the client may still send what is
    /// missing. A reservation without staged chunks is left as it is.
    pub async fn assemble_chunks(
        &self,
        scope: &str,
        id: &str,
        size: u64,
        limit: u64,
    ) -> Result<(), StoreError> {
        let parts = self.staged_parts(scope, id).await?;
        if parts.is_empty() {
            return Ok(());
        }
        let order = chunk_order(parts, size)?;
        self.assemble_parts(scope, id, &order, limit).await?;
        Ok(())
    }

    /// The parts staged for reservation `id` (name, length), which must exist.
    async fn staged_parts(&self, scope: &str, id: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let (_guard, _) = self.lock_upload(scope, id).await?;
        let (stage, owner) = (stage_id(id), stage_scope(id));
        let stage_lock = self.uploads.lock(&stage);
        let _stage_guard = stage_lock.lock().await;
        match self.upload(&owner, &stage).await {
            Ok(s) if s.len > 0 => {}
            Ok(_) | Err(StoreError::UploadUnknown(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        let path = self.uploads.path(&stage);
        let parts = tokio::task::spawn_blocking(move || read_parts(&path))
            .await
            .map_err(std::io::Error::other)??;
        Ok(parts
            .into_iter()
            .map(|(name, (_, len))| (name, len))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names_sort_as_offsets_and_round_trip() {
        let offsets = [0u64, 9, 10, 32 << 20, u64::MAX];
        let names: Vec<String> = offsets.iter().map(|o| chunk_name(*o)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        for (o, n) in offsets.iter().zip(&names) {
            assert_eq!(chunk_offset(n), Some(*o));
        }
        assert_eq!(chunk_offset("block-1"), None);
    }
}
