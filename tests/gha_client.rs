//! The real client: `@actions/cache` (the library behind actions/cache,
//! pinned in tests/node/package.json) saves and restores a directory against
//! a live Larder, once over the v1 API and once over v2. Skips locally when
//! node or tests/node/node_modules is missing; fails under CI=true.

mod common;
mod gha_support;
mod oci_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::TestServer;
use gha_support::*;
use oci_support::{files_under, fixed_bytes};

/// What the library needs to run here.
struct Node {
    node: PathBuf,
    script: PathBuf,
}

fn node() -> Option<Node> {
    let node = common::require_tool("node")?;
    common::require_tool("tar")?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/@actions/cache").is_dir() {
        common::skip("tests/node/node_modules is missing; run `npm ci --prefix tests/node`");
        return None;
    }
    Some(Node {
        node,
        script: dir.join("gha-cache.mjs"),
    })
}

/// Which API the library talks to.
#[derive(Clone, Copy, Debug)]
enum Api {
    V1,
    V2,
}

struct Runner {
    node: Node,
    env: Vec<(String, String)>,
    workspace: PathBuf,
}

impl Runner {
    fn new(node: Node, server: &TestServer, api: Api, temp: &Path) -> Runner {
        let workspace = temp.join("workspace");
        let runner_temp = temp.join("runner-temp");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::create_dir_all(&runner_temp).unwrap();
        let base = format!("{}/", server.base());
        let mut env = vec![
            ("ACTIONS_RUNTIME_TOKEN", token(server, &[rw("repo-main")])),
            ("RUNNER_TEMP", runner_temp.display().to_string()),
            ("GITHUB_WORKSPACE", workspace.display().to_string()),
            // Not GHES: v2 is only used against github.com.
            ("GITHUB_SERVER_URL", "https://github.com".to_owned()),
            // v1 uploads in 1 MiB chunks, so the archive goes up in parallel pieces.
            ("CACHE_UPLOAD_CHUNK_SIZE", "1".to_owned()),
        ];
        match api {
            Api::V1 => env.push(("ACTIONS_CACHE_URL", base)),
            Api::V2 => {
                env.push(("ACTIONS_CACHE_SERVICE_V2", "true".to_owned()));
                env.push(("ACTIONS_RESULTS_URL", base));
            }
        }
        for var in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(var) {
                env.push((var, v));
            }
        }
        Runner {
            node,
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            workspace,
        }
    }

    /// Runs the script and returns the JSON line it ends with.
    async fn run(&self, args: &[&str]) -> serde_json::Value {
        let out = tokio::process::Command::new(&self.node.node)
            .arg(&self.node.script)
            .args(args)
            .current_dir(&self.workspace)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .await
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report = format!("node {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(out.status.success(), "{report}");
        // The library only warns when something fails; a warning is a failure here.
        assert!(!stdout.contains("::warning::"), "{report}");
        assert!(!stdout.contains("::error::"), "{report}");
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or("");
        serde_json::from_str(last).unwrap_or_else(|_| panic!("no JSON result; {report}"))
    }

    fn write(&self, files: &BTreeMap<&str, Vec<u8>>) {
        let dir = self.workspace.join("cached");
        let _ = std::fs::remove_dir_all(&dir);
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    fn assert_restored(&self, files: &BTreeMap<&str, Vec<u8>>) {
        let dir = self.workspace.join("cached");
        let mut found: Vec<PathBuf> = files_under(&dir);
        found.sort();
        let mut expected: Vec<PathBuf> = files.keys().map(|n| dir.join(n)).collect();
        expected.sort();
        assert_eq!(found, expected, "restored files");
        for (name, bytes) in files {
            let got = std::fs::read(dir.join(name)).unwrap();
            assert!(got == *bytes, "{name} differs after restore");
        }
    }
}

fn contents(seed: u32) -> BTreeMap<&'static str, Vec<u8>> {
    BTreeMap::from([
        ("README.txt", format!("generation {seed}\n").into_bytes()),
        // Incompressible, so the archive spans several upload chunks.
        ("nested/deps.bin", fixed_bytes(seed, 3 << 20)),
        (
            "nested/deeper/small.json",
            format!("{{\"seed\":{seed}}}").into_bytes(),
        ),
        ("empty", Vec::new()),
    ])
}

async fn round_trip(api: Api) {
    let Some(node) = node() else {
        return;
    };
    let server = start(|_| {}).await;
    let temp = tempfile::tempdir().unwrap();
    let runner = Runner::new(node, &server, api, temp.path());
    let (first, second) = (contents(1), contents(2));

    runner.write(&first);
    let saved = runner.run(&["save", "deps-linux-1", "cached"]).await;
    // -1 is the library's "not saved" (the script fails on it); v2 reports
    // the entry's id, which is 0 for the first entry of a fresh index.
    assert!(
        saved["cacheId"].as_i64().is_some_and(|id| id >= 0),
        "{saved}"
    );
    runner.write(&second);
    runner.run(&["save", "deps-linux-2", "cached"]).await;

    // A miss on the primary key restores the newest entry under the prefix.
    std::fs::remove_dir_all(runner.workspace.join("cached")).unwrap();
    let restored = runner
        .run(&[
            "restore",
            "cached",
            "deps-linux-3",
            "deps-windows-",
            "deps-linux-",
        ])
        .await;
    assert_eq!(restored["matchedKey"], "deps-linux-2", "{api:?}");
    runner.assert_restored(&second);

    // An exact key restores exactly that entry.
    std::fs::remove_dir_all(runner.workspace.join("cached")).unwrap();
    let restored = runner.run(&["restore", "cached", "deps-linux-1"]).await;
    assert_eq!(restored["matchedKey"], "deps-linux-1", "{api:?}");
    runner.assert_restored(&first);

    let missed = runner.run(&["restore", "cached", "deps-macos-1"]).await;
    assert_eq!(missed["matchedKey"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_cache_library_saves_and_restores_over_v1() {
    round_trip(Api::V1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_cache_library_saves_and_restores_over_v2() {
    round_trip(Api::V2).await;
}
