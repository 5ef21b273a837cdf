//! A replica's local read-through tier: blobs it served lately, as files in
//! its data dir, least recently used dropped above `local_cache_size`. A
//! cold read streams from the object store to the client and, beside it,
//! through the same verified ingest a push takes into the tier: only bytes
//! that hash to the blob's name are kept. The tier is only a cache of the
//! object store; wiping it loses nothing. Copies are not synced one by one
//! (`tier_boot.rs`).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::objects::{Objects, ObjectsError};
use super::tier_boot::Boot;
use crate::cas::{ingest_copy, Cas, CasError, ContentId, FileRange, Verified};

/// Chunks queued between a cold read and the tier's writer: the client
/// waits for a slow disk rather than the queue growing without bound.
const TEE_DEPTH: usize = 8;

#[derive(Clone)]
pub struct Tier(Arc<Inner>);

struct Inner {
    cas: Cas,
    objects: Objects,
    capacity: u64,
    /// Copies are placed without a sync of their own (`tier_boot.rs`).
    unsynced: bool,
    lru: Mutex<Lru>,
    /// Counts finished fills (kept or not), so a caller can await one.
    fills: watch::Sender<u64>,
}

#[derive(Default)]
struct Lru {
    sizes: HashMap<ContentId, (u64, u64)>,
    order: BTreeMap<u64, ContentId>,
    used: u64,
    tick: u64,
}

impl Lru {
    /// Marks `id` used now; its size when the tier holds it.
    fn touch(&mut self, id: &ContentId) -> Option<u64> {
        let (size, at) = self.sizes.get_mut(id)?;
        self.order.remove(at);
        self.tick += 1;
        *at = self.tick;
        self.order.insert(self.tick, *id);
        Some(*size)
    }

    /// Adds `id`, then drops the least recently used others until the
    /// tier fits `capacity`; returns what was dropped.
    fn insert(&mut self, id: ContentId, size: u64, capacity: u64) -> Vec<ContentId> {
        if self.touch(&id).is_none() {
            self.tick += 1;
            self.sizes.insert(id, (size, self.tick));
            self.order.insert(self.tick, id);
            self.used += size;
        }
        let mut dropped = Vec::new();
        while self.used > capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if oldest == id {
                self.order.insert(self.tick, id);
                break;
            }
            dropped.push(oldest);
            self.forget(&oldest);
        }
        dropped
    }

    fn forget(&mut self, id: &ContentId) {
        if let Some((size, at)) = self.sizes.remove(id) {
            self.order.remove(&at);
            self.used -= size;
        }
    }
}

impl Tier {
    /// Opens the tier in `dir`, counting what an earlier run left there
    /// (or dropping it, when the machine restarted since copies were
    /// placed unsynced).
    pub fn open(dir: &Path, capacity: u64, objects: Objects) -> io::Result<Tier> {
        let cas = Cas::open(&dir.join("blobs"), &dir.join("tmp"))?;
        let boot = Boot::read(dir)?;
        let whole = boot.copies_whole();
        let mut lru = Lru::default();
        let mut over = Vec::new();
        for (id, size) in cas.list()? {
            if whole {
                over.extend(lru.insert(id, size, capacity));
            } else {
                over.push(id);
            }
        }
        if !whole && !over.is_empty() {
            tracing::info!(
                copies = over.len(),
                "the machine restarted since this tier placed copies unsynced; it starts empty"
            );
        }
        for id in over {
            cas.remove(&id)?;
        }
        let unsynced = boot.place_unsynced()?;
        Ok(Tier(Arc::new(Inner {
            cas,
            objects,
            capacity,
            unsynced,
            lru: Mutex::new(lru),
            fills: watch::channel(0).0,
        })))
    }

    /// The most bytes the tier holds (`cluster.local_cache_size`).
    pub fn capacity(&self) -> u64 {
        self.0.capacity
    }

    /// Bytes the tier holds.
    pub fn used(&self) -> u64 {
        self.0.lru.lock().used
    }

    pub fn holds(&self, id: &ContentId) -> bool {
        self.0.lru.lock().sizes.contains_key(id)
    }

    /// Finished fills so far; `changed()` on it awaits the next one.
    pub fn fills(&self) -> watch::Receiver<u64> {
        self.0.fills.subscribe()
    }

    /// Blob `id`, all of it or `range`: from the tier when it holds it,
    /// else from the object store, keeping a whole read.
    pub async fn read(
        &self,
        id: &ContentId,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectsError>>, ObjectsError> {
        if let Some(file) = self.open_held(id, range.clone()).await? {
            return Ok(file.into_stream().map_err(ObjectsError::Local).boxed());
        }
        let cold = self.0.objects.read_blob(id, range.clone()).await?;
        if range.is_some() {
            return Ok(cold);
        }
        Ok(self.tee(*id, cold))
    }

    /// Blob `id`'s file, all of it or `range`, when the tier holds it (a
    /// hit); `None` when it does not, or its file was wiped behind our back
    /// (then it is read through again).
    pub async fn open_held(
        &self,
        id: &ContentId,
        range: Option<Range<u64>>,
    ) -> io::Result<Option<FileRange>> {
        let Some(size) = self.0.lru.lock().touch(id) else {
            return Ok(None);
        };
        let (offset, len) = range.map_or((0, size), |r| (r.start, r.end.saturating_sub(r.start)));
        match self.0.cas.open_range(id, offset, len).await {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.0.lru.lock().forget(id);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps a blob this replica just verified (a push, a small write), as
    /// a cold read would: published in the tier, least recently used out.
    /// Blocking.
    pub fn keep(&self, verified: Verified) -> io::Result<()> {
        if verified.meta.size > self.0.capacity {
            return Ok(());
        }
        let meta = if self.0.unsynced {
            verified.place(&self.0.cas)?
        } else {
            verified.publish(&self.0.cas)?
        };
        let dropped = self
            .0
            .lru
            .lock()
            .insert(meta.id, meta.size, self.0.capacity);
        for old in dropped {
            self.0.cas.remove(&old)?;
        }
        Ok(())
    }

    /// Where verified writes are staged before `keep` (same filesystem).
    pub fn cas(&self) -> &Cas {
        &self.0.cas
    }

    /// Hands `cold`'s chunks to the client and to a writer that verifies
    /// them into the tier. A client that stops early leaves the writer a
    /// short body, which does not hash to `id` and is not kept.
    fn tee(
        &self,
        id: ContentId,
        cold: BoxStream<'static, Result<Bytes, ObjectsError>>,
    ) -> BoxStream<'static, Result<Bytes, ObjectsError>> {
        let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(TEE_DEPTH);
        let tier = self.clone();
        tokio::spawn(async move {
            let body = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
            tier.fill(id, body).await;
            tier.0.fills.send_modify(|n| *n += 1);
        });
        cold.then(move |chunk| {
            let tx = tx.clone();
            async move {
                let copy = match &chunk {
                    Ok(bytes) => Ok(bytes.clone()),
                    Err(e) => Err(e.to_string()),
                };
                // The writer gone (disk trouble) is no reason to fail the read.
                let _ = tx.send(copy).await;
                chunk
            }
        })
        .boxed()
    }

    async fn fill(
        &self,
        id: ContentId,
        body: impl futures_util::Stream<Item = Result<Bytes, String>> + Send,
    ) {
        let verified = match ingest_copy(&self.0.cas, body, id).await {
            Ok(v) => v,
            Err(CasError::DigestMismatch { .. }) => {
                tracing::debug!(blob = %id, "a read ended early or its object is not its bytes; not kept");
                return;
            }
            Err(e) => {
                tracing::debug!(blob = %id, error = %e, "blob not kept in the tier");
                return;
            }
        };
        let tier = self.clone();
        let kept = tokio::task::spawn_blocking(move || tier.keep(verified)).await;
        if let Ok(Err(e)) = kept {
            tracing::warn!(blob = %id, error = %e, "cannot keep a blob in the local tier");
        }
    }
}
