//! A simple-index page as Larder understands it, read from either form an
//! upstream serves (PEP 503 HTML or PEP 691 JSON). Only what survives
//! validation is kept: files with an http(s) URL, a plain file name and a
//! sha256 to verify them by; hashes as lowercase hex.

use std::collections::BTreeMap;

use reqwest::Url;
use serde_json::Value;

use super::html;
use super::name::{normalize, valid_filename};

/// Hash name → lowercase hex digest.
pub type Hashes = BTreeMap<String, String>;

#[derive(Debug, PartialEq)]
pub struct File {
    pub filename: String,
    /// Where the upstream serves it: absolute, without its fragment.
    pub url: Url,
    /// Always holds a `sha256`.
    pub hashes: Hashes,
    pub requires_python: Option<String>,
    /// `Some(reason)` when yanked; the reason may be empty.
    pub yanked: Option<String>,
    /// PEP 658/714: `Some` when `<url>.metadata` exists, with its hashes
    /// when the upstream gave them.
    pub core_metadata: Option<Hashes>,
}

impl File {
    pub fn sha256(&self) -> &str {
        self.hashes.get("sha256").map_or("", String::as_str)
    }
}

/// Whether an upstream body is PEP 691 JSON (by its type, or by its first
/// byte when the upstream sent no type).
pub fn is_json(content_type: Option<&str>, body: &[u8]) -> bool {
    match content_type {
        Some(t) => {
            t.trim_start().starts_with("application/vnd.pypi.simple.") && t.contains("+json")
        }
        None => body.trim_ascii_start().starts_with(b"{"),
    }
}

/// The files of a project page served at `page`.
pub fn files(page: &Url, json: bool, body: &[u8]) -> Vec<File> {
    if json {
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return Vec::new();
        };
        let list = doc.get("files").and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter_map(|f| json_file(page, f))
            .collect()
    } else {
        let text = String::from_utf8_lossy(body);
        html::anchors(&text)
            .iter()
            .filter_map(|a| html_file(page, a))
            .collect()
    }
}

/// The normalized project names of an index root page, deduplicated.
pub fn projects(json: bool, body: &[u8]) -> Vec<String> {
    let names: Vec<String> = if json {
        let doc: Value = serde_json::from_slice(body).unwrap_or_default();
        let list = doc.get("projects").and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter_map(|p| p.get("name")?.as_str().map(str::to_owned))
            .collect()
    } else {
        let text = String::from_utf8_lossy(body);
        html::anchors(&text).into_iter().map(|a| a.text).collect()
    };
    let mut out: Vec<String> = names.iter().filter_map(|n| normalize(n).ok()).collect();
    out.sort();
    out.dedup();
    out
}

fn html_file(page: &Url, a: &html::Anchor) -> Option<File> {
    let (url, fragment) = resolve(page, a.attr("href")?)?;
    let mut hashes = Hashes::new();
    if let Some((algo, hex)) = fragment.as_deref().and_then(|f| f.split_once('=')) {
        add_hash(&mut hashes, algo, hex);
    }
    let core_metadata = a
        .attr("data-core-metadata")
        .or_else(|| a.attr("data-dist-info-metadata"))
        .and_then(|v| match v {
            "true" => Some(Hashes::new()),
            v => {
                let (algo, hex) = v.split_once('=')?;
                let mut h = Hashes::new();
                add_hash(&mut h, algo, hex).then_some(h)
            }
        });
    finish(File {
        filename: filename(&a.text, &url),
        url,
        hashes,
        requires_python: a.attr("data-requires-python").map(str::to_owned),
        yanked: a.attr("data-yanked").map(str::to_owned),
        core_metadata,
    })
}

fn json_file(page: &Url, f: &Value) -> Option<File> {
    let (url, _) = resolve(page, f.get("url")?.as_str()?)?;
    let mut hashes = Hashes::new();
    for (algo, hex) in f.get("hashes")?.as_object()? {
        add_hash(&mut hashes, algo, hex.as_str().unwrap_or(""));
    }
    let core = f
        .get("core-metadata")
        .or_else(|| f.get("dist-info-metadata"));
    let core_metadata = match core {
        Some(Value::Bool(true)) => Some(Hashes::new()),
        Some(Value::Object(map)) => {
            let mut h = Hashes::new();
            for (algo, hex) in map {
                add_hash(&mut h, algo, hex.as_str().unwrap_or(""));
            }
            Some(h)
        }
        _ => None,
    };
    let yanked = match f.get("yanked") {
        Some(Value::Bool(true)) => Some(String::new()),
        Some(Value::String(reason)) => Some(reason.clone()),
        _ => None,
    };
    let requires_python = f.get("requires-python").and_then(Value::as_str);
    finish(File {
        filename: f.get("filename")?.as_str()?.to_owned(),
        url,
        hashes,
        requires_python: requires_python.map(str::to_owned),
        yanked,
        core_metadata,
    })
}

/// Keeps a file only when Larder can serve and verify it.
fn finish(f: File) -> Option<File> {
    (valid_filename(&f.filename) && f.hashes.contains_key("sha256")).then_some(f)
}

/// An href made absolute against the page, split from its fragment; only
/// http(s) URLs.
fn resolve(page: &Url, href: &str) -> Option<(Url, Option<String>)> {
    let mut url = page.join(href.trim()).ok()?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return None;
    }
    let fragment = url.fragment().map(str::to_owned);
    url.set_fragment(None);
    Some((url, fragment))
}

/// The anchor's text when it is a file name, else the URL's last segment
/// (PEP 503 says they match).
fn filename(text: &str, url: &Url) -> String {
    if valid_filename(text) {
        return text.to_owned();
    }
    let last = url.path_segments().and_then(|mut s| s.next_back());
    last.unwrap_or("").to_owned()
}

/// Adds a hash whose name and hex digest look like one; says whether it did.
fn add_hash(hashes: &mut Hashes, algo: &str, hex: &str) -> bool {
    let name_ok = !algo.is_empty()
        && algo.len() <= 16
        && algo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let hex_ok = (32..=128).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit());
    let sha256_ok = algo != "sha256" || hex.len() == 64;
    let ok = name_ok && hex_ok && sha256_ok;
    if ok {
        hashes.insert(algo.to_owned(), hex.to_ascii_lowercase());
    }
    ok
}
