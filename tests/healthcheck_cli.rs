//! `larder healthcheck`, the real binary against real sockets: exit 0 only
//! when the URL answers 200, over http:// and https:// (a real TLS server,
//! certificate unchecked or checked with --ca-cert), and a clear message on
//! every way it can fail.

mod common;
mod tls_support;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::larder_bin;
use common::TestServer;
use tls_support::{tls_server, TestCa};

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
fn only_http_and_https_urls_are_accepted() {
    let out = healthcheck(&["--url", "ftp://127.0.0.1:5000/readyz"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only http:// and https://"),
        "{}",
        stderr(&out)
    );
}

/// Runs the check off the async runtime the server under test is on.
async fn healthcheck_async(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        healthcheck(&args, &env)
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_passes_unverified_and_with_the_right_ca() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |_| {}).await;
    let url = format!("https://{}/readyz", server.addr);
    let out = healthcheck_async(strings(&["--url", &url]), vec![]).await;
    assert!(out.status.success(), "unverified: {}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": 200"),
        "{out:?}"
    );

    let ca_cert = ca.ca_path().display().to_string();
    let out = healthcheck_async(strings(&["--url", &url, "--ca-cert", &ca_cert]), vec![]).await;
    assert!(out.status.success(), "--ca-cert: {}", stderr(&out));
    // The same by name: the certificate holds localhost too.
    let url = format!("https://localhost:{}/healthz", server.addr.port());
    let env = vec![("LARDER_HEALTHCHECK_CA_CERT".to_owned(), ca_cert)];
    let out = healthcheck_async(strings(&["--url", &url]), env).await;
    assert!(out.status.success(), "CA from the env: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_another_ca_fails_naming_it() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |_| {}).await;
    let url = format!("https://{}/readyz", server.addr);
    let other = TestCa::new();
    let other_ca = other.ca_path().display().to_string();
    let out = healthcheck_async(strings(&["--url", &url, "--ca-cert", &other_ca]), vec![]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not verify against --ca-cert") && err.contains(&other_ca),
        "{err}"
    );

    // A CA file that is not there, or not a certificate, is named as such.
    let missing = other.dir.path().join("missing.crt").display().to_string();
    let out = healthcheck_async(strings(&["--url", &url, "--ca-cert", &missing]), vec![]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("reading --ca-cert"),
        "{}",
        stderr(&out)
    );
    let key = ca.key_path().display().to_string();
    let out = healthcheck_async(strings(&["--url", &url, "--ca-cert", &key]), vec![]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("holds no PEM certificate"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_scheme_fails_saying_so() {
    let ca = TestCa::new();
    let tls = tls_server(&ca, |_| {}).await;
    let out = healthcheck_async(strings(&["--url", &tls.url("/readyz")]), vec![]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("answered 400") && err.contains("use https://"),
        "{err}"
    );

    let plain = TestServer::start().await;
    let url = format!("https://{}/readyz", plain.addr);
    let out = healthcheck_async(strings(&["--url", &url]), vec![]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));
}

#[test]
fn a_stalled_tls_peer_fails_at_the_deadline() {
    // The kernel completes the TCP handshake; nothing answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/readyz", listener.local_addr().unwrap());
    let started = Instant::now();
    let out = healthcheck(&["--url", &url, "--timeout", "1s"], &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no answer within 1s in the TLS handshake"),
        "{}",
        stderr(&out)
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "took {took:?}"
    );
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_url_tls_in_the_config_means_https_on_its_port() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |_| {}).await;
    let port = server.addr.port();
    let expected = format!("https://127.0.0.1:{port}/readyz: 200");

    let file = ca.dir.path().join("larder.toml");
    let toml = format!(
        "[server]\nlisten = \"0.0.0.0:{port}\"\ntls_cert = {:?}\ntls_key = {:?}\n",
        ca.cert_path(),
        ca.key_path()
    );
    std::fs::write(&file, toml).unwrap();
    let file = file.display().to_string();
    let out = healthcheck_async(strings(&["--config", &file]), vec![]).await;
    assert!(out.status.success(), "--config: {}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&expected),
        "{out:?}"
    );

    let env = vec![
        (
            "LARDER__SERVER__LISTEN".to_owned(),
            format!("0.0.0.0:{port}"),
        ),
        (
            "LARDER__SERVER__TLS_CERT".to_owned(),
            ca.cert_path().display().to_string(),
        ),
        (
            "LARDER__SERVER__TLS_KEY".to_owned(),
            ca.key_path().display().to_string(),
        ),
    ];
    let out = healthcheck_async(vec![], env).await;
    assert!(out.status.success(), "LARDER__* env: {}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&expected),
        "{out:?}"
    );
}
