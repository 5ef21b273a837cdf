//! The npm side of the proxy bench: Verdaccio (pinned in tests/node) on a
//! loopback port with no uplinks, tiny generated packages published to it
//! over its HTTP API (as `npm publish` sends them, without a node start per
//! package), a project whose lockfile names them all, and `npm ci` in an
//! environment of its own. A bench cannot import tests/npm_support, so the
//! few lines it needs of it are repeated here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::Digest as _;

use crate::common;

pub struct Tools {
    node: PathBuf,
    npm: PathBuf,
    verdaccio: PathBuf,
}

impl Tools {
    /// Node, npm and the pinned Verdaccio, or why the bench cannot run.
    pub fn find() -> Result<Tools, String> {
        let which = |name: &str| -> Result<PathBuf, String> {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| format!("{name} is not on PATH"))
        };
        let verdaccio = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/node/node_modules/verdaccio/bin/verdaccio");
        if !verdaccio.is_file() {
            return Err("verdaccio is missing; run `npm ci --prefix tests/node`".into());
        }
        Ok(Tools {
            node: which("node")?,
            npm: which("npm")?,
            verdaccio,
        })
    }
}

/// A running Verdaccio; stopped when dropped.
pub struct Verdaccio {
    pub url: String,
    child: Child,
}

impl Verdaccio {
    pub fn start(tools: &Tools, dir: &Path) -> Verdaccio {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "storage: {}\nauth:\n  htpasswd:\n    file: {}\nuplinks: {{}}\n\
                 packages:\n  '**':\n    access: $all\n    publish: $authenticated\n\
                 log: {{ type: stdout, format: pretty, level: error }}\n",
                dir.join("storage").display(),
                dir.join("htpasswd").display(),
            ),
        )
        .unwrap();
        let addr = common::free_port();
        let mut child = Command::new(&tools.node)
            .arg(&tools.verdaccio)
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn verdaccio");
        common::wait_http_200(addr, "/-/ping", &mut child, Duration::from_secs(60));
        Verdaccio {
            url: format!("http://{addr}"),
            child,
        }
    }

    /// A user's token (Verdaccio's htpasswd registers on first login).
    pub async fn token(&self, c: &reqwest::Client) -> String {
        let res = c
            .put(format!("{}/-/user/org.couchdb.user:bench", self.url))
            .json(&serde_json::json!({ "name": "bench", "password": "bench-password" }))
            .send()
            .await
            .expect("verdaccio answers");
        let body: serde_json::Value = res.json().await.expect("adduser JSON");
        body["token"].as_str().expect("a token").to_owned()
    }
}

impl Drop for Verdaccio {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

/// A generated package: `name@1.0.0`, its tarball and SRI hash.
pub struct Package {
    pub name: String,
    tgz: Vec<u8>,
    integrity: String,
}

impl Package {
    /// Package `i`: a package.json and an index.js of about a kilobyte,
    /// packed by tar as `npm pack` lays it out (`package/…`).
    pub fn make(dir: &Path, i: usize) -> Package {
        let name = format!("larder-bench-{i:03}");
        let root = dir.join(&name);
        let pkg = root.join("package");
        std::fs::create_dir_all(&pkg).unwrap();
        let manifest = serde_json::json!({
            "name": name, "version": "1.0.0", "main": "index.js", "license": "MIT",
        });
        std::fs::write(pkg.join("package.json"), manifest.to_string()).unwrap();
        let filler = format!("// {}\n", "generated ".repeat(100));
        let js = format!("{filler}module.exports = () => '{name}';\n");
        std::fs::write(pkg.join("index.js"), js).unwrap();
        let tgz = root.join("package.tgz");
        let status = Command::new("tar")
            .arg("-czf")
            .arg(&tgz)
            .arg("-C")
            .arg(&root)
            .arg("package")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar failed");
        let tgz = std::fs::read(tgz).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let integrity = format!("sha512-{}", b64.encode(sha2::Sha512::digest(&tgz)));
        Package {
            name,
            tgz,
            integrity,
        }
    }

    pub fn file(&self) -> String {
        format!("{0}/-/{0}-1.0.0.tgz", self.name)
    }

    /// `npm publish`'s request: the packument with the tarball attached.
    pub async fn publish(&self, c: &reqwest::Client, registry: &str, token: &str) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let file = format!("{}-1.0.0.tgz", self.name);
        let doc = serde_json::json!({
            "_id": self.name,
            "name": self.name,
            "dist-tags": { "latest": "1.0.0" },
            "versions": { "1.0.0": {
                "name": self.name, "version": "1.0.0", "main": "index.js", "license": "MIT",
                "_id": format!("{}@1.0.0", self.name),
                "dist": {
                    "integrity": self.integrity,
                    "shasum": hex::encode(sha1::Sha1::digest(&self.tgz)),
                    "tarball": format!("{registry}/{}", self.file()),
                },
            }},
            "_attachments": { file: {
                "content_type": "application/octet-stream",
                "data": b64.encode(&self.tgz),
                "length": self.tgz.len(),
            }},
        });
        let res = c
            .put(format!("{registry}/{}", self.name))
            .bearer_auth(token)
            .json(&doc)
            .send()
            .await
            .expect("verdaccio answers");
        assert!(res.status().is_success(), "publish: {}", res.status());
    }
}

/// A project depending on every package, its lockfile resolving them at
/// `registry` (as `npm install` against it would have written it).
pub fn project(dir: &Path, pkgs: &[Package], registry: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let deps: serde_json::Map<_, _> = pkgs
        .iter()
        .map(|p| (p.name.clone(), "1.0.0".into()))
        .collect();
    let manifest = serde_json::json!({
        "name": "bench", "version": "1.0.0", "private": true, "dependencies": deps,
    });
    let mut packages = serde_json::Map::new();
    packages.insert(
        String::new(),
        serde_json::json!({ "name": "bench", "version": "1.0.0", "dependencies": deps }),
    );
    for p in pkgs {
        packages.insert(
            format!("node_modules/{}", p.name),
            serde_json::json!({
                "version": "1.0.0",
                "resolved": format!("{registry}/{}", p.file()),
                "integrity": p.integrity,
                "license": "MIT",
            }),
        );
    }
    let lock = serde_json::json!({
        "name": "bench", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": packages,
    });
    std::fs::write(dir.join("package.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("package-lock.json"), lock.to_string()).unwrap();
    dir.to_owned()
}

/// `npm ci` in a fresh copy of `project` with npm's cache in `home`,
/// installing from `registry` (`replace-registry-host=always` maps the
/// lockfile's URLs onto it); `offline`, from what an earlier run left in
/// that cache (npm's own work alone: no registry is asked). Its wall time.
/// Every run gets directories of its own, never reused: on ext4 without a
/// journal, creating files next to ones just deleted is slow (see
/// `common::spread_subdirs`), which made every run after the first slower.
pub fn npm_ci(
    tools: &Tools,
    project: &Path,
    home: &Path,
    registry: &str,
    offline: bool,
) -> Duration {
    let run = tempfile::tempdir_in(project.parent().unwrap())
        .unwrap()
        .keep();
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(project.join(file), run.join(file)).unwrap();
    }
    std::fs::create_dir_all(home).unwrap();
    let npmrc = home.join(".npmrc");
    std::fs::write(
        &npmrc,
        format!("registry={registry}\nreplace-registry-host=always\n"),
    )
    .unwrap();
    let start = Instant::now();
    let out = Command::new(&tools.npm)
        .arg("ci")
        .args(offline.then_some("--offline"))
        .current_dir(&run)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("npm_config_userconfig", &npmrc)
        .env("npm_config_cache", home.join("cache"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_progress", "false")
        .env("npm_config_loglevel", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run npm");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "npm ci from {registry} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}
