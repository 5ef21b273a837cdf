//! The Go module proxy at `/go/<namespace>/` (GOPROXY protocol): `.info`,
//! `.mod` and `.zip` of release versions are immutable artifacts; `list`,
//! `@latest` and queries such as `master.info` are metadata. Errors are
//! plain text, and 404/410 tell `go` to try the next proxy in GOPROXY.
//! The checksum database is proxied too (`go_sumdb`).

use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::cached::{self, Artifact};
use super::error::{ProxyError, Result};
use super::go_path::{self, File, Request};
use super::{enter, go_sumdb, Kind};
use crate::api::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/go/{*rest}", any(dispatch))
}

async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    const TEMPLATE: &str = "/go/{namespace}/{module}";
    let mut res = match route(&state, &method, &uri, &headers).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    res.extensions_mut()
        .insert(crate::api::observe::RouteTemplate(TEMPLATE));
    res
}

async fn route(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response> {
    let (namespace, rest, eco) = enter(state, method, uri.path(), headers, Kind::Go)?;
    let rest = go_path::decode(rest).map_err(ProxyError::bad_name)?;
    let rest = rest.as_str();
    if rest.starts_with("sumdb/") {
        return go_sumdb::serve(state, &eco, namespace, rest, method, headers).await;
    }
    let (_module, request) = go_path::parse(rest).map_err(ProxyError::bad_name)?;
    let url = eco.upstream.url(rest);
    let json = "application/json";
    let text = "text/plain; charset=utf-8";
    match request {
        Request::File { version, file, .. } if go_path::is_canonical(version) => {
            let a = Artifact {
                name: rest,
                url,
                expected: None,
                content_type: file.content_type(),
            };
            cached::artifact(state, &eco, namespace, a, method, headers).await
        }
        // `.mod` and `.zip` exist only for release versions.
        Request::File {
            file: File::Mod | File::Zip,
            ..
        } => Err(ProxyError::bad_name(
            "only release versions have .mod and .zip files",
        )),
        Request::File { .. } | Request::Latest => {
            let doc = cached::metadata(state, &eco, namespace, rest, url, None).await?;
            Ok(doc.response(doc.body.clone(), json))
        }
        Request::List => {
            let doc = cached::metadata(state, &eco, namespace, rest, url, None).await?;
            Ok(doc.response(doc.body.clone(), text))
        }
    }
}
