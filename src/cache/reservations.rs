//! Reservations: upload sessions named by what they will become (one per
//! scope at a time), whose bytes arrive in any order — chunks at offsets, or
//! parts staged by name and assembled in a given order — and that end as a
//! blob without a digest known in advance. The GitHub Actions cache uploads
//! this way; the session machinery (files in `uploads/`, budget, expiry) is
//! the one OCI uploads use.
//!
//! Staged parts live in a second session (the *stage*) whose id derives from
//! the reservation's, as a log of records `magic, id length (u16 BE), id,
//! data length (u64 BE), data`; the last record of an id wins.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::uploads::{valid_id, Partial};
use super::{BlobInfo, Store, StoreError, UploadState};
use crate::cas::CasError;

/// Reservation ids are numbers below this (2^53), so that JavaScript clients,
/// which hold ids as JSON numbers, name them exactly.
const MAX_NUMBER: u64 = 1 << 53;
const PART_MAGIC: &[u8; 4] = b"LPRT";
/// The longest part name accepted (Azure's block ids are at most 64 bytes
/// before base64).
pub const MAX_PART_NAME: usize = 256;

/// The number that names reservation `id`, if it is one.
pub fn reservation_number(id: &str) -> Option<u64> {
    let n = u64::from_str_radix(id.strip_prefix("0000000000000000")?, 16).ok()?;
    (valid_id(id) && n > 0 && n < MAX_NUMBER).then_some(n)
}

/// The id of the reservation named `n` (which may not exist).
pub fn reservation_id(n: u64) -> String {
    format!("{n:032x}")
}

/// The stage of reservation `id`: derived, so nothing needs to record it.
pub(super) fn stage_id(id: &str) -> String {
    let hash = blake3::hash(format!("larder stage {id}").as_bytes());
    hex::encode(&hash.as_bytes()[..16])
}

pub(super) fn stage_scope(id: &str) -> String {
    format!("stage:{id}")
}

/// A body that must be exactly `len` bytes; anything else is an error, so a
/// short or overlong chunk is rolled back instead of stored.
pub fn exact<S, E>(body: S, len: u64) -> impl Stream<Item = Result<Bytes, String>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut seen = 0u64;
    body.map(|c| c.map(Some).map_err(|e| e.to_string()))
        // `None` marks the end, where a short body is caught.
        .chain(stream::once(async { Ok(None) }))
        .filter_map(move |item| {
            let out = match item {
                Ok(Some(chunk)) => {
                    seen += chunk.len() as u64;
                    if seen > len {
                        Some(Err(format!(
                            "body is longer than the {len} bytes announced"
                        )))
                    } else {
                        Some(Ok(chunk))
                    }
                }
                Ok(None) if seen < len => {
                    Some(Err(format!("body ended after {seen} of {len} bytes")))
                }
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            };
            std::future::ready(out)
        })
}

impl Store {
    /// Opens a session for `scope` unless one is already open for it
    /// (`Ok(None)`): one writer per scope, as a reservation promises. With a
    /// `size`, no chunk may end past it.
    pub async fn reserve_upload(
        &self,
        scope: &str,
        size: Option<u64>,
    ) -> Result<Option<UploadState>, StoreError> {
        let lock = self.uploads.lock(&format!("scope:{scope}"));
        let _guard = lock.lock().await;
        if self.reserved_upload(scope)?.is_some() {
            return Ok(None);
        }
        loop {
            let id = reservation_id(rand::random_range(1..MAX_NUMBER));
            if self.index.upload(&id)?.is_none() {
                let state = self.create_upload_with_id(scope, id).await?;
                if let Some(size) = size {
                    if let Some(mut rec) = self.index.upload(&state.id)? {
                        rec.size = Some(size);
                        self.index.put_upload(&state.id, &rec)?;
                    }
                }
                return Ok(Some(state));
            }
        }
    }

    /// The size reservation `id` declared it will have, if it declared one.
    pub fn reserved_size(&self, id: &str) -> Result<Option<u64>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        Ok(self.index.upload(id)?.and_then(|rec| rec.size))
    }

    /// The id of the open session of `scope`, if any. Sessions are few (the
    /// writes in flight), so this reads them all.
    pub fn reserved_upload(&self, scope: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .index
            .uploads()?
            .into_iter()
            .find(|(_, rec)| rec.scope == scope)
            .map(|(id, _)| id))
    }

    /// The scope owning session `id`, for protocols that name a session by id
    /// alone and check the owner themselves.
    pub fn upload_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        Ok(self.index.upload(id)?.map(|rec| rec.scope))
    }

    /// Replaces everything a session holds with `body` (of exactly `len`
    /// bytes): a whole-content upload.
    pub async fn replace_upload<S, E>(
        &self,
        scope: &str,
        id: &str,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<UploadState, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let (_guard, mut state) = self.lock_upload(scope, id).await?;
        self.truncate_upload(&mut state).await?;
        self.write_chunk(&mut state, 0, exact(body, len), limit, Partial::Drop)
            .await?;
        Ok(state)
    }

    /// Ends a session holding exactly `size` bytes as a blob, and its stage if
    /// it has one. A session of another size stays open (`UploadLength`), so
    /// a client may still send what is missing.
    pub async fn seal_upload(
        &self,
        scope: &str,
        id: &str,
        size: u64,
    ) -> Result<BlobInfo, StoreError> {
        let (guard, state) = self.lock_upload(scope, id).await?;
        if state.len != size {
            return Err(StoreError::UploadLength {
                len: state.len,
                expected: size,
            });
        }
        let sealed = self.seal_locked(&state, None, None).await;
        drop(guard);
        let stage = stage_id(id);
        match self.cancel_upload(&stage_scope(id), &stage).await {
            Ok(()) | Err(StoreError::UploadUnknown(_)) => {}
            Err(e) => tracing::warn!(error = %e, stage, "could not remove a staged upload"),
        }
        sealed
    }

    /// Stages part `name` (exactly `len` bytes) of reservation `id`; staging a
    /// name again replaces that part. Parts of one reservation are written one
    /// at a time, under the reservation's lock, so sealing or assembling it
    /// waits for a part in flight.
    pub async fn stage_part<S, E>(
        &self,
        scope: &str,
        id: &str,
        name: &str,
        len: u64,
        body: S,
        limit: u64,
    ) -> Result<(), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if name.is_empty() || name.len() > MAX_PART_NAME {
            return Err(
                CasError::Body(format!("a part name has 1 to {MAX_PART_NAME} bytes")).into(),
            );
        }
        if len > limit {
            return Err(CasError::TooLarge { limit }.into());
        }
        // The reservation must exist; staging keeps it from expiring as idle.
        let (_guard, _) = self.lock_upload(scope, id).await?;
        self.touch_upload(id)?;
        let (stage, owner) = (stage_id(id), stage_scope(id));
        let stage_lock = self.uploads.lock(&stage);
        let _stage_guard = stage_lock.lock().await;
        let mut state = match self.upload(&owner, &stage).await {
            Ok(s) => s,
            Err(StoreError::UploadUnknown(_)) => self.create_upload_with_id(&owner, stage).await?,
            Err(e) => return Err(e),
        };
        let mut header = Vec::with_capacity(14 + name.len());
        header.extend_from_slice(PART_MAGIC);
        header.extend_from_slice(&(name.len() as u16).to_be_bytes());
        header.extend_from_slice(name.as_bytes());
        header.extend_from_slice(&len.to_be_bytes());
        let record = stream::once(async move { Ok::<_, String>(Bytes::from(header)) })
            .chain(exact(body, len));
        let end = state.len;
        // The stage holds every version of every part, so it may grow past one
        // blob's limit; the whole budget still bounds it.
        self.write_chunk(&mut state, end, record, self.max_size(), Partial::Drop)
            .await
    }

    /// Replaces the bytes of reservation `id` with its staged parts in
    /// `order`, then drops the stage. Fails with `PartUnknown`, changing
    /// nothing, when a part was never staged.
    pub async fn assemble_parts(
        &self,
        scope: &str,
        id: &str,
        order: &[String],
        limit: u64,
    ) -> Result<UploadState, StoreError> {
        let (_guard, mut state) = self.lock_upload(scope, id).await?;
        let (stage, owner) = (stage_id(id), stage_scope(id));
        let stage_lock = self.uploads.lock(&stage);
        let _stage_guard = stage_lock.lock().await;
        let staged = match self.upload(&owner, &stage).await {
            Ok(s) => Some(s.len),
            Err(StoreError::UploadUnknown(_)) => None,
            Err(e) => return Err(e),
        };
        let path = self.uploads.path(&stage);
        let parts = match staged {
            Some(len) if len > 0 => tokio::task::spawn_blocking(move || read_parts(&path))
                .await
                .map_err(std::io::Error::other)??,
            _ => HashMap::new(),
        };
        let mut ranges = Vec::with_capacity(order.len());
        for name in order {
            let range = parts
                .get(name)
                .ok_or_else(|| StoreError::PartUnknown(name.clone()))?;
            ranges.push(*range);
        }
        let total: u64 = ranges.iter().map(|(_, len)| len).sum();
        if total > limit {
            return Err(CasError::TooLarge { limit }.into());
        }
        self.truncate_upload(&mut state).await?;
        let path = self.uploads.path(&stage);
        let body = stream::iter(ranges)
            .then(move |(offset, len)| {
                let path = path.clone();
                async move {
                    let mut file = tokio::fs::File::open(path).await?;
                    file.seek(SeekFrom::Start(offset)).await?;
                    Ok::<_, std::io::Error>(tokio_util::io::ReaderStream::new(file.take(len)))
                }
            })
            .try_flatten();
        self.write_chunk(&mut state, 0, exact(body, total), limit, Partial::Drop)
            .await?;
        if let Some(len) = staged {
            self.end_upload(&stage, len).await?;
        }
        Ok(state)
    }

    /// Empties a session file, to be rewritten whole; the caller holds its
    /// lock.
    pub(super) async fn truncate_upload(&self, state: &mut UploadState) -> Result<(), StoreError> {
        if state.len == 0 {
            return Ok(());
        }
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(self.uploads.path(&state.id))
            .await?;
        file.set_len(0).await?;
        file.sync_data().await?;
        self.budget.sub_uploads(state.len);
        state.len = 0;
        Ok(())
    }
}

/// Where each staged part's data lies in a stage file: name → (offset, len).
pub(super) fn read_parts(path: &std::path::Path) -> std::io::Result<HashMap<String, (u64, u64)>> {
    let damaged = |why: &str| std::io::Error::other(format!("staged parts are damaged: {why}"));
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let size = file.get_ref().metadata()?.len();
    let mut parts = HashMap::new();
    let mut at = 0u64;
    while at < size {
        let mut head = [0u8; 6];
        file.read_exact(&mut head)?;
        if &head[..4] != PART_MAGIC {
            return Err(damaged("bad record marker"));
        }
        let name_len = u16::from_be_bytes([head[4], head[5]]) as usize;
        let mut name = vec![0u8; name_len];
        file.read_exact(&mut name)?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len)?;
        let len = u64::from_be_bytes(len);
        let data = at + 14 + name_len as u64;
        let end = data
            .checked_add(len)
            .filter(|end| *end <= size)
            .ok_or_else(|| damaged("a record runs past the end"))?;
        let name = String::from_utf8(name).map_err(|_| damaged("a part name is not UTF-8"))?;
        parts.insert(name, (data, len));
        file.seek(SeekFrom::Start(end))?;
        at = end;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_numbers_round_trip_and_stay_javascript_safe() {
        for n in [1, 42, MAX_NUMBER - 1] {
            assert_eq!(reservation_number(&reservation_id(n)), Some(n));
        }
        assert_eq!(reservation_number(&reservation_id(0)), None);
        assert_eq!(reservation_number(&reservation_id(MAX_NUMBER)), None);
        assert_eq!(reservation_number(&format!("{:032x}", u128::MAX)), None);
        assert_eq!(reservation_number("12"), None);
        assert_ne!(stage_id(&reservation_id(7)), reservation_id(7));
        assert!(valid_id(&stage_id(&reservation_id(7))));
    }

    #[test]
    fn the_part_log_finds_the_last_version_of_each_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage");
        let mut log = Vec::new();
        for (name, data) in [("a", &b"111"[..]), ("b", b"22"), ("a", b"3333")] {
            log.extend_from_slice(PART_MAGIC);
            log.extend_from_slice(&(name.len() as u16).to_be_bytes());
            log.extend_from_slice(name.as_bytes());
            log.extend_from_slice(&(data.len() as u64).to_be_bytes());
            log.extend_from_slice(data);
        }
        std::fs::write(&path, &log).unwrap();
        let parts = read_parts(&path).unwrap();
        // Records are 14 bytes of header, the name, then the data.
        assert_eq!(parts["b"], (18 + 15, 2));
        assert_eq!(parts["a"], (18 + 17 + 15, 4));
        std::fs::write(&path, &log[..log.len() - 1]).unwrap();
        assert!(read_parts(&path).is_err());
    }
}
