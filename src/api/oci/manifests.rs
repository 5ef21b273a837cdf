//! `HEAD|GET|PUT|DELETE /v2/<name>/manifests/<tag|digest>`. A manifest is an
//! entry: its bytes are a blob, and it pins every blob and child manifest it
//! references, so nothing it needs can be evicted from under it.

use std::collections::BTreeSet;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest as _;

use super::{parse_digest, path, scope, OciError, Req};
use crate::api::content_length;
use crate::backend::Backend;
use crate::cache::{BlobInfo, BlobWrite, EntryKey, EntryRecord, NewEntry, Protocol};
use crate::cas::{ContentId, Digest};

/// Manifests larger than this are refused; the spec asks for at least 4 MiB.
const MAX_MANIFEST: usize = 8 << 20;
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// What Larder keeps beside a manifest's bytes (the entry's meta, as JSON).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ManifestMeta {
    pub media_type: String,
    pub len: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Value>,
}

impl ManifestMeta {
    pub fn decode(entry: &EntryRecord) -> Option<ManifestMeta> {
        serde_json::from_slice(&entry.meta).ok()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    /// Checked against the stored content: a client trusts it when it
    /// fetches, and a wrong one would be served as is.
    size: Option<u64>,
    #[serde(default)]
    urls: Vec<String>,
}

/// The fields of any manifest kind that reference other content.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    blobs: Vec<Descriptor>,
    subject: Option<Descriptor>,
    annotations: Option<serde_json::Value>,
}

pub(super) fn entry_key(name: &str, digest: &str) -> EntryKey {
    EntryKey {
        protocol: Protocol::Oci,
        namespace: path::namespace(name).to_owned(),
        name: format!("{name}@{digest}"),
    }
}

/// Resolves a tag or digest to the manifest entry and its canonical digest.
async fn resolve(
    store: &Backend,
    name: &str,
    reference: &str,
) -> Result<Option<(String, EntryRecord)>, OciError> {
    let digest = if reference.contains(':') {
        parse_digest(reference)?.to_string()
    } else {
        if !path::valid_tag(reference) {
            return Err(OciError::manifest_invalid(format!(
                "invalid tag {reference:?}"
            )));
        }
        match store.name(&scope(name), reference).await? {
            Some(target) => match target.name.split_once('@') {
                Some((_, d)) => d.to_owned(),
                None => return Ok(None),
            },
            None => return Ok(None),
        }
    };
    Ok(store
        .entry(&entry_key(name, &digest))
        .await?
        .map(|e| (digest, e)))
}

pub async fn get(req: Req, name: &str, reference: &str) -> Result<Response, OciError> {
    let store = &req.state.store;
    let (digest, entry) = resolve(store, name, reference)
        .await?
        .ok_or_else(|| OciError::manifest_unknown(reference))?;
    let meta = ManifestMeta::decode(&entry).ok_or_else(|| OciError::manifest_unknown(reference))?;
    store.touch_entry(&entry);
    let body = if req.method == Method::HEAD {
        Body::empty()
    } else {
        let bytes = store.read_content(&entry.content, meta.len).await?;
        Body::from(bytes)
    };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len));
    if let Ok(v) = HeaderValue::from_str(&meta.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&digest) {
        h.insert("Docker-Content-Digest", v.clone());
        h.insert(header::ETAG, v);
    }
    Ok(res)
}

pub async fn put(req: Req, name: &str, reference: &str) -> Result<Response, OciError> {
    let by_digest = if reference.contains(':') {
        Some(parse_digest(reference)?)
    } else if path::valid_tag(reference) {
        None
    } else {
        return Err(OciError::manifest_invalid(format!(
            "invalid tag {reference:?}"
        )));
    };
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty());
    let too_large = || {
        OciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("manifest is larger than {MAX_MANIFEST} bytes"),
        )
    };
    // Announced too large: refused before reading it.
    if content_length(&req.headers).is_some_and(|n| n > MAX_MANIFEST as u64) {
        return Err(too_large());
    }
    let bytes = to_bytes(req.body, MAX_MANIFEST)
        .await
        .map_err(|_| too_large())?;
    let doc: ManifestDoc = serde_json::from_slice(&bytes)
        .map_err(|e| OciError::manifest_invalid(format!("manifest is not valid JSON: {e}")))?;
    if doc.schema_version.is_some_and(|v| v != 2) {
        return Err(OciError::manifest_invalid(
            "only schemaVersion 2 manifests are supported",
        ));
    }
    let tagged = by_digest.is_none();
    let digest = match by_digest {
        Some(d) => d,
        None => Digest::Sha256(sha2::Sha256::digest(&bytes).into()),
    };
    let media_type = content_type
        .or_else(|| doc.media_type.clone())
        .unwrap_or_else(|| {
            if doc.manifests.is_empty() {
                OCI_MANIFEST
            } else {
                OCI_INDEX
            }
            .to_owned()
        });

    let store = req.state.store.clone();
    let refs = resolve_references(&store, name, &doc).await?;
    let len = bytes.len() as u64;
    let write = BlobWrite {
        expected: Some(digest.clone()),
        limit: MAX_MANIFEST as u64,
        scope: None,
        size_hint: Some(len),
    };
    let subject = doc.subject.as_ref().map(|s| s.digest.clone());
    let meta = ManifestMeta {
        media_type,
        len,
        subject: subject.clone(),
        artifact_type: doc
            .artifact_type
            .clone()
            .or_else(|| doc.config.as_ref().and_then(|c| c.media_type.clone())),
        annotations: doc.annotations.clone(),
    };
    let digest_text = digest.to_string();
    let key = entry_key(name, &digest_text);
    let tag_scope = scope(name);
    let tag = tagged.then_some((tag_scope.as_str(), reference));
    let entry = move |blob: &BlobInfo| {
        let mut pins = refs.pins;
        pins.insert(blob.id);
        NewEntry {
            key: key.clone(),
            content: blob.id,
            size: refs.size + len,
            pins: pins.into_iter().collect(),
            meta: serde_json::to_vec(&meta).unwrap_or_default(),
            children: refs.children,
        }
    };
    store
        .put_entry_with_content(bytes, write, entry, tag)
        .await?;

    let mut res = StatusCode::CREATED.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/{name}/manifests/{digest_text}")) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&digest_text) {
        h.insert("Docker-Content-Digest", v);
    }
    if let Some(subject) = subject {
        if let Ok(v) = HeaderValue::from_str(&subject) {
            h.insert("OCI-Subject", v);
        }
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    Ok(res)
}

/// Checks that everything the manifest references is readable in the
/// repository and returns what to pin (with the bytes it accounts for).
/// Children of an index may be manifests or, in BuildKit's cache index,
/// plain blobs. `subject` may be unknown (the referrers API allows pushing
/// a referrer before its subject); descriptors with `urls` are foreign
/// layers that live elsewhere.
async fn resolve_references(
    store: &Backend,
    name: &str,
    doc: &ManifestDoc,
) -> Result<References, OciError> {
    let mut pins = BTreeSet::new();
    let mut children = Vec::new();
    let mut size = 0u64;
    let mut missing = Vec::new();
    let blob_refs = doc.config.iter().chain(&doc.layers).chain(&doc.blobs);
    for desc in blob_refs
        .map(|d| (d, false))
        .chain(doc.manifests.iter().map(|d| (d, true)))
    {
        let (desc, may_be_manifest) = desc;
        let digest = desc
            .digest
            .parse::<Digest>()
            .map_err(|e| OciError::manifest_invalid(format!("bad descriptor digest: {e}")))?;
        if !desc.urls.is_empty() {
            continue;
        }
        if may_be_manifest {
            let key = entry_key(name, &digest.to_string());
            if let Some(child) = store.entry(&key).await? {
                if let Some(blob) = store.blob(&Digest::Blake3(child.content.0)).await? {
                    check_size(desc, &digest, blob.size)?;
                }
                pins.insert(child.content);
                children.push(key);
                continue;
            }
        }
        match store.blob_in(&scope(name), &digest).await? {
            Some(blob) => {
                check_size(desc, &digest, blob.size)?;
                if pins.insert(blob.id) {
                    size += blob.size;
                }
            }
            None => missing.push(digest.to_string()),
        }
    }
    if let Some(subject) = &doc.subject {
        subject
            .digest
            .parse::<Digest>()
            .map_err(|e| OciError::manifest_invalid(format!("bad subject digest: {e}")))?;
    }
    if let Some(first) = missing.first() {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            format!("manifest references {} unknown blob(s)", missing.len()),
        )
        .detail(json!({ "digest": first, "missing": missing })));
    }
    Ok(References {
        pins,
        children,
        size,
    })
}

fn check_size(desc: &Descriptor, digest: &Digest, stored: u64) -> Result<(), OciError> {
    match desc.size {
        Some(size) if size != stored => Err(OciError::manifest_invalid(format!(
            "the descriptor of {digest} says {size} bytes; the stored content has {stored}"
        ))
        .detail(json!({ "digest": digest.to_string(), "size": size, "stored": stored }))),
        _ => Ok(()),
    }
}

/// What a manifest needs: blobs to pin, child manifests, and their bytes.
struct References {
    pins: BTreeSet<ContentId>,
    children: Vec<EntryKey>,
    size: u64,
}

pub async fn delete(req: Req, name: &str, reference: &str) -> Result<Response, OciError> {
    let store = &req.state.store;
    if !reference.contains(':') {
        if !path::valid_tag(reference) {
            return Err(OciError::manifest_invalid(format!(
                "invalid tag {reference:?}"
            )));
        }
        return if store.remove_name(&scope(name), reference).await? {
            Ok(StatusCode::ACCEPTED.into_response())
        } else {
            Err(OciError::manifest_unknown(reference))
        };
    }
    let (_, entry) = resolve(store, name, reference)
        .await?
        .ok_or_else(|| OciError::manifest_unknown(reference))?;
    // Indexes listing this manifest would be broken without it: they go too,
    // and so do the tags of everything removed.
    store.remove_entry(entry.id).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
