//! What a request under `/npm/<ns>/` asks for. The path after the namespace
//! is the registry's own layout: `<name>` for a packument and
//! `<name>/-/<bare>-<version>.tgz` for a tarball, with `<name>` in any of
//! the spellings `PackageName` accepts.

use super::name::{NameError, PackageName};

#[derive(Debug, PartialEq, Eq)]
pub enum NpmPath {
    Packument(PackageName),
    Tarball {
        name: PackageName,
        version: String,
    },
    /// Registry endpoints a proxy does not serve (`-/ping`, `-/v1/search`,
    /// audit, version documents): 404, which npm tolerates for all of them.
    Unsupported,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not valid percent-encoded UTF-8")]
    Encoding,
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("{0:?} is not a tarball of this package")]
    Tarball(String),
}

/// Longest version string accepted in a tarball name (npm allows 256).
const MAX_VERSION_LEN: usize = 256;

/// Parses the raw (still percent-encoded) path after `/npm/<ns>/`.
///
/// A lockfile written through another namespace, replayed with
/// `replace-registry-host=always`, asks for `npm/<other-ns>/<tarball path>`
/// (npm keeps the recorded path and puts this registry's prefix in front);
/// that prefix is dropped so the tarball is served from this namespace.
/// `npm/-/npm-1.0.0.tgz`, the `npm` package's own tarball, is not such a
/// prefix: `-` is never a namespace.
pub fn parse(raw: &str) -> Result<NpmPath, PathError> {
    let decoded = percent_decode(raw).ok_or(PathError::Encoding)?;
    if let Some(inner) = foreign_prefix(&decoded) {
        if let Ok(tarball @ NpmPath::Tarball { .. }) = parse_decoded(inner) {
            return Ok(tarball);
        }
    }
    parse_decoded(&decoded)
}

fn foreign_prefix(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("npm/")?;
    let (ns, inner) = rest.split_once('/')?;
    crate::auth::names::check_namespace(ns).ok()?;
    Some(inner)
}

fn parse_decoded(path: &str) -> Result<NpmPath, PathError> {
    if path.starts_with("-/") || path == "-" {
        return Ok(NpmPath::Unsupported);
    }
    if let Some((name, file)) = path.split_once("/-/") {
        let name = PackageName::parse(name)?;
        let version = tarball_version(&name, file)
            .ok_or_else(|| PathError::Tarball(file.to_owned()))?
            .to_owned();
        return Ok(NpmPath::Tarball { name, version });
    }
    match PackageName::parse(path) {
        Ok(name) => Ok(NpmPath::Packument(name)),
        // `<name>/<version-or-tag>`: a version document.
        Err(_) if path.matches('/').count() == 1 + usize::from(path.starts_with('@')) => {
            Ok(NpmPath::Unsupported)
        }
        Err(e) => Err(e.into()),
    }
}

/// The version in a tarball file name `<bare>-<version>.tgz`, if it is one
/// of `name` and the version is a plausible semver string.
pub fn tarball_version<'a>(name: &PackageName, file: &'a str) -> Option<&'a str> {
    let version = file
        .strip_prefix(name.bare())?
        .strip_prefix('-')?
        .strip_suffix(".tgz")?;
    valid_version(version).then_some(version)
}

/// Semver's alphabet (`1.2.3-rc.1+build`), bounded: the versions a tarball
/// URL may carry, so none brings `/`, `%` or `..` into a path.
pub fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VERSION_LEN
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        && !v.contains("..")
}

/// Percent-decodes a path; None for a bad escape, non-UTF-8 or a NUL.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let out = String::from_utf8(out).ok()?;
    (!out.contains('\0')).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> PackageName {
        PackageName::parse(s).unwrap()
    }

    fn tarball(n: &str, v: &str) -> NpmPath {
        NpmPath::Tarball {
            name: name(n),
            version: v.to_owned(),
        }
    }

    #[test]
    fn packuments_in_every_spelling() {
        assert_eq!(parse("left-pad"), Ok(NpmPath::Packument(name("left-pad"))));
        for raw in ["@s/x", "@s%2fx", "@s%2Fx", "%40s%2fx"] {
            assert_eq!(parse(raw), Ok(NpmPath::Packument(name("@s/x"))), "{raw}");
        }
    }

    #[test]
    fn tarballs_in_the_registry_layout() {
        assert_eq!(parse("a/-/a-1.0.0.tgz"), Ok(tarball("a", "1.0.0")));
        assert_eq!(
            parse("@s/x/-/x-2.0.0-rc.1.tgz"),
            Ok(tarball("@s/x", "2.0.0-rc.1"))
        );
        assert_eq!(
            parse("@s%2fx/-/x-1.0.0+b.1.tgz"),
            Ok(tarball("@s/x", "1.0.0+b.1"))
        );
        // The npm package itself, and a lockfile from another namespace.
        assert_eq!(parse("npm/-/npm-10.0.0.tgz"), Ok(tarball("npm", "10.0.0")));
        assert_eq!(
            parse("npm/team/@s/x/-/x-1.0.0.tgz"),
            Ok(tarball("@s/x", "1.0.0"))
        );
        assert_eq!(parse("npm/team/a/-/a-1.0.0.tgz"), Ok(tarball("a", "1.0.0")));
    }

    #[test]
    fn endpoints_a_proxy_does_not_serve() {
        for raw in [
            "-/ping",
            "-/v1/search",
            "-/npm/v1/security/advisories/bulk",
            "a/1.0.0",
            "@s/x/latest",
        ] {
            assert_eq!(parse(raw), Ok(NpmPath::Unsupported), "{raw}");
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        for raw in [
            "..",
            "%2e%2e",
            "a/-/b-1.0.0.tgz",
            "a/-/a-1.0.0",
            "a/-/a-.tgz",
            "a/-/a-../x.tgz",
            "a/-/a-1.0.0.tgz/x",
            "a/-/a-1%2f..%2f2.tgz",
            "a%00",
            "%zz",
            "%e9",
            "../other/a",
            "a/b/c",
            "@s/x/-/y-1.0.0.tgz",
        ] {
            assert!(
                parse(raw).is_err(),
                "{raw:?} must be refused, got {:?}",
                parse(raw)
            );
        }
    }
}
