//! Parsing `/v2/…` paths. Repository names contain slashes, so routes are
//! recognised from the right: `<name>/blobs/<digest>`, `<name>/manifests/<ref>`…

use super::error::OciError;

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Base,
    Catalog,
    Blob { name: &'a str, digest: &'a str },
    UploadStart { name: &'a str },
    Upload { name: &'a str, id: &'a str },
    Manifest { name: &'a str, reference: &'a str },
    Tags { name: &'a str },
    Referrers { name: &'a str, digest: &'a str },
}

impl Route<'_> {
    /// The route template, for logs and metrics.
    pub fn template(&self) -> &'static str {
        match self {
            Route::Base => "/v2/",
            Route::Catalog => "/v2/_catalog",
            Route::Blob { .. } => "/v2/{name}/blobs/{digest}",
            Route::UploadStart { .. } => "/v2/{name}/blobs/uploads/",
            Route::Upload { .. } => "/v2/{name}/blobs/uploads/{id}",
            Route::Manifest { .. } => "/v2/{name}/manifests/{reference}",
            Route::Tags { .. } => "/v2/{name}/tags/list",
            Route::Referrers { .. } => "/v2/{name}/referrers/{digest}",
        }
    }
}

/// Splits the part of the path after `/v2/` into a route; `None` when no
/// route matches. The name is validated separately.
pub fn parse(rest: &str) -> Option<Route<'_>> {
    if rest.is_empty() {
        return Some(Route::Base);
    }
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags { name });
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::UploadStart { name });
    }
    let (head, last) = rest.rsplit_once('/')?;
    let (name, kind) = head.rsplit_once('/')?;
    if last.is_empty() {
        return None;
    }
    match kind {
        "blobs" => Some(Route::Blob { name, digest: last }),
        "manifests" => Some(Route::Manifest {
            name,
            reference: last,
        }),
        "referrers" => Some(Route::Referrers { name, digest: last }),
        "uploads" => head
            .strip_suffix("/blobs/uploads")
            .map(|name| Route::Upload { name, id: last }),
        _ => None,
    }
}

/// Checks a repository name against the distribution spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn validate_name(name: &str) -> Result<(), OciError> {
    let bad = || OciError::name_invalid(format!("invalid repository name {name:?}"));
    if name.is_empty() || name.len() > 255 {
        return Err(bad());
    }
    for component in name.split('/') {
        if !valid_component(component) {
            return Err(bad());
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Tags: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// The namespace (tenant) of a repository: its first path component.
pub fn namespace(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_recognised_from_the_right() {
        assert_eq!(parse(""), Some(Route::Base));
        assert_eq!(parse("_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse("team/app/blobs/sha256:ab"),
            Some(Route::Blob {
                name: "team/app",
                digest: "sha256:ab"
            })
        );
        assert_eq!(
            parse("a/blobs/blobs/uploads/"),
            Some(Route::UploadStart { name: "a/blobs" })
        );
        assert_eq!(
            parse("a/b/blobs/uploads/0123"),
            Some(Route::Upload {
                name: "a/b",
                id: "0123"
            })
        );
        assert_eq!(
            parse("a/manifests/latest"),
            Some(Route::Manifest {
                name: "a",
                reference: "latest"
            })
        );
        assert_eq!(parse("a/tags/list"), Some(Route::Tags { name: "a" }));
        assert_eq!(
            parse("a/referrers/sha256:00"),
            Some(Route::Referrers {
                name: "a",
                digest: "sha256:00"
            })
        );
        assert_eq!(parse("a/things/x"), None);
        assert_eq!(parse("a/manifests/"), None);
        assert_eq!(parse("nothing"), None);
    }

    #[test]
    fn repository_names_follow_the_spec_grammar() {
        for ok in ["app", "team/app", "a.b_c__d---e/f-g", "0/1/2", "x9"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "App", "a//b", "/a", "a/", "a..b", "a___b", "-a", "a-", "a/../b", "a b", "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        assert!(valid_tag("latest") && valid_tag("_x") && valid_tag("v1.2.3-rc_1"));
        assert!(
            !valid_tag("") && !valid_tag(".x") && !valid_tag("a/b") && !valid_tag(&"a".repeat(129))
        );
    }
}
