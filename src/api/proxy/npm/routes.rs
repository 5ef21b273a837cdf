//! The routes: `/npm/<ns>/<name>` (packument) and
//! `/npm/<ns>/<name>/-/<bare>-<version>.tgz` (tarball), GET and HEAD.
//! Everything else a registry offers (publish, search, audit, login) is not
//! a proxy's: 405 or 404, which npm reports and, for audit, shrugs off.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::{Form, NpmPath, PackageName, Packument};
use crate::api::conditional;
use crate::api::httpcache::value;
use crate::api::proxy::cached::{self, Artifact, Check, Document};
use crate::api::proxy::{enter, Ecosystem, Kind, ProxyError, Result};
use crate::api::{external_base, AppState};
use crate::cache::{EntryKey, Protocol};

/// What Larder asks the upstream for when a client wants the abbreviated
/// packument: the same negotiation npm makes, so a registry without the
/// abbreviated form answers with the full one (which reads the same way).
const ASK_ABBREVIATED: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8";
const TARBALL_TYPE: &str = "application/octet-stream";

pub fn routes() -> Router<AppState> {
    Router::new().route("/npm/{*rest}", any(dispatch))
}

async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    const TEMPLATE: &str = "/npm/{namespace}/{package}";
    let mut res = match route(&state, &method, &uri, &headers).await {
        Ok(res) => res,
        Err(e) => render(e),
    };
    res.extensions_mut()
        .insert(crate::api::observe::RouteTemplate(TEMPLATE));
    res
}

/// npm shows a registry error's `error` field next to the status.
fn render(e: ProxyError) -> Response {
    let body = serde_json::json!({ "error": e.message });
    let mut res = (e.status, axum::Json(body)).into_response();
    for (name, value) in e.headers {
        res.headers_mut().insert(name, value);
    }
    res
}

async fn route(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response> {
    // `%2f` and `%2e` in the raw path are decoded by the npm parser, which
    // validates what they decode to.
    let (namespace, rest, eco) = enter(state, method, uri.path(), headers, Kind::Npm)?;
    let registry = format!("{}/npm/{namespace}", external_base(headers, &state.config));
    match super::path::parse(rest).map_err(ProxyError::bad_name)? {
        NpmPath::Unsupported => Err(ProxyError::not_found()),
        NpmPath::Packument(name) => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let form = Form::from_accept(accept);
            let doc = packument_doc(state, &eco, namespace, &name, form).await?;
            packument_response(state, &doc, &name, form, &registry, headers).await
        }
        NpmPath::Tarball { name, version } => {
            tarball(state, &eco, namespace, &name, &version, method, headers).await
        }
    }
}

/// An upstream packument and the entry that holds it.
struct Fetched {
    doc: Document,
    key: EntryKey,
}

/// The upstream packument, from the cache while it is fresh. Each form is
/// an entry of its own: `<name>/-/install-v1.json` (what installs ask for)
/// and `<name>/-/packument.json`.
async fn packument_doc(
    state: &AppState,
    eco: &std::sync::Arc<Ecosystem>,
    namespace: &str,
    name: &PackageName,
    form: Form,
) -> Result<Fetched> {
    let (entry, accept) = match form {
        Form::Abbreviated => (format!("{name}/-/install-v1.json"), ASK_ABBREVIATED),
        Form::Full => (format!("{name}/-/packument.json"), "application/json"),
    };
    let url = eco.upstream.url(&name.packument_path());
    let doc = cached::metadata(state, eco, namespace, &entry, url, Some(accept)).await?;
    let key = value::entry_key(Protocol::Npm, namespace, &entry);
    Ok(Fetched { doc, key })
}

/// Parses a packument. One that does not parse is dropped from the cache,
/// so that the next request asks the upstream again instead of getting the
/// same bad copy for a whole `metadata_ttl`.
async fn parse(state: &AppState, fetched: &Fetched) -> Result<Packument> {
    let limit = usize::try_from(state.config.proxy.max_metadata_size.bytes()).unwrap_or(usize::MAX);
    match Packument::parse(&fetched.doc.body, limit) {
        Ok(p) => Ok(p),
        Err(e) => {
            if let Ok(Some(bad)) = state.store.entry(&fetched.key).await {
                // Best effort: the TTL ends the bad copy anyway.
                let _ = state.store.remove_entry(bad.id).await;
            }
            Err(ProxyError::new(StatusCode::BAD_GATEWAY, e.to_string()))
        }
    }
}

/// The packument rewritten for this client, or 304 when its
/// `If-None-Match` names what it would get. The tag covers the upstream
/// document, the registry URL the tarballs point at, and the form.
async fn packument_response(
    state: &AppState,
    fetched: &Fetched,
    name: &PackageName,
    form: Form,
    registry: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let doc = &fetched.doc;
    let etag = conditional::etag(&[
        &doc.body,
        registry.as_bytes(),
        form.content_type().as_bytes(),
    ]);
    let mut res = if conditional::not_modified(headers, &etag) {
        let mut res = doc.response(axum::body::Body::empty(), form.content_type());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res.headers_mut().remove(header::CONTENT_TYPE);
        res
    } else {
        let body = parse(state, fetched).await?.render(name, form, registry);
        doc.response(body, form.content_type())
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(res)
}

/// A tarball: from the cache, else fetched from where the packument says,
/// verified against the packument's hash on its way into the store.
async fn tarball(
    state: &AppState,
    eco: &std::sync::Arc<Ecosystem>,
    namespace: &str,
    name: &PackageName,
    version: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response> {
    let entry = format!("{name}/-/{}-{version}.tgz", name.bare());
    let key = value::entry_key(Protocol::Npm, namespace, &entry);
    let cached = state
        .store
        .entry(&key)
        .await
        .map_err(crate::api::proxy::error::store_err)?
        .is_some();
    // A hit is served without reading the packument; `artifact` finds the
    // entry before it would use the URL. (Evicted in between, the fetch of
    // no URL fails with a 502, and npm's retry takes the miss path.)
    let (url, expected, check) = if cached {
        (String::new(), None, None)
    } else {
        let fetched = packument_doc(state, eco, namespace, name, Form::Abbreviated).await?;
        let tarball = parse(state, &fetched)
            .await?
            .tarball(version)
            .ok_or_else(|| {
                ProxyError::new(
                    StatusCode::NOT_FOUND,
                    format!("{name}@{version} is not in the upstream's packument"),
                )
            })?;
        let Some(want) = tarball.expected else {
            return Err(ProxyError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the upstream's packument gives no integrity or shasum for {name}@{version}; \
                     an unverifiable tarball is not stored"
                ),
            ));
        };
        // The CAS checks sha512/sha256 itself; SHA-1 (or a choice of
        // digests) is checked as the body streams past.
        match want.cas_digest() {
            Some(digest) => (tarball.upstream_url, Some(digest), None),
            None => {
                let check: Check = Box::new(move |body| Box::pin(want.verify_stream(body)));
                (tarball.upstream_url, None, Some(check))
            }
        }
    };
    let a = Artifact {
        name: &entry,
        url,
        expected,
        content_type: TARBALL_TYPE,
    };
    cached::artifact_checked(state, eco, namespace, a, check, method, headers).await
}
