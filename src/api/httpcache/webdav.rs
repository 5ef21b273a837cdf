//! The WebDAV subset sccache (through OpenDAL) needs: `PROPFIND` with
//! `Depth: 0|1` answered with a minimal multistatus, and `MKCOL`.
//!
//! Collections are virtual: a collection exists while some key lies under
//! it (the namespace root always exists). `MKCOL` therefore stores nothing;
//! it answers 201 for a collection that does not exist yet and 405 for one
//! that does, both of which OpenDAL accepts before it PUTs the file.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{store_err, Dialect, HttpCacheError, Result};
use super::keys::CachePath;
use super::value;
use crate::api::AppState;
use crate::cache::{now_ms, EntryRecord, Protocol};

const D: Dialect = Dialect::Plain;
/// Most entries one `Depth: 1` listing scans; beyond it the listing is
/// truncated (sccache never lists; this only bounds a browsing client).
const MAX_LISTED: usize = 10_000;

pub async fn propfind(
    state: &AppState,
    path: &CachePath<'_>,
    headers: &HeaderMap,
) -> Result<Response> {
    // RFC 4918: no Depth header means infinity; a full recursive listing is
    // never needed here, so infinity is answered like 1.
    let depth = match headers.get("depth").map(|v| v.to_str().map(str::trim)) {
        Some(Ok("0")) => 0,
        Some(Ok("1")) | Some(Ok("infinity")) | None => 1,
        _ => {
            return Err(HttpCacheError::bad_request(
                D,
                "Depth must be 0, 1 or infinity",
            ))
        }
    };
    let base = format!("/cache/{}/", path.namespace);
    if !path.collection {
        let key = value::entry_key(Protocol::Http, path.namespace, path.key);
        if let Some(entry) = value::find(state, &key, D).await? {
            return Ok(multistatus(&[file(&base, &entry)]));
        }
    }
    let prefix = path.prefix();
    let limit = if depth == 0 { 1 } else { MAX_LISTED };
    let members = state
        .store
        .entries_with_prefix_limit(Protocol::Http, path.namespace, &prefix, limit)
        .await
        .map_err(store_err(D))?;
    if members.is_empty() && !path.key.is_empty() {
        return Err(HttpCacheError::not_found(D));
    }
    let newest = members
        .iter()
        .map(|e| e.created)
        .max()
        .unwrap_or_else(now_ms);
    let mut responses = vec![collection(&format!("{base}{prefix}"), newest)];
    if depth == 1 {
        // Immediate children only: files directly here, and one collection
        // per distinct next segment (with its newest member's time).
        let mut dirs: BTreeMap<&str, u64> = BTreeMap::new();
        let mut files = Vec::new();
        for e in &members {
            let rest = e.key.name.get(prefix.len()..).unwrap_or_default();
            match rest.split_once('/') {
                Some((dir, _)) => {
                    let t = dirs.entry(dir).or_default();
                    *t = (*t).max(e.created);
                }
                None => files.push(file(&base, e)),
            }
        }
        for (dir, created) in dirs {
            responses.push(collection(&format!("{base}{prefix}{dir}/"), created));
        }
        responses.extend(files);
    }
    Ok(multistatus(&responses))
}

pub async fn mkcol(state: &AppState, path: &CachePath<'_>) -> Result<Response> {
    let exists = path.key.is_empty() || {
        let key = value::entry_key(Protocol::Http, path.namespace, path.key);
        value::find(state, &key, D).await?.is_some()
            || !state
                .store
                .entries_with_prefix_limit(Protocol::Http, path.namespace, &path.prefix(), 1)
                .await
                .map_err(store_err(D))?
                .is_empty()
    };
    if exists {
        return Err(HttpCacheError::new(
            D,
            StatusCode::METHOD_NOT_ALLOWED,
            "exists",
            "a collection or key of that name exists",
        )
        .header(header::ALLOW, "GET, HEAD, PUT, DELETE, OPTIONS, PROPFIND"));
    }
    Ok(StatusCode::CREATED.into_response())
}

fn multistatus(responses: &[String]) -> Response {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n",
    );
    for r in responses {
        xml.push_str(r);
    }
    xml.push_str("</D:multistatus>\n");
    let mut res = (StatusCode::MULTI_STATUS, xml).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    res
}

fn collection(href: &str, modified_ms: u64) -> String {
    response(
        href,
        &format!(
            "<D:resourcetype><D:collection/></D:resourcetype>\
             <D:getlastmodified>{}</D:getlastmodified>",
            http_date(modified_ms)
        ),
    )
}

fn file(base: &str, e: &EntryRecord) -> String {
    response(
        &format!("{base}{}", e.key.name),
        &format!(
            "<D:resourcetype/><D:getcontentlength>{}</D:getcontentlength>\
             <D:getcontenttype>application/octet-stream</D:getcontenttype>\
             <D:getetag>\"{}\"</D:getetag>\
             <D:getlastmodified>{}</D:getlastmodified>",
            e.size,
            e.content.to_hex(),
            http_date(e.created)
        ),
    )
}

fn response(href: &str, props: &str) -> String {
    format!(
        "<D:response><D:href>{}</D:href><D:propstat><D:prop>{props}</D:prop>\
         <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\n",
        escape(href)
    )
}

/// Keys are validated to `[A-Za-z0-9._/-]`, so nothing needs escaping today;
/// this keeps the XML well-formed should that set ever grow.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of Unix milliseconds.
pub fn http_date(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn dates_render_as_imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
