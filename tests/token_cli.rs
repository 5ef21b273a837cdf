//! `larder token create`: offline minting against a data dir's signing key
//! (created 0600 on first use), the token alone on the last stdout line, the
//! permission flags and `--ttl`, `auth.signing_key_file` from `--config`, and
//! tokens minted while a server holds the data dir — each accepted by a real
//! `larder serve`.

mod auth_support;
mod common;
mod oci_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use auth_support::*;
use common::process::{larder_bin, LarderProcess};
use larder::auth::token::verify;
use larder::auth::{Claims, READ, WRITE};
use oci_support::*;
use reqwest::{Client, StatusCode};

/// `larder ARGS` with no LARDER variables from the developer's environment.
fn larder(args: &[&str]) -> Output {
    let mut cmd = Command::new(larder_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LARDER") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run larder")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `larder token create ARGS`, asserts success, and returns the token:
/// the last stdout line, which must hold the token and nothing else.
fn create(args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = larder(&all);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "larder {all:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.ends_with('\n'),
        "stdout ends with a newline: {stdout:?}"
    );
    let last = stdout.lines().last().expect("stdout has lines");
    assert_eq!(last, last.trim(), "the token line has no padding: {last:?}");
    let parts: Vec<&str> = last.split('.').collect();
    assert!(
        parts.len() == 3
            && parts.iter().all(|p| !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        "the last stdout line is a JWT and nothing else: {last:?}\nstdout:\n{stdout}"
    );
    last.to_owned()
}

/// Runs `larder token create ARGS` expecting failure; returns stderr.
fn create_fails(args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = larder(&all);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "larder {all:?} should fail\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stdout
            .lines()
            .any(|l| l.split('.').count() == 3 && !l.contains(' ')),
        "a refused token create printed a token:\n{stdout}"
    );
    stderr
}

/// A data dir as a server leaves it after its first start (format marker,
/// no key yet): what `token create` mints against.
fn data_dir(parent: &Path) -> std::path::PathBuf {
    let data = parent.join("data");
    drop(larder::datadir::DataDir::open(&data).expect("open a data dir"));
    assert!(!data.join("signing.key").exists());
    data
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn verified(key_file: &Path, token: &str) -> Claims {
    verify(&read_key(key_file), token)
        .unwrap_or_else(|e| panic!("token does not verify with {}: {e}", key_file.display()))
}

/// `larder serve` in token mode on `data_dir` (with `extra` flags).
fn serve(data_dir: &Path, extra: &[&str]) -> LarderProcess {
    LarderProcess::start_env(data_dir, extra, &[("LARDER__AUTH__MODE", "token")])
}

/// Proves `token` may push to and pull from `repo` on `server`, and is
/// refused (403) in `team-other`.
async fn assert_accepted(server: &LarderProcess, token: &str, repo: &str) {
    let base = format!("http://{}", server.addr);
    let client = bearer_client(token);
    let res = client.get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "GET /v2/ with the CLI token");
    let bytes = format!("pushed to {repo} with a CLI token").into_bytes();
    let digest = push_blob(&client, &base, repo, &bytes).await;
    assert_eq!(get_blob(&client, &base, repo, &digest).await, bytes);
    let res = client
        .post(format!("{base}/v2/team-other/app/blobs/uploads/"))
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .send()
        .await
        .unwrap();
    expect_denied(res).await;
}

async fn assert_refused(server: &LarderProcess, token: &str) {
    let res = bearer_client(token)
        .get(server.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "GET /v2/");
    expect_unauthorized(res, &format!("http://{}", server.addr)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_token_is_printed_last_signed_by_a_new_0600_key_and_accepted_later() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let token = create(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--namespace",
        "team-a",
        "--read",
        "--write",
        "--name",
        "ci",
    ]);
    let key_file = data.join("signing.key");
    assert_eq!(mode_of(&key_file), 0o600, "signing.key mode");
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let claims = verified(&key_file, &token);
    assert_eq!(claims.sub, "ci");
    assert!(!claims.larder_admin);
    assert_eq!(claims.parent, None);
    assert_eq!(claims.permission("team-a"), READ | WRITE);
    assert_eq!(claims.permission("team-b"), 0);
    assert_eq!(claims.exp - claims.iat, 30 * 86400, "default --ttl is 30d");
    // The second token is signed with the same key; the file is not rewritten.
    let again = create(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--namespace",
        "team-b",
        "--namespace",
        "team-c",
        "--read",
    ]);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_text);
    let claims = verified(&key_file, &again);
    assert_eq!(claims.sub, "cli", "the default --name");
    assert_eq!(claims.permission("team-b"), READ);
    assert_eq!(claims.permission("team-c"), READ);
    assert_eq!(claims.permission("team-a"), 0);

    // A server started later on this data dir accepts the first token.
    let server = serve(&data, &[]);
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key_text,
        "the server keeps the key the CLI made"
    );
    assert_accepted(&server, &token, "team-a/app").await;
    // The read-only one reads but does not write.
    let base = format!("http://{}", server.addr);
    let reader = bearer_client(&again);
    let res = reader
        .get(format!("{base}/v2/team-b/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), StatusCode::UNAUTHORIZED);
    assert_ne!(res.status(), StatusCode::FORBIDDEN);
    let res = reader
        .post(format!("{base}/v2/team-b/app/blobs/uploads/"))
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .send()
        .await
        .unwrap();
    expect_denied(res).await;
    // And a token made with another key is refused.
    let other_key: [u8; 32] = rand::random();
    assert_refused(&server, &token_with_key(&other_key)).await;
}

fn token_with_key(key: &[u8]) -> String {
    auth_support::token(key, &[("team-a", RW)])
}

#[test]
fn a_token_without_read_write_or_admin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let d = data.to_str().unwrap();
    let stderr = create_fails(&["--data-dir", d, "--namespace", "team-a"]);
    for flag in ["--read", "--write", "--admin"] {
        assert!(stderr.contains(flag), "the error names {flag}:\n{stderr}");
    }
    assert!(
        !data.join("signing.key").exists(),
        "a refused token create leaves no key behind"
    );
    // --namespace is required.
    let stderr = create_fails(&["--data-dir", d, "--read"]);
    assert!(stderr.contains("--namespace"), "{stderr}");

    // Each flag alone is enough (an admin token names every namespace).
    for flag in ["--read", "--write", "--admin"] {
        let ns = if flag == "--admin" { "*" } else { "team-a" };
        let t = create(&["--data-dir", d, "--namespace", ns, flag]);
        let claims = verified(&data.join("signing.key"), &t);
        let (bits, admin) = match flag {
            "--read" => (READ, false),
            "--write" => (WRITE, false),
            _ => (0, true),
        };
        assert_eq!(claims.permission("team-a"), bits, "{flag}");
        assert_eq!(claims.larder_admin, admin, "{flag}");
    }
}

#[test]
fn an_admin_token_limited_to_namespaces_or_a_bad_namespace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let d = data.to_str().unwrap();
    for args in [
        &["--namespace", "team-a", "--admin"][..],
        &["--namespace", "*", "--namespace", "team-a", "--admin"],
        &["--namespace", "team-a", "--read", "--write", "--admin"],
    ] {
        let mut all = vec!["--data-dir", d];
        all.extend_from_slice(args);
        let stderr = create_fails(&all);
        assert!(stderr.contains("admin token"), "{args:?}: {stderr}");
        assert!(stderr.contains('*'), "says how to mint one: {stderr}");
    }
    for bad in ["../..", "team/a", "a%00", "-x", ""] {
        let stderr = create_fails(&["--data-dir", d, "--namespace", bad, "--read"]);
        assert!(stderr.contains("namespace"), "{bad:?}: {stderr}");
    }
    assert!(
        !data.join("signing.key").exists(),
        "a refused token create leaves no key behind"
    );
    let t = create(&["--data-dir", d, "--namespace", "*", "--admin", "--read"]);
    let claims = verified(&data.join("signing.key"), &t);
    assert!(claims.larder_admin);
    assert_eq!(claims.permission("team-b"), READ);
}

#[test]
fn ttl_is_parsed_as_a_duration() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let d = data.to_str().unwrap();
    let key_file = data.join("signing.key");
    for (ttl, secs) in [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43_200),
        ("7d", 604_800),
        ("1h 30m", 5_400),
    ] {
        let t = create(&[
            "--data-dir",
            d,
            "--namespace",
            "team-a",
            "--read",
            "--ttl",
            ttl,
        ]);
        let claims = verified(&key_file, &t);
        assert_eq!(claims.exp - claims.iat, secs, "--ttl {ttl}");
    }
    for bad in ["soon", "-5m", "12 parsecs"] {
        let arg = format!("--ttl={bad}");
        let stderr = create_fails(&["--data-dir", d, "--namespace", "team-a", "--read", &arg]);
        assert!(
            stderr.contains("--ttl") || stderr.contains(bad),
            "the error names --ttl or the value {bad:?}:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_with_signing_key_file_signs_with_that_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = dir.path().join("secrets").join("larder.key");
    let config = dir.path().join("larder.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = {:?}\n\n[auth]\nmode = \"token\"\nsigning_key_file = {:?}\n",
            data.to_str().unwrap(),
            key_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let token = create(&["--config", c, "--namespace", "team-a", "--read", "--write"]);
    assert_eq!(mode_of(&key_file), 0o600, "the configured key file's mode");
    assert!(
        !data.join("signing.key").exists(),
        "no key is made in the data dir when auth.signing_key_file is set"
    );
    let claims = verified(&key_file, &token);
    assert_eq!(claims.permission("team-a"), READ | WRITE);

    // The server with the same config accepts it …
    let server = LarderProcess::start(&data, &["--config", c]);
    assert_accepted(&server, &token, "team-a/app").await;
    // … and refuses a token signed with the data dir's default key.
    let stray = create(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--namespace",
        "team-a",
        "--read",
        "--write",
    ]);
    assert!(data.join("signing.key").exists());
    assert_refused(&server, &stray).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_created_while_the_server_runs_is_accepted_live() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve(&data, &[]);
    assert!(
        data.join("larder.lock").exists(),
        "the server holds the data dir"
    );
    let key_file = data.join("signing.key");
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let token = create(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--namespace",
        "team-a",
        "--read",
        "--write",
        "--ttl",
        "1h",
    ]);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_text);
    assert_accepted(&server, &token, "team-a/live").await;
    let wildcard = create(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--namespace",
        "*",
        "--read",
        "--write",
    ]);
    let client: Client = bearer_client(&wildcard);
    let base = format!("http://{}", server.addr);
    for repo in ["team-a/live", "team-b/x", "zeta"] {
        push_blob(&client, &base, repo, repo.as_bytes()).await;
    }
}

/// Without `--data-dir` or `--config`, the default `./larder-data` used to be
/// created with a key of its own that no server knew; now a missing or
/// never-opened data dir is refused and nothing is written.
#[test]
fn a_data_dir_no_server_has_opened_is_refused_and_left_untouched() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(larder_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LARDER") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["token", "create", "--namespace", "team-a", "--read"])
        .current_dir(cwd.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run larder");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.contains("--data-dir"), "says what to pass: {stderr}");
    assert!(text(&out.stdout).is_empty(), "no token is printed");
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing is created in the current directory"
    );

    // An existing directory no server has opened: refused the same way.
    let empty = cwd.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let stderr = create_fails(&[
        "--data-dir",
        empty.to_str().unwrap(),
        "--namespace",
        "a",
        "--read",
    ]);
    assert!(stderr.contains("not a larder data dir"), "{stderr}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // Once a server has opened it, the same command mints.
    let data = data_dir(cwd.path());
    create(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--namespace",
        "a",
        "--read",
    ]);
    assert_eq!(mode_of(&data.join("signing.key")), 0o600);
}

/// `--metrics` grants scraping a token-guarded /metrics; it covers the whole
/// server, so it needs the namespace `*`.
#[test]
fn the_metrics_permission_is_granted_on_every_namespace_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let d = data.to_str().unwrap();
    let t = create(&["--data-dir", d, "--namespace", "*", "--metrics"]);
    let claims = verified(&data.join("signing.key"), &t);
    assert_eq!(claims.permission("team-a"), larder::auth::METRICS);
    assert!(!claims.larder_admin);
    let stderr = create_fails(&["--data-dir", d, "--namespace", "team-a", "--metrics"]);
    assert!(
        stderr.contains("metrics") && stderr.contains('*'),
        "{stderr}"
    );
}
