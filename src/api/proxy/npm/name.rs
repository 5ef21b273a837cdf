//! npm package names as they arrive in a request path: `foo`, `@scope/foo`
//! or `@scope%2ffoo` (the form npm itself sends). The rule is npm's own for
//! packages already on a registry (validate-npm-package-name's
//! `validForOldPackages`): upper case and `~'!()*` are allowed because old
//! packages have them, but nothing that needs escaping in a URL, no leading
//! `.` or `_`, and never `.`/`..` — so a name can never step out of its
//! namespace's key space or the upstream's URL.

use std::fmt;

/// npm's limit on the whole name, scope included.
pub const MAX_NAME_LEN: usize = 214;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackageName {
    /// `foo` or `@scope/foo`.
    full: String,
    /// Where the bare name starts in `full` (after `@scope/`).
    bare_at: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the package name is empty")]
    Empty,
    #[error("the package name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("a scoped package name is @scope/name")]
    BadScope,
    #[error("the package name must not start with {0:?}")]
    BadStart(char),
    #[error("the package name contains {0:?}, which npm does not allow")]
    BadChar(char),
    #[error("{0:?} is not a package name npm allows")]
    Reserved(String),
}

impl PackageName {
    /// Parses a decoded name (`foo`, `@scope/foo`); a `%2f` between scope
    /// and name (any case) is accepted as the `/` it stands for.
    pub fn parse(raw: &str) -> Result<PackageName, NameError> {
        let full = replace_ci(raw, "%2f", "/");
        if full.is_empty() {
            return Err(NameError::Empty);
        }
        if full.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        let (scope, bare) = match full.strip_prefix('@') {
            Some(rest) => match rest.split_once('/') {
                Some((scope, bare)) => (Some(scope), bare),
                None => return Err(NameError::BadScope),
            },
            None => (None, full.as_str()),
        };
        if let Some(scope) = scope {
            check_part(scope).map_err(|e| match e {
                NameError::Empty => NameError::BadScope,
                e => e,
            })?;
        }
        check_part(bare)?;
        if matches!(bare, "node_modules" | "favicon.ico") && scope.is_none() {
            return Err(NameError::Reserved(bare.to_owned()));
        }
        let bare_at = full.len() - bare.len();
        Ok(PackageName { full, bare_at })
    }

    /// `foo` or `@scope/foo`: the name in packuments, lockfiles and keys.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The name without its scope: what npm tarball file names start with.
    pub fn bare(&self) -> &str {
        &self.full[self.bare_at..]
    }

    pub fn is_scoped(&self) -> bool {
        self.bare_at > 0
    }

    /// The path that asks a registry for the packument: `foo` or
    /// `@scope%2ffoo`, the form npm sends and every registry answers.
    pub fn packument_path(&self) -> String {
        self.full.replacen('/', "%2f", 1)
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// One part (the scope or the bare name): the characters
/// `encodeURIComponent` leaves alone, not starting with `.` or `_`.
fn check_part(part: &str) -> Result<(), NameError> {
    let Some(first) = part.chars().next() else {
        return Err(NameError::Empty);
    };
    if first == '.' || first == '_' {
        return Err(NameError::BadStart(first));
    }
    if let Some(c) = part.chars().find(|&c| !name_char(c)) {
        return Err(NameError::BadChar(c));
    }
    Ok(())
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '!' | '*' | '\'' | '(' | ')')
}

/// `s` with every ASCII-case-insensitive occurrence of `from` replaced.
fn replace_ci(s: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.to_ascii_lowercase().find(from) {
        out.push_str(&rest[..i]);
        out.push_str(to);
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscoped_and_scoped_names_in_every_spelling() {
        let n = PackageName::parse("left-pad").unwrap();
        assert_eq!(
            (n.as_str(), n.bare(), n.is_scoped()),
            ("left-pad", "left-pad", false)
        );
        assert_eq!(n.packument_path(), "left-pad");
        for raw in ["@types/node", "@types%2fnode", "@types%2Fnode"] {
            let n = PackageName::parse(raw).unwrap();
            assert_eq!((n.as_str(), n.bare()), ("@types/node", "node"), "{raw}");
            assert!(n.is_scoped());
            assert_eq!(n.packument_path(), "@types%2fnode");
        }
        // Old packages keep their capitals and punctuation.
        assert!(PackageName::parse("JSONStream").is_ok());
        assert!(PackageName::parse("highlight.js").is_ok());
        assert!(PackageName::parse("@scope/a_b~c").is_ok());
    }

    #[test]
    fn names_that_would_escape_or_that_npm_refuses() {
        for raw in [
            "",
            ".",
            "..",
            ".hidden",
            "_private",
            "a/b",
            "../x",
            "@scope/..",
            "@../x",
            "@scope",
            "@scope/",
            "@/x",
            "a b",
            "a%20b",
            "a\\b",
            "a?b",
            "a#b",
            "a:b",
            "a\0b",
            "é",
            "node_modules",
            "favicon.ico",
            "@scope/a/b",
            "a%2fb",
        ] {
            assert!(PackageName::parse(raw).is_err(), "{raw:?} must be refused");
        }
        assert_eq!(
            PackageName::parse(&"a".repeat(215)),
            Err(NameError::TooLong)
        );
        assert!(PackageName::parse(&"a".repeat(214)).is_ok());
    }
}
