//! The npm side of the proxy tests: a real Verdaccio (pinned in
//! tests/node/package.json) as the upstream registry, on a free loopback
//! port with a temp config and storage and no uplinks (no internet), the
//! packages the tests publish to it, and the real `npm` CLI in an isolated
//! environment (its own HOME, cache and userconfig).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::common;

pub mod upstream;

/// The scoped package the tests publish, and the unscoped one that
/// depends on it.
pub const SCOPED: &str = "@larder-test/greet";
pub const DEPENDENT: &str = "larder-test-app";

/// Node, npm and Verdaccio, or None after a skip (a failure under CI=true).
pub struct Tools {
    pub node: PathBuf,
    pub npm: PathBuf,
    /// pnpm and yarn 1, pinned in tests/node next to Verdaccio.
    pub pnpm: PathBuf,
    pub yarn: PathBuf,
    verdaccio: PathBuf,
}

pub fn tools() -> Option<Tools> {
    let node = common::require_tool("node")?;
    let npm = common::require_tool("npm")?;
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/node_modules");
    let verdaccio = modules.join("verdaccio/bin/verdaccio");
    let pnpm = modules.join("pnpm/bin/pnpm.cjs");
    let yarn = modules.join("yarn/bin/yarn.js");
    if ![&verdaccio, &pnpm, &yarn].iter().all(|p| p.is_file()) {
        common::skip("verdaccio, pnpm or yarn is missing; run `npm ci --prefix tests/node`");
        return None;
    }
    Some(Tools {
        node,
        npm,
        pnpm,
        yarn,
        verdaccio,
    })
}

/// A running Verdaccio; killed when dropped.
pub struct Verdaccio {
    pub url: String,
    child: Child,
    /// Its storage and config, which outlive a stop.
    dir: PathBuf,
}

impl Verdaccio {
    /// Starts Verdaccio with its files under `dir` (created). Anyone may
    /// read; publishing needs a user, which `add_user` creates.
    pub fn start(tools: &Tools, dir: &Path) -> Verdaccio {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "storage: {storage}\n\
                 auth:\n  htpasswd:\n    file: {htpasswd}\n\
                 uplinks: {{}}\n\
                 packages:\n  '@*/*':\n    access: $all\n    publish: $authenticated\n  \
                 '**':\n    access: $all\n    publish: $authenticated\n\
                 log: {{ type: stdout, format: pretty, level: warn }}\n",
                storage = dir.join("storage").display(),
                htpasswd = dir.join("htpasswd").display(),
            ),
        )
        .unwrap();
        // Verdaccio cannot report a port it was given as 0, so it gets one
        // that was free a moment ago; a lost race is retried.
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&tools.node)
                .arg(&tools.verdaccio)
                .arg("--config")
                .arg(&config)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn verdaccio");
            match wait_for_line(&mut child, "http address", Duration::from_secs(60)) {
                Ok(()) => {
                    return Verdaccio {
                        url: format!("http://127.0.0.1:{port}"),
                        child,
                        dir: dir.to_owned(),
                    }
                }
                Err(log) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = log;
                }
            }
        }
        panic!("verdaccio did not start:\n{last}");
    }

    /// Creates a user (Verdaccio's htpasswd plugin registers on first
    /// login) and returns its token.
    pub async fn add_user(&self, name: &str) -> String {
        let res = common::client()
            .put(format!("{}/-/user/org.couchdb.user:{name}", self.url))
            .json(&serde_json::json!({ "name": name, "password": "larder-test-password" }))
            .send()
            .await
            .expect("verdaccio answers");
        assert!(res.status().is_success(), "adduser: {}", res.status());
        let body: serde_json::Value = res.json().await.unwrap();
        body["token"].as_str().expect("a token").to_owned()
    }

    /// Stops it for good: what an upstream outage looks like.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Verdaccio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits until the child prints a line containing `needle` on stdout or
/// stderr; Err(log) when it exits or the time runs out first. Both pipes
/// keep being drained afterwards, so the child never blocks on them.
fn wait_for_line(child: &mut Child, needle: &str, timeout: Duration) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<String>();
    let pipes: Vec<Box<dyn std::io::Read + Send>> = vec![
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for pipe in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let deadline = std::time::Instant::now() + timeout;
    let mut log = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                log.push(line);
                if found {
                    return Ok(());
                }
            }
            Err(_) => return Err(log.join("\n")),
        }
    }
}

/// The `npm` CLI with a home, cache and userconfig of its own under `dir`,
/// so nothing of the machine's npm setup leaks in or is touched.
pub struct Npm {
    npm: PathBuf,
    node: PathBuf,
    pnpm: PathBuf,
    yarn: PathBuf,
    path_env: String,
    pub home: PathBuf,
    pub cache: PathBuf,
    pub userconfig: PathBuf,
}

impl Npm {
    pub fn new(tools: &Tools, dir: &Path) -> Npm {
        let home = dir.join("home");
        let cache = dir.join("npm-cache");
        std::fs::create_dir_all(&home).unwrap();
        Npm {
            npm: tools.npm.clone(),
            node: tools.node.clone(),
            pnpm: tools.pnpm.clone(),
            yarn: tools.yarn.clone(),
            path_env: std::env::var("PATH").unwrap_or_default(),
            userconfig: home.join(".npmrc"),
            home,
            cache,
        }
    }

    /// Writes the user `.npmrc`.
    pub fn config(&self, npmrc: &str) {
        std::fs::write(&self.userconfig, npmrc).unwrap();
    }

    /// Empties npm's cache, pnpm's store and yarn's cache, so the next
    /// install fetches everything again.
    pub fn clear_cache(&self) {
        for dir in [&self.cache, &self.pnpm_store(), &self.yarn_cache()] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).unwrap();
            }
        }
    }

    fn pnpm_store(&self) -> PathBuf {
        self.cache.with_file_name("pnpm-store")
    }

    fn yarn_cache(&self) -> PathBuf {
        self.cache.with_file_name("yarn-cache")
    }

    /// Runs `npm ARGS…` in `cwd`; the output, whatever the exit status.
    pub fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        self.command(Command::new(&self.npm), cwd, args)
    }

    /// Runs `pnpm ARGS…` in `cwd` (its store under the same temp dir, its
    /// config from the same user `.npmrc`) and fails the test unless it
    /// succeeds.
    pub fn pnpm(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.pnpm)
            .arg("--store-dir")
            .arg(self.pnpm_store());
        let out = self.command(cmd, cwd, args);
        assert_success("pnpm", args, &out);
        out
    }

    /// Runs yarn 1 the same way (its own cache folder, the same `.npmrc`).
    pub fn yarn(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.yarn)
            .arg("--cache-folder")
            .arg(self.yarn_cache())
            .arg("--non-interactive")
            .arg("--no-progress");
        let out = self.command(cmd, cwd, args);
        assert_success("yarn", args, &out);
        out
    }

    fn command(&self, mut cmd: Command, cwd: &Path, args: &[&str]) -> Output {
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("npm_config_userconfig", &self.userconfig)
            .env("npm_config_cache", &self.cache)
            .env("npm_config_update_notifier", "false")
            .env("npm_config_audit", "false")
            .env("npm_config_fund", "false")
            .env("npm_config_loglevel", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run npm or pnpm")
    }

    /// Runs `npm ARGS…` and fails the test, with npm's output, unless it succeeds.
    pub fn ok(&self, cwd: &Path, args: &[&str]) -> Output {
        let out = self.run(cwd, args);
        assert_success("npm", args, &out);
        out
    }
}

fn assert_success(program: &str, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "{program} {} failed: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a package directory: package.json and an index.js that says who
/// it is (and, for the dependent, what its dependency says).
fn write_package(dir: &Path, name: &str, version: &str, deps: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let deps: serde_json::Map<_, _> = deps
        .iter()
        .map(|(n, v)| (n.to_string(), serde_json::Value::from(*v)))
        .collect();
    let manifest = serde_json::json!({
        "name": name,
        "version": version,
        "main": "index.js",
        "license": "MIT",
        "dependencies": deps,
    });
    std::fs::write(dir.join("package.json"), manifest.to_string()).unwrap();
    let body = match deps.keys().next() {
        Some(dep) => {
            format!("module.exports = () => '{name}@{version} + ' + require('{dep}')();\n")
        }
        None => format!("module.exports = () => '{name}@{version}';\n"),
    };
    std::fs::write(dir.join("index.js"), body).unwrap();
}

/// Publishes the test packages to `registry` (an upstream URL) as a user
/// holding `token`: `@larder-test/greet` 1.0.0 and 1.1.0, and
/// `larder-test-app` 1.0.0 depending on `@larder-test/greet@^1.0.0`.
pub fn publish_fixtures(npm: &Npm, registry: &str, token: &str, dir: &Path) {
    let host = registry.trim_start_matches("http:").trim_end_matches('/');
    let npmrc = dir.join("publish.npmrc");
    std::fs::write(&npmrc, format!("{host}/:_authToken={token}\n")).unwrap();
    let npmrc = npmrc.display().to_string();
    let publish = |pkg: &Path| {
        npm.ok(
            pkg,
            &["publish", "--registry", registry, "--userconfig", &npmrc],
        );
    };
    for version in ["1.0.0", "1.1.0"] {
        let pkg = dir.join(format!("greet-{version}"));
        write_package(&pkg, SCOPED, version, &[]);
        publish(&pkg);
    }
    let pkg = dir.join("app");
    write_package(&pkg, DEPENDENT, "1.0.0", &[(SCOPED, "^1.0.0")]);
    publish(&pkg);
}

/// A project that depends on the dependent package, ready for `npm install`.
pub fn project(dir: &Path) -> PathBuf {
    let root = dir.join("project");
    std::fs::create_dir_all(&root).unwrap();
    let manifest = serde_json::json!({
        "name": "larder-npm-consumer",
        "version": "0.0.0",
        "private": true,
        "dependencies": { DEPENDENT: "1.0.0" },
    });
    std::fs::write(root.join("package.json"), manifest.to_string()).unwrap();
    root
}

/// Runs the installed packages with node: what the app's index.js says.
pub fn run_installed(tools: &Tools, project: &Path) -> String {
    let out = Command::new(&tools.node)
        .arg("-e")
        .arg(format!("process.stdout.write(require('{DEPENDENT}')())"))
        .current_dir(project)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `resolved` URL of every package in the project's package-lock.json.
pub fn lock_resolved(project: &Path) -> Vec<(String, String)> {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.join("package-lock.json")).unwrap()).unwrap();
    lock["packages"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, p)| {
            (
                path.clone(),
                p["resolved"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
