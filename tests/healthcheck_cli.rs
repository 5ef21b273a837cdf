//! `larder healthcheck`, the real binary against real sockets: exit 0 only
//! when the URL answers 200, and a clear message on every way it can fail.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::larder_bin;
use common::TestServer;

/// `larder healthcheck ARGS` without any LARDER_* variable from the
/// developer's environment.
fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(larder_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LARDER") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("healthcheck")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run larder healthcheck")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_server_passes_on_readyz_and_healthz() {
    let server = TestServer::start().await;
    for path in ["/readyz", "/healthz"] {
        let url = server.url(path);
        let out = tokio::task::spawn_blocking(move || healthcheck(&["--url", &url], &[]))
            .await
            .unwrap();
        assert!(out.status.success(), "{path}: {}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_can_come_from_larder_healthcheck_url() {
    let server = TestServer::start().await;
    let url = server.url("/readyz");
    let out = tokio::task::spawn_blocking(move || {
        healthcheck(&[], &[("LARDER_HEALTHCHECK_URL", url.as_str())])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_closed_port_fails_with_connection_refused() {
    let url = format!("http://127.0.0.1:{}/readyz", closed_port());
    let out = healthcheck(&["--url", &url], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("connection refused"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_other_than_200_fails_and_names_the_status() {
    let server = TestServer::start().await;
    let url = server.url("/no-such-probe");
    let out = tokio::task::spawn_blocking(move || healthcheck(&["--url", &url], &[]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("answered 404"), "{}", stderr(&out));
}

#[test]
fn a_server_that_never_answers_fails_at_the_deadline() {
    // Accepts (the kernel completes the handshake) but never replies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    let started = Instant::now();
    let out = healthcheck(&["--url", &url, "--timeout", "1s"], &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no answer within 1s"),
        "{}",
        stderr(&out)
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "took {took:?}"
    );
    drop(listener);
}

#[test]
fn only_plain_http_urls_are_accepted() {
    let out = healthcheck(&["--url", "https://127.0.0.1:5000/readyz"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("only http://"), "{}", stderr(&out));
}
