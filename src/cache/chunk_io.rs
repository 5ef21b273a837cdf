//! Writing a request body into an upload session's file at an offset.
//! Positioned writes on a blocking thread, each error checked as it happens:
//! a buffered async write would report ENOSPC only on a later call, after
//! the chunk had been acknowledged.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::StoreError;
use crate::cas::CasError;

/// Body chunks that already arrived, written with one hand-off to a
/// blocking thread.
pub(super) const WRITE_BATCH: usize = 64;

/// Why writing a chunk stopped.
pub(super) enum ChunkError {
    /// The request body failed (or the budget refused it) after the bytes
    /// before the failure were written up to `.1`.
    Body(String, u64),
    Store(StoreError),
}

/// Writes a body into `file` from `offset` on, each batch of chunks on a
/// blocking thread with positioned writes whose errors are all checked.
/// Returns the offset after the last byte written.
pub(super) async fn write_at<S>(
    file: &Arc<std::fs::File>,
    offset: u64,
    limit: u64,
    mut body: std::pin::Pin<&mut S>,
) -> Result<u64, ChunkError>
where
    S: Stream<Item = Vec<Result<Bytes, String>>>,
{
    use std::os::unix::fs::FileExt;
    let mut at = offset;
    while let Some(batch) = body.next().await {
        let mut chunks = Vec::with_capacity(batch.len());
        let mut failed = None;
        for chunk in batch {
            match chunk {
                Ok(c) => chunks.push(c),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if at.saturating_add(len) > limit {
            return Err(ChunkError::Store(CasError::TooLarge { limit }.into()));
        }
        let f = file.clone();
        let start = at;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut pos = start;
            for c in &chunks {
                f.write_all_at(c, pos)?;
                pos += c.len() as u64;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| ChunkError::Store(e.into()))?;
        at += len;
        if let Some(e) = failed {
            return Err(ChunkError::Body(e, at));
        }
    }
    Ok(at)
}
