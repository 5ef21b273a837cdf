//! The real `turbo` CLI (npm package pinned in tests/node/package.json;
//! `npm ci --prefix tests/node` installs it) against Larder's `/v8/artifacts` API: a
//! two-package workspace is built twice with no local cache; the second
//! run replays every task from the remote cache ("FULL TURBO").

mod common;
mod httpcache_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{client, require_tool, TestServer};
use httpcache_support::*;
use serde_json::Value;

/// A two-package npm workspace (`b` depends on `a`) in a fresh git repo.
fn workspace(signed: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "package.json",
        r#"{"name":"ws","private":true,"packageManager":"npm@10.0.0","workspaces":["packages/*"]}"#,
    );
    let remote = if signed {
        r#","remoteCache":{"signature":true}"#
    } else {
        ""
    };
    write(
        "turbo.json",
        &format!(
            r#"{{"tasks":{{"build":{{"dependsOn":["^build"],"outputs":["dist/**"]}}}}{remote}}}"#
        ),
    );
    for (name, deps) in [("a", ""), ("b", r#","dependencies":{"a":"*"}"#)] {
        write(
            &format!("packages/{name}/package.json"),
            &format!(
                r#"{{"name":"{name}","version":"1.0.0"{deps},"scripts":{{"build":"mkdir -p dist && echo built-{name} > dist/out.txt"}}}}"#
            ),
        );
    }
    // Outputs must not count as inputs, or the second run hashes differently.
    write(".gitignore", "dist\n.turbo\nnode_modules\n");
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git runs")
            .status
            .success();
        assert!(ok, "git {args:?} failed");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "workspace"]);
    dir
}

/// The turbo binary plus git and npm (turbo runs scripts through npm).
fn tools() -> Option<PathBuf> {
    require_tool("git")?;
    require_tool("npm")?;
    require_npm_tool("node", "turbo")
}

/// Runs `turbo run build` against `server` with local caching off; returns
/// stdout and the run summary.
async fn build(
    turbo: &Path,
    ws: &Path,
    server: &TestServer,
    token: &str,
    team: &str,
) -> (String, Value) {
    // Nothing from an earlier run may be reused locally.
    for stale in [".turbo", "packages/a/dist", "packages/b/dist"] {
        let _ = std::fs::remove_dir_all(ws.join(stale));
    }
    let mut cmd = tokio::process::Command::new(turbo);
    for (k, _) in std::env::vars() {
        if k.starts_with("TURBO_") {
            cmd.env_remove(k);
        }
    }
    let run = cmd
        .args(["run", "build", "--summarize", "--cache=remote:rw"])
        .arg(format!("--api={}", server.base()))
        .arg(format!("--token={token}"))
        .arg(format!("--team={team}"))
        .current_dir(ws)
        .env("TURBO_TELEMETRY_DISABLED", "1")
        .env("DO_NOT_TRACK", "1")
        .env("TURBO_NO_UPDATE_NOTIFIER", "1")
        .env(
            "TURBO_REMOTE_CACHE_SIGNATURE_KEY",
            "larder-test-signing-secret",
        )
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("turbo finishes")
        .expect("turbo runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "turbo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = ws.join(".turbo/runs");
    let summary = std::fs::read_dir(&runs)
        .expect("turbo wrote a run summary")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .expect("a summary file");
    let summary = serde_json::from_slice(&std::fs::read(summary.path()).unwrap()).unwrap();
    (stdout, summary)
}

/// (task id, cache status, cache source) of every task in a run summary.
fn task_caches(summary: &Value) -> Vec<(String, String, String)> {
    let tasks = summary["tasks"].as_array().expect("tasks in the summary");
    tasks
        .iter()
        .map(|t| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&t["taskId"]),
                s(&t["cache"]["status"]),
                s(&t["cache"]["source"]),
            )
        })
        .collect()
}

async fn second_run_is_full_turbo(signed: bool) {
    let Some(turbo) = tools() else { return };
    let s = token_server().await;
    let t = token(&s, &[("web", RW)]);
    let ws = workspace(signed);

    let (_, first) = build(&turbo, ws.path(), &s, &t, "web").await;
    let caches = task_caches(&first);
    assert_eq!(caches.len(), 2, "{caches:?}");
    assert!(
        caches.iter().all(|(_, status, _)| status == "MISS"),
        "{caches:?}"
    );

    let (stdout, second) = build(&turbo, ws.path(), &s, &t, "web").await;
    assert!(stdout.contains("FULL TURBO"), "{stdout}");
    for (task, status, source) in task_caches(&second) {
        assert_eq!(
            (status.as_str(), source.as_str()),
            ("HIT", "REMOTE"),
            "{task}"
        );
    }
    for pkg in ["a", "b"] {
        let out = std::fs::read_to_string(ws.path().join(format!("packages/{pkg}/dist/out.txt")));
        assert_eq!(out.unwrap().trim(), format!("built-{pkg}"));
    }

    // The artifacts live in the team's namespace, with their metadata.
    let hash = second["tasks"][0]["hash"].as_str().unwrap().to_owned();
    let res = client()
        .head(s.url(&format!("/v8/artifacts/{hash}?slug=web")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-artifact-duration"));
    assert_eq!(res.headers().contains_key("x-artifact-tag"), signed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_build_is_a_remote_cache_hit() {
    second_run_is_full_turbo(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_artifacts_keep_their_tag() {
    // turbo signs each artifact (x-artifact-tag) and refuses a download
    // whose tag is missing or wrong: a hit proves the tag came back intact.
    second_run_is_full_turbo(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_reads_but_does_not_write() {
    let Some(turbo) = tools() else { return };
    let s = token_server().await;
    let ro = token(&s, &[("web", RO)]);
    let ws = workspace(false);
    let (_, first) = build(&turbo, ws.path(), &s, &ro, "web").await;
    assert!(task_caches(&first).iter().all(|(_, st, _)| st == "MISS"));
    // turbo reported the 403s and went on; nothing was stored.
    assert!(s.stored_blobs().await.is_empty());
    let (_, second) = build(&turbo, ws.path(), &s, &ro, "web").await;
    assert!(task_caches(&second).iter().all(|(_, st, _)| st == "MISS"));
}
