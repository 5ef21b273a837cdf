//! The routes under `/pypi/<ns>/`: `simple/` (the project list),
//! `simple/<project>/` (a project's files) and `files/<project>/<file>`
//! (a wheel or sdist, or its `.metadata`), parsed from the raw path so an
//! escaped `/` never passes validation as something else.

use std::str::FromStr;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use reqwest::Url;

use super::index::{self, File};
use super::name::{normalize, valid_filename};
use super::render::{self, Form};
use crate::api::httpcache::value;
use crate::api::proxy::cached::{self, Artifact, Document};
use crate::api::proxy::error::{store_err, ProxyError, Result};
use crate::api::proxy::{enter, Ecosystem, Kind};
use crate::api::AppState;
use crate::cas::Digest;

/// What Larder asks the upstream for: JSON when it has it (no HTML to
/// parse), else either HTML form.
const UPSTREAM_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
     application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

pub fn routes() -> Router<AppState> {
    Router::new().route("/pypi/{*rest}", any(dispatch))
}

async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (res, template) = route(&state, &method, &uri, &headers).await;
    let mut res = res.unwrap_or_else(IntoResponse::into_response);
    res.extensions_mut()
        .insert(crate::api::observe::RouteTemplate(template));
    res
}

async fn route(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> (Result<Response>, &'static str) {
    const FILE: &str = "/pypi/{namespace}/files/{project}/{file}";
    const PAGE: &str = "/pypi/{namespace}/simple/{project}/";
    let (namespace, rest, eco) = match enter(state, method, uri.path(), headers, Kind::Pypi) {
        Ok(entered) => entered,
        Err(e) => return (Err(e), PAGE),
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let form = Form::negotiate(accept);
    let canonical = |project: &str| Ok(redirect(&format!("/pypi/{namespace}/simple/{project}/")));
    match segments.as_slice() {
        ["simple"] => (Ok(redirect(&format!("/pypi/{namespace}/simple/"))), PAGE),
        ["simple", ""] => (list(state, &eco, namespace, form).await, PAGE),
        ["simple", project] | ["simple", project, ""] => {
            let res = match normalize(project) {
                Err(why) => Err(ProxyError::bad_name(why)),
                Ok(n) if n != *project || segments.len() == 2 => canonical(&n),
                Ok(n) => page(state, &eco, namespace, &n, form).await,
            };
            (res, PAGE)
        }
        ["files", project, file] => (
            file_route(state, &eco, namespace, project, file, method, headers).await,
            FILE,
        ),
        _ => (Err(ProxyError::not_found()), PAGE),
    }
}

/// 301 to the canonical spelling: clients cache it and ask there next time.
fn redirect(location: &str) -> Response {
    let mut res = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The document in the client's form, varying by `Accept`.
fn respond(doc: &Document, form: Form, body: Vec<u8>) -> Response {
    let mut res = doc.response(body, form.content_type());
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    res
}

async fn list(
    state: &AppState,
    eco: &std::sync::Arc<Ecosystem>,
    ns: &str,
    form: Form,
) -> Result<Response> {
    let url = eco.upstream.url("");
    let doc = cached::metadata(state, eco, ns, "simple", url, Some(UPSTREAM_ACCEPT)).await?;
    let json = index::is_json(doc.content_type.as_deref(), &doc.body);
    let projects = index::projects(json, &doc.body);
    Ok(respond(&doc, form, render::project_list(form, &projects)))
}

/// A project's files as the upstream lists them now (or lately, when it
/// is down): the page, cached as the upstream sent it, then parsed.
async fn files(
    state: &AppState,
    eco: &std::sync::Arc<Ecosystem>,
    ns: &str,
    project: &str,
) -> Result<(Document, Vec<File>)> {
    let url = eco.upstream.url(&format!("{project}/"));
    let page = Url::parse(&url).map_err(|e| {
        ProxyError::new(
            StatusCode::BAD_GATEWAY,
            format!("proxy.pypi.upstream is not a URL: {e}"),
        )
    })?;
    let name = format!("simple/{project}");
    let doc = cached::metadata(state, eco, ns, &name, url, Some(UPSTREAM_ACCEPT)).await?;
    let json = index::is_json(doc.content_type.as_deref(), &doc.body);
    let files = index::files(&page, json, &doc.body);
    Ok((doc, files))
}

async fn page(
    state: &AppState,
    eco: &std::sync::Arc<Ecosystem>,
    ns: &str,
    project: &str,
    form: Form,
) -> Result<Response> {
    let (doc, files) = files(state, eco, ns, project).await?;
    Ok(respond(
        &doc,
        form,
        render::project_page(form, project, &files),
    ))
}

/// A distribution file, or its PEP 658 metadata: from the cache, else from
/// the URL its project's page gives, verified against the page's sha256.
async fn file_route(
    state: &AppState,
    eco: &std::sync::Arc<Ecosystem>,
    ns: &str,
    project: &str,
    file: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response> {
    let project = normalize(project).map_err(ProxyError::bad_name)?;
    if !valid_filename(file) {
        return Err(ProxyError::bad_name("not a distribution file name"));
    }
    let name = format!("files/{project}/{file}");
    let content_type = match file.ends_with(".metadata") {
        true => "text/plain; charset=utf-8",
        false => "application/octet-stream",
    };
    // A stored file is served without asking for its page: it never
    // changes, and the upstream may be down. (Were it evicted in between,
    // the fetch from the empty URL fails with a 502, which pip and uv
    // retry; the retry finds it gone and takes the path below.)
    let key = value::entry_key(Kind::Pypi.protocol(), ns, &name);
    if state.store.entry(&key).await.map_err(store_err)?.is_some() {
        let a = Artifact {
            name: &name,
            url: String::new(),
            expected: None,
            content_type,
        };
        return cached::artifact(state, eco, ns, a, method, headers).await;
    }
    let (_, files) = files(state, eco, ns, &project).await?;
    let (url, hex) = if let Some(f) = files.iter().find(|f| f.filename == file) {
        (f.url.to_string(), Some(f.sha256().to_owned()))
    } else {
        let dist = file.strip_suffix(".metadata").unwrap_or("");
        let f = files
            .iter()
            .find(|f| f.filename == dist && f.core_metadata.is_some());
        let f = f.ok_or_else(ProxyError::not_found)?;
        let hex = f
            .core_metadata
            .as_ref()
            .and_then(|h| h.get("sha256"))
            .cloned();
        (format!("{}.metadata", f.url), hex)
    };
    let expected = hex.and_then(|h| Digest::from_str(&format!("sha256:{h}")).ok());
    let a = Artifact {
        name: &name,
        url,
        expected,
        content_type,
    };
    cached::artifact(state, eco, ns, a, method, headers).await
}
