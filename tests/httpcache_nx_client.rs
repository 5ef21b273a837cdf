//! The real Nx CLI (npm package pinned in tests/node/package.json; `npm ci
//! --prefix tests/node` installs it with its native binary) against
//! Larder's `/v1/cache` API through `NX_SELF_HOSTED_REMOTE_CACHE_SERVER`: a
//! two-project workspace is built twice with an empty local cache; the
//! second run takes every task from the remote cache.

mod common;
mod httpcache_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{require_tool, TestServer};
use httpcache_support::*;

/// Two npm-workspace projects (`b` depends on `a`), Nx caching `build`.
fn workspace(nx_modules: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "package.json",
        r#"{"name":"ws","private":true,"workspaces":["packages/*"]}"#,
    );
    write(
        "nx.json",
        r#"{"targetDefaults":{"build":{"cache":true,"dependsOn":["^build"],"outputs":["{projectRoot}/dist"]}}}"#,
    );
    for (name, deps) in [("a", ""), ("b", r#","dependencies":{"a":"*"}"#)] {
        write(
            &format!("packages/{name}/package.json"),
            &format!(
                r#"{{"name":"{name}","version":"1.0.0"{deps},"scripts":{{"build":"mkdir -p dist && echo built-{name} > dist/out.txt"}}}}"#
            ),
        );
    }
    write(".gitignore", "dist\n.nx\nnode_modules\n");
    // Nx loads its project-graph plugins from the workspace's node_modules.
    std::os::unix::fs::symlink(nx_modules, root.join("node_modules")).unwrap();
    let ok = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(root)
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git init failed");
    dir
}

/// The nx binary (plus git and npm, which run the scripts).
fn tools() -> Option<PathBuf> {
    require_tool("git")?;
    require_tool("npm")?;
    require_npm_tool("node", "nx")
}

/// `nx run-many -t build` against `server` with a fresh local cache dir;
/// returns its output.
async fn build(nx: &Path, ws: &Path, server: &TestServer, token: &str) -> String {
    let cache = ws.join(".nx-local-cache");
    for stale in [
        ".nx",
        ".nx-local-cache",
        "packages/a/dist",
        "packages/b/dist",
    ] {
        let _ = std::fs::remove_dir_all(ws.join(stale));
    }
    let mut cmd = tokio::process::Command::new(nx);
    for (k, _) in std::env::vars() {
        if k.starts_with("NX_") {
            cmd.env_remove(k);
        }
    }
    let run = cmd
        .args(["run-many", "-t", "build", "--output-style=static"])
        .current_dir(ws)
        .env("NX_SELF_HOSTED_REMOTE_CACHE_SERVER", server.base())
        .env("NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN", token)
        .env("NX_CACHE_DIRECTORY", &cache)
        .env("NX_DAEMON", "false")
        .env("NX_NO_CLOUD", "true")
        .env("NX_TUI", "false")
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("nx finishes")
        .expect("nx runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "nx failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_build_comes_from_the_remote_cache() {
    let Some(nx) = tools() else { return };
    let s = token_server().await;
    let t = token(&s, &[("nx-team", RW)]);
    let ws = workspace(&nx_modules(&nx));

    let first = build(&nx, ws.path(), &s, &t).await;
    assert!(!first.contains("[remote cache]"), "{first}");
    assert!(!s.stored_blobs().await.is_empty(), "nothing was uploaded");

    let second = build(&nx, ws.path(), &s, &t).await;
    for task in ["nx run a:build", "nx run b:build"] {
        assert!(
            second.contains(&format!("{task}  [remote cache]")),
            "{task} was not a remote hit:\n{second}"
        );
    }
    for pkg in ["a", "b"] {
        let out = std::fs::read_to_string(ws.path().join(format!("packages/{pkg}/dist/out.txt")));
        assert_eq!(out.unwrap().trim(), format!("built-{pkg}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_stores_nothing() {
    let Some(nx) = tools() else { return };
    let s = token_server().await;
    let ro = token(&s, &[("nx-team", RO)]);
    let ws = workspace(&nx_modules(&nx));
    let first = build(&nx, ws.path(), &s, &ro).await;
    assert!(!first.contains("[remote cache]"), "{first}");
    assert!(s.stored_blobs().await.is_empty());
    let second = build(&nx, ws.path(), &s, &ro).await;
    assert!(!second.contains("[remote cache]"), "{second}");
}

/// `tests/node/node_modules` from `tests/node/node_modules/.bin/nx`.
fn nx_modules(nx: &Path) -> PathBuf {
    nx.parent()
        .and_then(Path::parent)
        .expect("nx lives in node_modules/.bin")
        .to_owned()
}
