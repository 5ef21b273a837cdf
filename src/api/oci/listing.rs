//! Listings: `/v2/_catalog`, `/v2/<name>/tags/list` and
//! `/v2/<name>/referrers/<digest>`.

use std::collections::BTreeSet;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::manifests::ManifestMeta;
use super::{parse_digest, path, scope, OciError, Req};
use crate::auth::READ;
use crate::cache::Protocol;

/// Page size when the client gives no `n`.
const DEFAULT_PAGE: usize = 1000;

/// `n` and `last` from the query; `n=0` is a valid, empty page.
fn page(req: &Req) -> Result<(usize, Option<String>), OciError> {
    let n = match req.param("n") {
        Some(n) => n.parse::<usize>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                "n must be a non-negative integer",
            )
        })?,
        None => DEFAULT_PAGE,
    };
    Ok((n, req.param("last").map(str::to_owned)))
}

/// Adds `Link: <…?n=&last=>; rel="next"` when the page was full.
fn paged(body: serde_json::Value, items: &[String], n: usize, base: &str) -> Response {
    let mut res = Json(body).into_response();
    if n > 0 && items.len() == n {
        if let Some(last) = items.last() {
            let link = format!("<{base}?n={n}&last={last}>; rel=\"next\"");
            if let Ok(v) = HeaderValue::from_str(&link) {
                res.headers_mut().insert(header::LINK, v);
            }
        }
    }
    res
}

pub async fn catalog(req: Req) -> Result<Response, OciError> {
    let (n, last) = page(&req)?;
    let repos: BTreeSet<String> = req
        .state
        .store
        .entry_names(Protocol::Oci)
        .await?
        .into_iter()
        .filter(|(ns, _)| req.state.auth.permission(&req.caller, ns) & READ != 0)
        .filter_map(|(_, name)| name.split_once('@').map(|(repo, _)| repo.to_owned()))
        .collect();
    let items: Vec<String> = repos
        .into_iter()
        .filter(|r| last.as_ref().is_none_or(|l| r > l))
        .take(n)
        .collect();
    Ok(paged(
        json!({ "repositories": items }),
        &items,
        n,
        "/v2/_catalog",
    ))
}

pub async fn tags(req: Req, name: &str) -> Result<Response, OciError> {
    let (n, last) = page(&req)?;
    let store = &req.state.store;
    let items = store.names(&scope(name), last.as_deref(), n).await?;
    if items.is_empty()
        && last.is_none()
        && store
            .entries_with_prefix(Protocol::Oci, path::namespace(name), &format!("{name}@"))
            .await?
            .is_empty()
    {
        return Err(OciError::name_unknown(name));
    }
    let base = format!("/v2/{name}/tags/list");
    Ok(paged(
        json!({ "name": name, "tags": items }),
        &items,
        n,
        &base,
    ))
}

pub async fn referrers(req: Req, name: &str, digest: &str) -> Result<Response, OciError> {
    let subject = parse_digest(digest)?.to_string();
    let filter = req.param("artifactType").map(str::to_owned);
    let entries = req
        .state
        .store
        .entries_with_prefix(Protocol::Oci, path::namespace(name), &format!("{name}@"))
        .await?;
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .filter_map(|e| {
            let meta = ManifestMeta::decode(e)?;
            if meta.subject.as_deref() != Some(subject.as_str()) {
                return None;
            }
            if filter.is_some() && meta.artifact_type != filter {
                return None;
            }
            let (_, digest) = e.key.name.split_once('@')?;
            let mut d = json!({ "mediaType": meta.media_type, "digest": digest, "size": meta.len });
            if let Some(t) = &meta.artifact_type {
                d["artifactType"] = json!(t);
            }
            if let Some(a) = &meta.annotations {
                d["annotations"] = a.clone();
            }
            Some(d)
        })
        .collect();
    let body = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut res = Json(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
    );
    if filter.is_some() {
        h.insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(res)
}
