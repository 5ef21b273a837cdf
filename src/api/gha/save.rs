//! Saving, shared by v1 and v2: reserve a key + version, receive its bytes
//! (v1 chunks, v2 blob URL), commit it as an entry. Entries are immutable: a
//! key + version that exists, or is being saved, cannot be reserved again.

use super::error::{GhaError, Kind};
use super::Target;
use crate::api::AppState;
use crate::cache::{EntryRecord, NewEntry, StoreError, UploadState};

/// A conflict. The text always says "already exists": BuildKit's Go client
/// recognises a Twirp conflict by that phrase alone.
fn already_exists(t: &Target, why: &str) -> GhaError {
    GhaError::new(
        Kind::AlreadyExists,
        format!(
            "cache entry {:?} (version {}) already exists in scope {:?}{why}",
            t.key, t.version, t.namespace
        ),
    )
}

/// Opens the reservation of `target`: 409 when its entry exists or another
/// reservation holds it.
pub async fn reserve(
    state: &AppState,
    target: &Target,
    size: Option<u64>,
) -> Result<UploadState, GhaError> {
    let limit = state.blob_limit();
    if let Some(size) = size.filter(|s| *s > limit) {
        return Err(GhaError::bad_request(format!(
            "cache size of {size} bytes is over the limit of {limit} bytes"
        )));
    }
    let store = &state.store;
    if store.entry(&target.entry_key()).await?.is_some() {
        return Err(already_exists(target, ""));
    }
    store
        .reserve_upload(&target.reservation_scope(), size)
        .await?
        .ok_or_else(|| already_exists(target, ": another job is saving it"))
}

/// The reservation `id`, if it exists and is an Actions cache reservation.
pub async fn reservation(state: &AppState, id: &str) -> Result<Target, GhaError> {
    let unknown = || StoreError::UploadUnknown(id.to_owned()).into();
    let scope = state.store.upload_owner(id).await?.ok_or_else(unknown)?;
    Target::from_reservation_scope(&scope).ok_or_else(unknown)
}

/// Commits reservation `id` of `target`, holding exactly `size` bytes, as
/// its entry: the bytes are hashed into a blob (deduplicated with every
/// other protocol's) that the new entry pins.
pub async fn commit(
    state: &AppState,
    target: &Target,
    id: &str,
    size: u64,
) -> Result<EntryRecord, GhaError> {
    let store = &state.store;
    let scope = target.reservation_scope();
    if store.entry(&target.entry_key()).await?.is_some() {
        // Only possible when the entry appeared after this reservation; it can
        // never commit, so its bytes go now rather than at expiry.
        store.cancel_upload(&scope, id).await?;
        return Err(already_exists(target, ""));
    }
    let blob = store.seal_upload(&scope, id, size).await?;
    let entry = store
        .put_entry(&NewEntry {
            key: target.entry_key(),
            content: blob.id,
            size: blob.size,
            pins: vec![blob.id],
            meta: Vec::new(),
            children: Vec::new(),
        })
        .await?;
    tracing::debug!(namespace = %target.namespace, id = entry.id, size, "saved an Actions cache entry");
    Ok(entry)
}
