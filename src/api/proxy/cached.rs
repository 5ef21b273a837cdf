//! The ecosystem-neutral core of every proxy: find the entry, or fetch it
//! from the upstream once however many clients ask (coalesced), verify it
//! against the hash the upstream published, store it as an entry of the
//! caller's namespace, and serve it — to the client whose GET started the
//! fetch, as it arrives (`tee`). Artifacts never change once stored;
//! metadata is refetched after the ecosystem's `metadata_ttl`, and the old
//! copy is served, marked stale, while the upstream fails.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use super::error::{store_err, ProxyError, Result};
use super::{tee, Ecosystem};
use crate::api::httpcache::{value, Dialect};
use crate::api::observe::Lookup;
use crate::api::AppState;
use crate::cache::{now_ms, BlobWrite, EntryKey, EntryRecord};
use crate::cas::Digest;
use crate::metrics::proxy::Event;
use crate::upstream::{Joined, UpstreamError};

/// An immutable file a client asked for (a tarball, a wheel, a module zip).
pub struct Artifact<'a> {
    /// The entry's name in the namespace: the client's path, validated by
    /// the ecosystem.
    pub name: &'a str,
    /// Where the upstream serves it.
    pub url: String,
    /// The hash the upstream published for it: content that does not match
    /// is refused (502) and nothing is stored.
    pub expected: Option<Digest>,
    pub content_type: &'static str,
}

/// What is kept with a proxied entry (its `meta`).
#[derive(Default, Serialize, Deserialize)]
struct Meta {
    /// When the upstream last answered with this content (ms since the epoch).
    fetched: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(default)]
    upstream: String,
    /// The upstream's validator, sent as `If-None-Match` when revalidating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
}

impl Meta {
    fn of(entry: &EntryRecord) -> Meta {
        serde_json::from_slice(&entry.meta).unwrap_or_default()
    }
}

fn entry_key(eco: &Ecosystem, namespace: &str, name: &str) -> EntryKey {
    value::entry_key(eco.kind.protocol(), namespace, name)
}

async fn find(state: &AppState, key: &EntryKey) -> Result<Option<EntryRecord>> {
    state.store.entry(key).await.map_err(store_err)
}

/// Serves an artifact from the cache, fetching and storing it first if it
/// is not there. GET and HEAD, with ranges.
pub async fn artifact(
    state: &AppState,
    eco: &Arc<Ecosystem>,
    namespace: &str,
    a: Artifact<'_>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response> {
    artifact_checked(state, eco, namespace, a, None, method, headers).await
}

/// Checks an upstream body on its way into the CAS, for a hash the CAS does
/// not know (npm's SHA-1 `shasum`): the returned stream ends in an error
/// instead of its end when the body does not match, and nothing is stored.
pub type Check = Box<dyn FnOnce(BodyStream) -> BodyStream + Send>;
/// An upstream body as it streams in.
pub type BodyStream = BoxStream<'static, std::result::Result<Bytes, String>>;

/// `artifact`, with the body of a fetch also passed through `check`.
pub async fn artifact_checked(
    state: &AppState,
    eco: &Arc<Ecosystem>,
    namespace: &str,
    a: Artifact<'_>,
    check: Option<Check>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response> {
    let key = entry_key(eco, namespace, a.name);
    let (entry, hit) = match find(state, &key).await? {
        Some(e) => (e, true),
        None => {
            // A plain GET is streamed as the fetch arrives (tee.rs); a HEAD,
            // a range or a conditional request is answered from the stored
            // entry, which alone has every validator.
            let (feed, follow) = match streamable(method, headers) {
                true => {
                    let (feed, follow) = tee::channel(state.config.proxy.read_timeout.0);
                    (Some(feed), Some(follow))
                }
                false => (None, None),
            };
            let fetch = fetch_artifact(state, eco, key, a.url, a.expected, check, feed);
            if let Some(follow) = follow {
                if let Some(res) = follow.respond(fetch.clone(), a.content_type).await {
                    eco.note(state, Event::Miss);
                    return Ok(res);
                }
            }
            (fetch.await?, false)
        }
    };
    eco.note(state, if hit { Event::Hit } else { Event::Miss });
    let mut res = value::serve(state, &entry, method, headers, Dialect::Plain).await?;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    res.extensions_mut().insert(Lookup(hit));
    Ok(res)
}

fn streamable(method: &Method, headers: &HeaderMap) -> bool {
    let conditional = [
        header::RANGE,
        header::IF_NONE_MATCH,
        header::IF_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ];
    method == Method::GET && !conditional.iter().any(|h| headers.contains_key(h))
}

/// One coalesced fetch-and-store of an artifact, started or joined; `feed`
/// copies it to the client when this call starts it.
fn fetch_artifact(
    state: &AppState,
    eco: &Arc<Ecosystem>,
    key: EntryKey,
    url: String,
    expected: Option<Digest>,
    check: Option<Check>,
    feed: Option<tee::Feed>,
) -> Joined<Result<EntryRecord>> {
    let run_key = format!("a\0{}\0{}", key.namespace, key.name);
    let (state, eco2) = (state.clone(), eco.clone());
    let work = move || async move {
        // A run that finished just before this one began stored it already.
        if let Some(e) = find(&state, &key).await? {
            return Ok(e);
        }
        eco2.note(&state, Event::Fetch);
        let (body, len) = match eco2.upstream.artifact(&url).await {
            Ok(fetched) => fetched,
            Err(e) => return Err(upstream_failed(&state, &eco2, &url, &e)),
        };
        let body: BodyStream = match check {
            Some(check) => check(body.boxed()),
            None => body.boxed(),
        };
        let body = match feed {
            Some(feed) => feed.tee(len, body),
            None => body,
        };
        let write = BlobWrite {
            expected,
            limit: state.blob_limit(),
            scope: None,
            size_hint: len,
        };
        let meta = serde_json::to_vec(&Meta {
            fetched: now_ms(),
            content_type: None,
            upstream: url.clone(),
            etag: None,
        })
        .unwrap_or_default();
        let stored = state
            .store
            .put_entry_with_streamed_content(body, write, move |blob| {
                value::value_entry(key, blob, meta)
            })
            .await;
        match stored {
            Ok((_, rec)) => Ok(rec),
            Err(e) => {
                let e = ProxyError::store(e);
                if e.status == axum::http::StatusCode::BAD_GATEWAY {
                    eco2.note(&state, Event::Error);
                    tracing::warn!(%url, error = %e.message, "refused an upstream artifact");
                }
                Err(e)
            }
        }
    };
    eco.fetches.join(&run_key, work, panicked)
}

fn panicked() -> Result<EntryRecord> {
    Err(ProxyError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "the upstream fetch failed unexpectedly",
    ))
}

/// Counts and logs an upstream failure (not a plain "not there").
fn upstream_failed(state: &AppState, eco: &Ecosystem, url: &str, e: &UpstreamError) -> ProxyError {
    if !matches!(e, UpstreamError::Missing(_)) {
        eco.note(state, Event::Error);
        tracing::warn!(%url, error = %e, ecosystem = eco.kind.name(), "upstream fetch failed");
    }
    ProxyError::upstream(e)
}

/// A metadata document as a proxy serves it (before any rewriting).
pub struct Document {
    pub body: Bytes,
    /// The upstream's `Content-Type`, when it sent one.
    pub content_type: Option<String>,
    /// Answered from the cache without asking the upstream.
    pub hit: bool,
    /// Past its TTL, served because the upstream failed.
    pub stale: bool,
}

impl Document {
    /// 200 with `body` (the document or its rewritten form), `content_type`,
    /// a `Warning` when stale, and the lookup's outcome for the metrics.
    pub fn response(&self, body: impl Into<axum::body::Body>, content_type: &str) -> Response {
        let mut res = body.into().into_response();
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        if self.stale {
            h.insert(
                header::WARNING,
                HeaderValue::from_static("110 larder \"Response is Stale\""),
            );
        }
        res.extensions_mut().insert(Lookup(self.hit));
        res
    }
}

/// A metadata document: the cached copy while it is younger than the
/// ecosystem's `metadata_ttl`, else the upstream's current one (stored);
/// the old copy, `stale`, when the upstream fails. A 404/410 from the
/// upstream is passed on. `name` is the entry's name: a different one per
/// representation when the client's `Accept` chooses between several.
pub async fn metadata(
    state: &AppState,
    eco: &Arc<Ecosystem>,
    namespace: &str,
    name: &str,
    url: String,
    accept: Option<&'static str>,
) -> Result<Document> {
    let key = entry_key(eco, namespace, name);
    let cached = find(state, &key).await?;
    let fresh = |e: &EntryRecord| {
        now_ms().saturating_sub(Meta::of(e).fetched) < eco.metadata_ttl.as_millis() as u64
    };
    let (entry, hit) = match cached {
        Some(e) if fresh(&e) => (e, true),
        _ => (fetch_metadata(state, eco, key, url, accept).await?, false),
    };
    let stale = !fresh(&entry);
    eco.note(state, if hit { Event::Hit } else { Event::Miss });
    if stale {
        eco.note(state, Event::Stale);
    }
    state.store.touch_entry(&entry);
    let body = state
        .store
        .read_content(&entry.content, entry.size)
        .await
        .map_err(store_err)?;
    Ok(Document {
        body,
        content_type: Meta::of(&entry).content_type,
        hit,
        stale,
    })
}

/// One coalesced refetch of a metadata document; the stale entry when the
/// upstream fails (the caller tells by its age).
async fn fetch_metadata(
    state: &AppState,
    eco: &Arc<Ecosystem>,
    key: EntryKey,
    url: String,
    accept: Option<&'static str>,
) -> Result<EntryRecord> {
    let run_key = format!("m\0{}\0{}", key.namespace, key.name);
    let (state, eco2) = (state.clone(), eco.clone());
    let work = move || async move {
        let cached = find(&state, &key).await?;
        let ttl = eco2.metadata_ttl.as_millis() as u64;
        if let Some(e) = cached.as_ref() {
            if now_ms().saturating_sub(Meta::of(e).fetched) < ttl {
                return Ok(e.clone());
            }
        }
        eco2.note(&state, Event::Fetch);
        let old = cached.as_ref().map(Meta::of);
        let etag = old.as_ref().and_then(|m| m.etag.as_deref());
        let doc = match eco2.upstream.metadata_if_changed(&url, accept, etag).await {
            Ok(Some(doc)) => doc,
            Ok(None) => {
                // 304: the copy we have is current again; only its age changes.
                let (Some(entry), Some(mut meta)) = (cached, old) else {
                    return Err(ProxyError::upstream(&UpstreamError::Status {
                        status: 304,
                        url,
                    }));
                };
                meta.fetched = now_ms();
                let blob = value::content(&state, &entry, Dialect::Plain).await?;
                let meta = serde_json::to_vec(&meta).unwrap_or_default();
                return Ok(value::put_entry(&state, key, &blob, meta, Dialect::Plain).await?);
            }
            Err(e) => {
                let err = upstream_failed(&state, &eco2, &url, &e);
                return match cached {
                    Some(stale) if !matches!(e, UpstreamError::Missing(_)) => Ok(stale),
                    _ => Err(err),
                };
            }
        };
        let meta = serde_json::to_vec(&Meta {
            fetched: now_ms(),
            content_type: doc.content_type,
            upstream: url,
            etag: doc.etag,
        })
        .unwrap_or_default();
        let write = BlobWrite {
            expected: None,
            limit: state.blob_limit(),
            scope: None,
            size_hint: Some(doc.body.len() as u64),
        };
        let entry = move |blob: &_| value::value_entry(key, blob, meta);
        let (_, rec) = state
            .store
            .put_entry_with_content(doc.body, write, entry, None)
            .await
            .map_err(store_err)?;
        Ok(rec)
    };
    eco.fetches.run(&run_key, work, panicked).await
}
