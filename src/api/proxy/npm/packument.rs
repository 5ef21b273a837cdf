//! Packuments: the upstream's document, kept as the upstream sent it, and
//! rendered per request — full or abbreviated, with every
//! `versions[v].dist.tarball` pointing at this Larder.
//!
//! Tarball URLs are `<registry>/<name>/-/<bare>-<version>.tgz`, where
//! `<registry>` is the URL the client configured (`…/npm/<ns>`): after the
//! registry prefix they have exactly registry.npmjs.org's layout, so the
//! `resolved` URLs a lockfile records through Larder are "this registry +
//! the canonical path" — what npm's `replace-registry-host` maps onto any
//! other registry URL (another Larder host, another namespace, or the
//! public registry). The stored document is the upstream's, not a rewritten
//! one: the registry URL depends on the Host a client used.

use serde_json::{Map, Value};

use super::integrity::Expected;
use super::name::PackageName;
use super::path::valid_version;

/// The media type of the abbreviated ("corgi") packument.
pub const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// What the abbreviated form keeps of each version: what an install needs
/// (npm's registry documentation, plus what npm and pnpm read today).
const ABBREVIATED_VERSION_KEYS: &[&str] = &[
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "cpu",
    "os",
    "libc",
    "funding",
    "license",
    "_hasShrinkwrap",
    "hasInstallScript",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Full,
    Abbreviated,
}

impl Form {
    /// The abbreviated form when `Accept` names it with a non-zero quality
    /// (npm sends `application/vnd.npm.install-v1+json; q=1.0,
    /// application/json; q=0.8, */*`), else the full document.
    pub fn from_accept(accept: Option<&str>) -> Form {
        let wants = accept.unwrap_or("").split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case(ABBREVIATED) && !zero
        });
        if wants {
            Form::Abbreviated
        } else {
            Form::Full
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Form::Full => "application/json",
            Form::Abbreviated => ABBREVIATED,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackumentError {
    #[error("the upstream packument is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the upstream packument is not JSON: {0}")]
    NotJson(String),
    #[error("the upstream packument is not a JSON object with versions")]
    NotPackument,
}

/// Where one version's tarball is upstream, and what it must hash to.
#[derive(Debug, PartialEq, Eq)]
pub struct Tarball {
    pub upstream_url: String,
    pub expected: Option<Expected>,
}

pub struct Packument {
    doc: Map<String, Value>,
}

impl Packument {
    /// Parses an upstream packument of at most `limit` bytes.
    pub fn parse(bytes: &[u8], limit: usize) -> Result<Packument, PackumentError> {
        if bytes.len() > limit {
            return Err(PackumentError::TooLarge { limit });
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| PackumentError::NotJson(e.to_string()))?;
        match value {
            Value::Object(doc) if doc.get("versions").is_none_or(Value::is_object) => {
                Ok(Packument { doc })
            }
            _ => Err(PackumentError::NotPackument),
        }
    }

    fn versions(&self) -> impl Iterator<Item = (&String, &Map<String, Value>)> {
        self.doc
            .get("versions")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(v, _)| valid_version(v))
            .filter_map(|(v, doc)| Some((v, doc.as_object()?)))
    }

    /// The upstream tarball of `version`: an absolute http(s) URL, and the
    /// hash from its `dist`. None when the version is not in the packument
    /// (or its tarball is not somewhere Larder may fetch from).
    pub fn tarball(&self, version: &str) -> Option<Tarball> {
        let (_, doc) = self.versions().find(|(v, _)| *v == version)?;
        let dist = doc.get("dist")?;
        let url = dist.get("tarball")?.as_str()?;
        let scheme = url.split_once("://")?.0;
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return None;
        }
        Some(Tarball {
            upstream_url: url.to_owned(),
            expected: Expected::from_dist(dist),
        })
    }

    /// The document a client gets: `form`, with every version's tarball at
    /// `<registry>/<name>/-/<bare>-<version>.tgz` (`registry` without a
    /// trailing slash). Versions whose key could not be a URL path segment
    /// are left out rather than pointed upstream, past the cache.
    pub fn render(&self, name: &PackageName, form: Form, registry: &str) -> Vec<u8> {
        let mut versions = Map::new();
        for (version, doc) in self.versions() {
            let mut doc = match form {
                Form::Full => doc.clone(),
                Form::Abbreviated => ABBREVIATED_VERSION_KEYS
                    .iter()
                    .filter_map(|k| Some((k.to_string(), doc.get(*k)?.clone())))
                    .collect(),
            };
            let url = format!("{registry}/{name}/-/{}-{version}.tgz", name.bare());
            match doc.get_mut("dist").and_then(Value::as_object_mut) {
                Some(dist) => {
                    dist.insert("tarball".into(), Value::String(url));
                }
                None => continue,
            }
            versions.insert(version.clone(), Value::Object(doc));
        }
        let mut out = match form {
            Form::Full => self.doc.clone(),
            Form::Abbreviated => {
                let mut out = Map::new();
                for key in ["name", "dist-tags", "modified"] {
                    if let Some(v) = self.doc.get(key) {
                        out.insert(key.into(), v.clone());
                    }
                }
                if let Some(m) = self.doc.get("time").and_then(|t| t.get("modified")) {
                    out.entry("modified").or_insert_with(|| m.clone());
                }
                out
            }
        };
        out.insert("versions".into(), Value::Object(versions));
        serde_json::to_vec(&Value::Object(out)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const REGISTRY: &str = "http://larder:8080/npm/team";

    fn upstream() -> Value {
        json!({
            "_id": "@s/x",
            "name": "@s/x",
            "dist-tags": { "latest": "1.1.0" },
            "time": { "modified": "2026-01-02T03:04:05.000Z", "1.0.0": "2026-01-01T00:00:00.000Z" },
            "readme": "a long readme",
            "versions": {
                "1.0.0": {
                    "name": "@s/x", "version": "1.0.0", "readme": "r", "scripts": { "test": "x" },
                    "dependencies": { "a": "^1" },
                    "dist": {
                        "tarball": "https://upstream.example/@s/x/-/x-1.0.0.tgz",
                        "integrity": "sha512-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
                        "shasum": "0000000000000000000000000000000000000000"
                    }
                },
                "1.1.0": {
                    "name": "@s/x", "version": "1.1.0",
                    "dist": { "tarball": "file:///etc/passwd", "shasum": "0000000000000000000000000000000000000000" }
                },
                "../../evil": { "dist": { "tarball": "https://upstream.example/e.tgz" } }
            }
        })
    }

    fn parsed() -> Packument {
        Packument::parse(upstream().to_string().as_bytes(), 1 << 20).unwrap()
    }

    fn rendered(form: Form) -> Value {
        let name = PackageName::parse("@s/x").unwrap();
        serde_json::from_slice(&parsed().render(&name, form, REGISTRY)).unwrap()
    }

    #[test]
    fn full_form_points_every_tarball_here_in_the_registry_layout() {
        let doc = rendered(Form::Full);
        assert_eq!(
            doc["versions"]["1.0.0"]["dist"]["tarball"],
            "http://larder:8080/npm/team/@s/x/-/x-1.0.0.tgz"
        );
        assert_eq!(
            doc["versions"]["1.1.0"]["dist"]["tarball"],
            "http://larder:8080/npm/team/@s/x/-/x-1.1.0.tgz"
        );
        assert!(doc["versions"].get("../../evil").is_none());
        // Everything else is the upstream's.
        assert_eq!(doc["readme"], "a long readme");
        assert_eq!(doc["versions"]["1.0.0"]["scripts"]["test"], "x");
        assert_eq!(
            doc["versions"]["1.0.0"]["dist"]["shasum"],
            "0000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn abbreviated_form_keeps_what_install_needs() {
        let doc = rendered(Form::Abbreviated);
        let keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["dist-tags", "modified", "name", "versions"]);
        assert_eq!(doc["modified"], "2026-01-02T03:04:05.000Z");
        let v = &doc["versions"]["1.0.0"];
        assert_eq!(v["dependencies"]["a"], "^1");
        assert!(v.get("readme").is_none() && v.get("scripts").is_none());
        assert_eq!(
            v["dist"]["tarball"],
            "http://larder:8080/npm/team/@s/x/-/x-1.0.0.tgz"
        );
    }

    #[test]
    fn tarball_lookup_gives_the_upstream_url_and_hash() {
        let p = parsed();
        let t = p.tarball("1.0.0").unwrap();
        assert_eq!(
            t.upstream_url,
            "https://upstream.example/@s/x/-/x-1.0.0.tgz"
        );
        assert_eq!(
            t.expected.unwrap().algorithm,
            super::super::integrity::Algorithm::Sha512
        );
        // Not http(s), not a version, not there: nothing to fetch.
        assert_eq!(p.tarball("1.1.0"), None);
        assert_eq!(p.tarball("../../evil"), None);
        assert_eq!(p.tarball("9.9.9"), None);
    }

    #[test]
    fn accept_negotiation() {
        let npm = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";
        assert_eq!(Form::from_accept(Some(npm)), Form::Abbreviated);
        assert_eq!(Form::from_accept(Some("application/json")), Form::Full);
        assert_eq!(Form::from_accept(None), Form::Full);
        assert_eq!(
            Form::from_accept(Some(
                "application/vnd.npm.install-v1+json;q=0, application/json"
            )),
            Form::Full
        );
        assert_eq!(Form::Abbreviated.content_type(), ABBREVIATED);
    }

    #[test]
    fn bounded_and_shaped() {
        let body = upstream().to_string();
        assert_eq!(
            Packument::parse(body.as_bytes(), 10).err(),
            Some(PackumentError::TooLarge { limit: 10 })
        );
        assert!(matches!(
            Packument::parse(b"{", 100),
            Err(PackumentError::NotJson(_))
        ));
        assert_eq!(
            Packument::parse(b"[]", 100).err(),
            Some(PackumentError::NotPackument)
        );
        assert_eq!(
            Packument::parse(br#"{"versions":[]}"#, 100).err(),
            Some(PackumentError::NotPackument)
        );
    }
}
