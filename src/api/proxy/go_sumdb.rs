//! The checksum database through the Go proxy (`<GOPROXY>/sumdb/<name>/…`):
//! `go` asks `supported` first and, on 200, fetches `lookup/…` and `tile/…`
//! through the proxy instead of from `sum.golang.org`, so runners without
//! internet access keep `GOSUMDB` on. Lookups and tiles never change and are
//! cached as artifacts; `supported` and `latest` are metadata. `go` verifies
//! every answer against the database's public key itself, so nothing here
//! needs to be trusted. An upstream without the database answers 404, which
//! `go` takes as "ask the database directly".

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use axum::response::Response;

use super::cached::{self, Artifact};
use super::error::{ProxyError, Result};
use super::go_path::{module_path, version_of};
use super::Ecosystem;
use crate::api::AppState;

/// Longest tile path accepted (`tile/8/0/x001/x234/567.p/89` and the like).
const MAX_TILE_SEGMENTS: usize = 10;

#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `supported`, `latest`: they change.
    Metadata,
    /// `lookup/<module>@<version>`, `tile/…`: they do not.
    Immutable,
}

/// `sumdb` path: `sumdb/<name>/<what>`, already percent-decoded by `go_path::decode`.
fn parse(path: &str) -> std::result::Result<Request, String> {
    let rest = path.strip_prefix("sumdb/").unwrap_or("");
    let (name, what) = rest.split_once('/').unwrap_or((rest, ""));
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !name_ok {
        return Err(format!("{name:?} is not a checksum database name"));
    }
    if what == "supported" || what == "latest" {
        return Ok(Request::Metadata);
    }
    if let Some(key) = what.strip_prefix("lookup/") {
        let (module, version) = key
            .rsplit_once('@')
            .ok_or_else(|| format!("lookup {key:?} is not <module>@<version>"))?;
        module_path(module)?;
        version_of(version)?;
        return Ok(Request::Immutable);
    }
    if let Some(tile) = what.strip_prefix("tile/") {
        let segments: Vec<&str> = tile.split('/').collect();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let ok = segments.len() >= 3
            && segments.len() <= MAX_TILE_SEGMENTS
            && segments.iter().all(|s| {
                digits(s)
                    || *s == "data"
                    || s.strip_prefix('x').is_some_and(digits)
                    || s.strip_suffix(".p").is_some_and(digits)
            });
        return match ok {
            true => Ok(Request::Immutable),
            false => Err(format!("{tile:?} is not a tile path")),
        };
    }
    Err(format!(
        "{what:?} is not supported, latest, lookup/… or tile/…"
    ))
}

/// Serves `path` (`sumdb/…`, decoded) from the cache or the upstream's
/// `<upstream>/sumdb/…`.
pub async fn serve(
    state: &AppState,
    eco: &Arc<Ecosystem>,
    namespace: &str,
    path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response> {
    let request = parse(path).map_err(ProxyError::bad_name)?;
    let url = eco.upstream.url(path);
    let text = "text/plain; charset=utf-8";
    match request {
        Request::Immutable => {
            let content_type = match path.contains("/tile/") {
                true => "application/octet-stream",
                false => text,
            };
            let a = Artifact {
                name: path,
                url,
                expected: None,
                content_type,
            };
            cached::artifact(state, eco, namespace, a, method, headers).await
        }
        Request::Metadata => {
            let doc = cached::metadata(state, eco, namespace, path, url, None).await?;
            Ok(doc.response(doc.body.clone(), text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_what_changes_from_what_does_not() {
        for p in [
            "sumdb/sum.golang.org/supported",
            "sumdb/sum.golang.org/latest",
        ] {
            assert_eq!(parse(p), Ok(Request::Metadata), "{p}");
        }
        for p in [
            "sumdb/sum.golang.org/lookup/github.com/!azure/x@v1.2.3",
            "sumdb/sum.golang.org/tile/8/0/x001/234",
            "sumdb/sum.golang.org/tile/8/1/567.p/89",
            "sumdb/sum.golang.org/tile/8/data/x002/001",
        ] {
            assert_eq!(parse(p), Ok(Request::Immutable), "{p}");
        }
    }

    #[test]
    fn refuses_anything_else() {
        for p in [
            "sumdb/../x/supported",
            "sumdb/Sum.golang.org/latest",
            "sumdb//latest",
            "sumdb/sum.golang.org/lookup/../../x@v1.0.0",
            "sumdb/sum.golang.org/lookup/example.com/m",
            "sumdb/sum.golang.org/tile/8/../x",
            "sumdb/sum.golang.org/tile/8/0",
            "sumdb/sum.golang.org/other",
        ] {
            assert!(parse(p).is_err(), "{p}");
        }
    }
}
