//! Namespaces and keys as clients send them, validated before anything else
//! looks at them. A key names an entry inside its namespace and nothing
//! else: it is never joined to a file path, but it is checked as strictly as
//! if it were, so that no spelling of `..`, `/`, `\` or `%2e` can reach into
//! another namespace through any later code, log or listing.

use std::fmt;

use crate::cas::Digest;

/// Longest key accepted (bytes). Bazel, ccache, Gradle, sccache, turbo and
/// Nx keys are all far shorter; the bound keeps index keys small.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest namespace accepted (bytes).
pub const MAX_NAMESPACE_LEN: usize = 128;

/// Why a namespace or key was refused (rendered into a 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    MissingNamespace,
    MissingKey,
    TooLong { what: &'static str, max: usize },
    PercentEncoded,
    Backslash,
    BadChar { what: &'static str, c: char },
    EmptySegment,
    DotSegment,
    BadNamespaceStart,
    Collection,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::MissingNamespace => f.write_str("the path names no namespace"),
            KeyError::MissingKey => f.write_str("the path names no key"),
            KeyError::TooLong { what, max } => write!(f, "{what} is longer than {max} bytes"),
            KeyError::PercentEncoded => f.write_str("percent-encoded characters are not allowed"),
            KeyError::Backslash => f.write_str("backslashes are not allowed"),
            KeyError::BadChar { what, c } => write!(
                f,
                "{what} contains {c:?}; only A-Z a-z 0-9 . _ - are allowed (and / between key segments)"
            ),
            KeyError::EmptySegment => f.write_str("empty path segments (//) are not allowed"),
            KeyError::DotSegment => f.write_str("`.` and `..` segments are not allowed"),
            KeyError::BadNamespaceStart => {
                f.write_str("a namespace starts with a letter or a digit")
            }
            KeyError::Collection => f.write_str("a key does not end with /"),
        }
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks the raw text before it is split: no escapes, no backslashes, no
/// characters outside the allowed set, whatever position they are in.
fn check_raw(raw: &str, what: &'static str) -> Result<(), KeyError> {
    // Nearly every key passes: one pass over the bytes for those, the
    // precise error only for the rest.
    if raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    {
        return Ok(());
    }
    if raw.contains('%') {
        return Err(KeyError::PercentEncoded);
    }
    if raw.contains('\\') {
        return Err(KeyError::Backslash);
    }
    match raw.chars().find(|c| !allowed(*c) && *c != '/') {
        Some(c) => Err(KeyError::BadChar { what, c }),
        None => Ok(()),
    }
}

/// A namespace: one segment of `[A-Za-z0-9._-]` starting with a letter or digit.
pub fn namespace(s: &str) -> Result<&str, KeyError> {
    if s.is_empty() {
        return Err(KeyError::MissingNamespace);
    }
    check_raw(s, "the namespace")?;
    if s.len() > MAX_NAMESPACE_LEN {
        return Err(KeyError::TooLong {
            what: "the namespace",
            max: MAX_NAMESPACE_LEN,
        });
    }
    if let Some(c) = s.chars().find(|c| !allowed(*c)) {
        return Err(KeyError::BadChar {
            what: "the namespace",
            c,
        });
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(KeyError::BadNamespaceStart);
    }
    Ok(s)
}

/// A key: `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`.
pub fn key(s: &str) -> Result<&str, KeyError> {
    if s.is_empty() {
        return Err(KeyError::MissingKey);
    }
    check_raw(s, "the key")?;
    if s.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong {
            what: "the key",
            max: MAX_KEY_LEN,
        });
    }
    for segment in s.split('/') {
        match segment {
            "" => return Err(KeyError::EmptySegment),
            "." | ".." => return Err(KeyError::DotSegment),
            _ => {}
        }
    }
    Ok(s)
}

/// A single-segment key (a turbo or Nx hash).
pub fn hash(s: &str) -> Result<&str, KeyError> {
    let s = key(s)?;
    match s.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(KeyError::BadChar {
            what: "the hash",
            c,
        }),
        None => Ok(s),
    }
}

/// `/cache/<namespace>/<key>` taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct CachePath<'a> {
    pub namespace: &'a str,
    /// The key, without a trailing `/`; empty for the namespace root.
    pub key: &'a str,
    /// The path ended with `/` (or named the namespace root): a collection.
    pub collection: bool,
}

impl CachePath<'_> {
    /// The key of a value (PUT, GET): present and not a collection.
    pub fn value_key(&self) -> Result<&str, KeyError> {
        if self.key.is_empty() {
            Err(KeyError::MissingKey)
        } else if self.collection {
            Err(KeyError::Collection)
        } else {
            Ok(self.key)
        }
    }

    /// The prefix entries of this collection share: `""` or `"a/b/"`.
    pub fn prefix(&self) -> String {
        if self.key.is_empty() {
            String::new()
        } else {
            format!("{}/", self.key)
        }
    }
}

/// Parses the part of the raw (still percent-encoded) path after `/cache`.
/// Works on the raw path on purpose: decoding first would let `%2e%2e` or
/// `%2f` become `..` or `/` after the checks.
pub fn parse_cache_path(rest: &str) -> Result<CachePath<'_>, KeyError> {
    let rest = rest.strip_prefix('/').ok_or(KeyError::MissingNamespace)?;
    check_raw(rest, "the path")?;
    let (ns, key_part) = rest.split_once('/').unwrap_or((rest, ""));
    let namespace = namespace(ns)?;
    // sccache's WebDAV client (OpenDAL) joins the endpoint as documented,
    // `…/cache/<ns>/`, with its root `/`, so every path it sends starts
    // `/cache/<ns>//`. That one doubled slash right after the namespace is
    // the join, not part of the key; an empty segment anywhere else is
    // refused by `key`.
    let key_part = key_part.strip_prefix('/').unwrap_or(key_part);
    let (key_part, trailing) = match key_part.strip_suffix('/') {
        Some(k) => (k, true),
        None => (key_part, false),
    };
    if key_part.is_empty() {
        return Ok(CachePath {
            namespace,
            key: "",
            collection: true,
        });
    }
    Ok(CachePath {
        namespace,
        key: key(key_part)?,
        collection: trailing,
    })
}

/// Bazel's content-addressed store: `cas/<sha256 hex>` holds exactly the
/// bytes whose SHA-256 that is, so its writes are verified.
pub fn bazel_cas_digest(key: &str) -> Option<Digest> {
    let hex_part = key.strip_prefix("cas/")?;
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(Digest::Sha256(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_paths_split_into_namespace_and_key() {
        let p = parse_cache_path("/team/ac/0a1b").unwrap();
        assert_eq!(
            (p.namespace, p.key, p.collection),
            ("team", "ac/0a1b", false)
        );
        let p = parse_cache_path("/team/a/b/").unwrap();
        assert_eq!(
            (p.key, p.collection, p.prefix().as_str()),
            ("a/b", true, "a/b/")
        );
        let p = parse_cache_path("/team").unwrap();
        assert_eq!((p.key, p.collection, p.prefix().as_str()), ("", true, ""));
        let p = parse_cache_path("/team/.sccache_check").unwrap();
        assert_eq!(p.key, ".sccache_check");
        // OpenDAL's endpoint/root join.
        assert_eq!(parse_cache_path("/team//a/b").unwrap().key, "a/b");
        assert_eq!(parse_cache_path("/team//a/").unwrap().key, "a");
        assert_eq!(parse_cache_path("/team//").unwrap().key, "");
    }

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            "",
            "/",
            "//etc/passwd",
            "/ns/../other/x",
            "/ns/a/../../other/x",
            "/ns/./x",
            "/ns/%2e%2e/other/x",
            "/ns/%2E%2E/x",
            "/ns/a%2fb",
            "/ns/a//b",
            "/ns///x",
            "/ns//a//b",
            "/ns/a\\..\\b",
            "/ns\\x/y",
            "/../x",
            "/.ns/x",
            "/-ns/x",
            "/ns/a b",
            "/ns/a:b",
            "/ns/é",
            "/ns/a\0b",
        ] {
            assert!(parse_cache_path(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("/ns/{}", "a".repeat(MAX_KEY_LEN + 1));
        assert!(parse_cache_path(&long).is_err());
        let long_ns = format!("/{}/x", "n".repeat(MAX_NAMESPACE_LEN + 1));
        assert!(parse_cache_path(&long_ns).is_err());
    }

    #[test]
    fn hashes_are_single_segments() {
        assert_eq!(hash("0123abcd"), Ok("0123abcd"));
        assert!(hash("a/b").is_err());
        assert!(hash("..").is_err());
        assert!(hash("").is_err());
    }

    #[test]
    fn bazel_cas_keys_carry_their_sha256() {
        let hex = "ab".repeat(32);
        assert_eq!(
            bazel_cas_digest(&format!("cas/{hex}")).map(|d| d.to_string()),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(bazel_cas_digest(&format!("ac/{hex}")), None);
        assert_eq!(bazel_cas_digest("cas/abc"), None);
        assert_eq!(bazel_cas_digest(&format!("cas/{hex}/x")), None);
    }
}
