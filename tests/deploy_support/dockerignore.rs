//! `.dockerignore` as Docker reads it (moby's patternmatcher): one pattern a
//! line, `#` comments, `!` re-includes, the last matching pattern wins, and a
//! pattern that matches a parent directory matches everything below it.
//! Patterns are Go `filepath.Match` globs (`*`, `?`, `[...]`, `\` escapes)
//! plus `**`, which matches any number of directories, none included.

use std::path::Path;

#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    /// `!pattern`: re-includes what an earlier pattern excluded.
    pub exclusion: bool,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `**` at the end: anything at all.
    AnyRest,
    /// `**/` or `**` before more pattern: any number of leading directories.
    AnyDirs,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    One,
    /// `[...]`: one character (not `/`) in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Literal(char),
}

#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    pub patterns: Vec<Pattern>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|line| {
                let (exclusion, body) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let cleaned = clean(body);
                (!cleaned.is_empty()).then(|| Pattern {
                    tokens: compile(&cleaned),
                    text: cleaned,
                    exclusion,
                })
            })
            .collect();
        DockerIgnore { patterns }
    }

    /// Whether `path` (relative to the context root, `/`-separated) stays out
    /// of the build context.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // As moby does: an exclusion only matters once something matched,
            // an inclusion only until something did.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = matches(&pattern.tokens, &path);
            // A pattern that matches a parent directory matches the file.
            for i in 1..parents.len() {
                if hit {
                    break;
                }
                hit = matches(&pattern.tokens, &parents[..i].join("/"));
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether any pattern re-includes: then an excluded directory must still
    /// be walked, since something below it may be back in.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Every file of the context rooted at `root`, relative and
    /// `/`-separated, sorted.
    pub fn context_files(&self, root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(root, "", &mut out);
        out.sort();
        out
    }

    fn walk(&self, root: &Path, rel: &str, out: &mut Vec<String>) {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let excluded = self.excludes(&path);
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                if !excluded || self.has_exclusions() {
                    self.walk(root, &path, out);
                }
            } else if !excluded {
                out.push(path);
            }
        }
    }
}

/// Go's `filepath.Clean` for relative slash paths, with a leading `/`
/// dropped, as Docker does to each pattern.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn compile(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i >= chars.len() {
                    Token::AnyRest
                } else {
                    Token::AnyDirs
                });
                continue;
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                tokens.push(Token::Literal(chars[i]));
            }
            '[' => {
                let mut j = i + 1;
                let negated = matches!(chars.get(j), Some('^') | Some('!'));
                if negated {
                    j += 1;
                }
                let mut ranges = Vec::new();
                while j < chars.len() && chars[j] != ']' {
                    let lo = chars[j];
                    if chars.get(j + 1) == Some(&'-') && chars.get(j + 2).is_some_and(|c| *c != ']')
                    {
                        ranges.push((lo, chars[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((lo, lo));
                        j += 1;
                    }
                }
                assert!(
                    j < chars.len(),
                    "unclosed [ in .dockerignore pattern {pattern:?}"
                );
                tokens.push(Token::Class { negated, ranges });
                i = j;
            }
            c => tokens.push(Token::Literal(c)),
        }
        i += 1;
    }
    tokens
}

/// The whole of `s` against the tokens (the pattern is anchored both ends).
fn matches(tokens: &[Token], s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    match_at(tokens, &chars)
}

fn match_at(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::AnyRest => true,
        Token::AnyDirs => {
            // `(.*/)?`: nothing, or everything up to and including some `/`.
            match_at(rest, s) || (0..s.len()).any(|i| s[i] == '/' && match_at(rest, &s[i + 1..]))
        }
        Token::Star => {
            let run = s.iter().take_while(|c| **c != '/').count();
            (0..=run).any(|n| match_at(rest, &s[n..]))
        }
        Token::One => s.first().is_some_and(|c| *c != '/') && match_at(rest, &s[1..]),
        Token::Class { negated, ranges } => s.first().is_some_and(|c| {
            let inside = ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(c));
            *c != '/' && inside != *negated && match_at(rest, &s[1..])
        }),
        Token::Literal(c) => s.first() == Some(c) && match_at(rest, &s[1..]),
    }
}
