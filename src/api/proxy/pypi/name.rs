//! PyPI names: a project's PEP 503 normalized form, and the file names an
//! upstream page may list. Both end up in entry names and in URLs Larder
//! emits, so anything that could climb out of its path segment is refused.

/// Longest project or file name accepted; PyPI's own are far shorter.
const MAX_LEN: usize = 255;

/// The PEP 503 normalized form of a project name (lowercase, every run of
/// `-`, `_` and `.` one `-`), or why the name is not a valid one (PEP 508:
/// ASCII letters, digits and `-_.`, starting and ending with a letter or
/// digit).
pub fn normalize(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > MAX_LEN {
        return Err(format!("a project name has 1 to {MAX_LEN} characters"));
    }
    let sep = |c: char| matches!(c, '-' | '_' | '.');
    if let Some(c) = name
        .chars()
        .find(|&c| !c.is_ascii_alphanumeric() && !sep(c))
    {
        return Err(format!("{c:?} is not allowed in a project name"));
    }
    if name.starts_with(sep) || name.ends_with(sep) {
        return Err("a project name starts and ends with a letter or digit".into());
    }
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if sep(c) {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    Ok(out)
}

/// Whether a distribution file name (`pkg-1.0-py3-none-any.whl`,
/// `pkg-1.0.tar.gz`) is one Larder serves: one path segment of plain
/// characters, never `.`-led (so never `..`).
pub fn valid_filename(name: &str) -> bool {
    let plain =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '!' | '~');
    !name.is_empty() && name.len() <= MAX_LEN && !name.starts_with('.') && name.chars().all(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_as_pep_503_says() {
        for (given, want) in [
            ("Django", "django"),
            ("zope.interface", "zope-interface"),
            ("Foo__Bar--baz..Qux", "foo-bar-baz-qux"),
            ("a", "a"),
            ("ruamel.yaml.clib", "ruamel-yaml-clib"),
        ] {
            assert_eq!(normalize(given).as_deref(), Ok(want), "{given}");
        }
    }

    #[test]
    fn refuses_what_could_leave_its_segment() {
        for bad in [
            "", "..", "../x", "a/b", "a%2fb", "-a", "a-", ".a", "a b", "é", "a\\b",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert!(normalize(&"a".repeat(256)).is_err());
    }

    #[test]
    fn file_names() {
        for ok in [
            "pkg-1.0-py3-none-any.whl",
            "pkg-1.0+local.tar.gz",
            "p_k-1!2.0.zip",
        ] {
            assert!(valid_filename(ok), "{ok}");
        }
        for bad in [
            "", "..", ".hidden", "a/b", "a\\b", "a?b", "a#b", "a b", "a%2e",
        ] {
            assert!(!valid_filename(bad), "{bad:?}");
        }
    }
}
