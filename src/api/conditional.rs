//! `ETag` / `If-None-Match` for documents Larder renders (packuments, index
//! pages): a client that already holds the version it would get is answered
//! 304 with no body, the revalidation npm and pip make on every install.

use axum::http::{header, HeaderMap};

/// A strong entity tag over everything the rendered body depends on.
pub fn etag(parts: &[&[u8]]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("\"{}\"", &h.finalize().to_hex()[..32])
}

/// True when the request's `If-None-Match` names `etag` (or `*`): RFC 9110's
/// weak comparison, the one `If-None-Match` uses.
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(inm: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in inm {
            h.append(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tags_depend_on_every_part_and_its_boundaries() {
        let t = etag(&[b"ab", b"c"]);
        assert_eq!(t, etag(&[b"ab", b"c"]));
        assert_ne!(t, etag(&[b"a", b"bc"]));
        assert!(t.starts_with('"') && t.ends_with('"') && t.len() == 34);
    }

    #[test]
    fn if_none_match_lists_weak_tags_and_star() {
        let t = etag(&[b"doc"]);
        assert!(not_modified(&with(&[&t]), &t));
        assert!(not_modified(&with(&[&format!("\"x\", W/{t}")]), &t));
        assert!(not_modified(&with(&["\"x\"", &t]), &t));
        assert!(not_modified(&with(&["*"]), &t));
        assert!(!not_modified(&with(&["\"x\""]), &t));
        assert!(!not_modified(&HeaderMap::new(), &t));
    }
}
