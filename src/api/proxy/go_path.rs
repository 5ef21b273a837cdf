//! Paths of the GOPROXY protocol, validated before anything is looked up or
//! fetched: `<module>/@v/list`, `<module>/@v/<version>.info|.mod|.zip` and
//! `<module>/@latest`, with module paths and versions in the `!`-case
//! encoding (`github.com/!azure/…`). The escaped form is kept as is: it is
//! the entry's name and the upstream's path alike.

/// Longest escaped module path accepted.
const MAX_MODULE: usize = 512;
/// Longest escaped version accepted.
const MAX_VERSION: usize = 128;

#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    List,
    Latest,
    File { version: &'a str, file: File },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum File {
    Info,
    Mod,
    Zip,
}

impl File {
    pub fn content_type(self) -> &'static str {
        match self {
            File::Info => "application/json",
            File::Mod => "text/plain; charset=utf-8",
            File::Zip => "application/zip",
        }
    }
}

/// Undoes the percent-encoding `go` applies to the raw request path (`!`
/// arrives as `%21`). Only the escapes of characters the protocol allows
/// and that cannot form a separator are decoded; any other `%` is refused,
/// so no spelling of `/` or `.` gets past `parse`.
pub fn decode(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3).unwrap_or("");
        out.push(match code.to_ascii_uppercase().as_str() {
            "21" => '!',
            "2B" => '+',
            "7E" => '~',
            _ => return Err(format!("percent-encoded {:?} is not allowed", &rest[at..])),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses the path after `/go/<namespace>/` into the (escaped) module path
/// and what is asked of it.
pub fn parse(rest: &str) -> Result<(&str, Request<'_>), String> {
    if let Some(module) = rest.strip_suffix("/@latest") {
        return Ok((module_path(module)?, Request::Latest));
    }
    let (module, tail) = rest
        .rsplit_once("/@v/")
        .ok_or_else(|| format!("{rest:?} is not a module proxy path (…/@v/… or …/@latest)"))?;
    let module = module_path(module)?;
    if tail == "list" {
        return Ok((module, Request::List));
    }
    let (version, file) = if let Some(v) = tail.strip_suffix(".info") {
        (v, File::Info)
    } else if let Some(v) = tail.strip_suffix(".mod") {
        (v, File::Mod)
    } else if let Some(v) = tail.strip_suffix(".zip") {
        (v, File::Zip)
    } else {
        return Err(format!("{tail:?} is not list, .info, .mod or .zip"));
    };
    Ok((
        module,
        Request::File {
            version: version_of(version)?,
            file,
        },
    ))
}

/// An escaped module path: lower-case letters, digits and `-._~/`, upper
/// case only as `!` + lower case; elements neither empty nor dot-led (so no
/// `.` or `..`).
pub(super) fn module_path(m: &str) -> Result<&str, String> {
    if m.is_empty() || m.len() > MAX_MODULE {
        return Err(format!("module path must be 1 to {MAX_MODULE} characters"));
    }
    escaped(m, "module path", |c| {
        matches!(c, '-' | '.' | '_' | '~' | '/')
    })?;
    for element in m.split('/') {
        if element.is_empty() || element.starts_with('.') || element.ends_with('.') {
            return Err(format!("module path {m:?} has an empty or dot-led element"));
        }
    }
    Ok(m)
}

/// An escaped version: `v…`, lower-case letters, digits and `-.+`.
pub(super) fn version_of(v: &str) -> Result<&str, String> {
    if !v.starts_with('v') || v.len() > MAX_VERSION || v.contains("..") {
        return Err(format!("version {v:?} is not a module version"));
    }
    escaped(v, "version", |c| matches!(c, '-' | '.' | '+'))?;
    Ok(v)
}

fn escaped(s: &str, what: &str, punct: impl Fn(char) -> bool) -> Result<(), String> {
    let mut bang = false;
    for c in s.chars() {
        let ok = if bang {
            c.is_ascii_lowercase()
        } else {
            c == '!' || c.is_ascii_lowercase() || c.is_ascii_digit() || punct(c)
        };
        if !ok {
            return Err(format!(
                "{what} {s:?} has a character the case encoding does not allow"
            ));
        }
        bang = c == '!' && !bang;
    }
    if bang {
        return Err(format!("{what} {s:?} ends in '!'"));
    }
    Ok(())
}

/// A release or pre-release version (`v1.2.3`, `v1.2.3-rc.1`,
/// `v2.0.0+incompatible`, pseudo-versions): its files never change. Other
/// queries (`master.info`, `latest.info`) resolve anew each time.
pub fn is_canonical(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let rest = rest.strip_suffix("+incompatible").unwrap_or(rest);
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    nums.len() == 3
        && nums
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| !p.is_empty() && !p.contains('+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_request_of_the_protocol() {
        assert_eq!(
            parse("github.com/!azure/sdk/@v/list"),
            Ok(("github.com/!azure/sdk", Request::List))
        );
        assert_eq!(
            parse("example.com/m/@latest"),
            Ok(("example.com/m", Request::Latest))
        );
        assert_eq!(
            parse("example.com/m/@v/v1.0.0.zip"),
            Ok((
                "example.com/m",
                Request::File {
                    version: "v1.0.0",
                    file: File::Zip
                }
            ))
        );
    }

    #[test]
    fn refuses_traversal_and_unencoded_case() {
        for bad in [
            "../x/@v/list",
            "example.com/../m/@v/list",
            "example.com//m/@v/list",
            "example.com/./m/@v/list",
            "Example.com/m/@v/list",
            "example.com/m!/@v/list",
            "example.com/m!!a/@v/list",
            "example.com/m/@v/v1.0.0.tar",
            "example.com/m/@v/1.0.0.zip",
            "example.com/m/@v/v1/../../x.zip",
            "example.com/m/@v/v1%2e0.zip",
            "example.com/m/@v/..zip",
            "example.com/m",
            "/@v/list",
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn decodes_only_what_go_escapes() {
        assert_eq!(
            decode("example.com/%21azure/x/@v/v1.0.0%2Bincompatible.zip").unwrap(),
            "example.com/!azure/x/@v/v1.0.0+incompatible.zip"
        );
        for bad in ["a/%2e%2e/b", "a%2fb", "a%", "a%2", "%00"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tells_release_versions_from_queries() {
        for v in [
            "v1.0.0",
            "v0.0.0-20200101000000-abcdef123456",
            "v2.1.0+incompatible",
            "v1.0.0-rc.1",
        ] {
            assert!(is_canonical(v), "{v}");
        }
        for v in ["master", "v1", "v1.0", "latest", "v1.0.0-"] {
            assert!(!is_canonical(v), "{v}");
        }
    }
}
