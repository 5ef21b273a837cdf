//! Replacing the certificate of a running `larder serve`: new files are
//! picked up (by the 2 s poll, and at once on SIGHUP), new connections get
//! the new certificate while an open one keeps working on the old, and a
//! pair that does not load leaves the old one serving.

mod common;
mod tls_support;

use std::time::Duration;

use common::process::LarderProcess;
use tls_support::{replace, Conn, TestCa};

const WAIT: Duration = Duration::from_secs(20);

fn start(ca: &TestCa, data_dir: &std::path::Path) -> LarderProcess {
    let (cert, key) = (ca.cert_path(), ca.key_path());
    LarderProcess::start(
        data_dir,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
}

/// Waits for a log line holding all of `needles`.
fn wait_for(server: &mut LarderProcess, needles: &[&str]) -> String {
    loop {
        let line = server.wait_for_log(needles[0], WAIT).unwrap_or_else(|| {
            panic!(
                "no log line with {needles:?}; log:\n{}",
                server.log_lines.join("\n")
            )
        });
        if needles.iter().all(|n| line.contains(n)) {
            return line;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_files_reach_new_connections_and_spare_open_ones() {
    let ca = TestCa::new();
    let first = ca.install("first");
    let data = tempfile::tempdir().unwrap();
    let mut server = start(&ca, data.path());

    let mut open = Conn::open(&ca, server.addr).await;
    assert_eq!(open.server_cert(), first.der());
    assert_eq!(open.get("/v2/").await.0, 200);

    let second = ca.install("second");
    wait_for(&mut server, &["TLS certificate reloaded", "file changed"]);
    let mut fresh = Conn::open(&ca, server.addr).await;
    assert_eq!(
        fresh.server_cert(),
        second.der(),
        "new connections: new cert"
    );
    assert_eq!(fresh.get("/v2/").await.0, 200);
    // The connection opened before keeps its session and keeps working.
    assert_eq!(open.get("/v2/").await.0, 200);
    assert_eq!(open.server_cert(), first.der());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_does_not_stop_the_server() {
    let ca = TestCa::new();
    ca.install("first");
    let data = tempfile::tempdir().unwrap();
    let mut server = start(&ca, data.path());
    let second = ca.install("second");
    server.signal(libc::SIGHUP);
    wait_for(&mut server, &["TLS certificate reloaded", "SIGHUP"]);
    let mut conn = Conn::open(&ca, server.addr).await;
    assert_eq!(conn.server_cert(), second.der());
    assert_eq!(conn.get("/v2/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_pair_is_logged_and_the_old_one_kept() {
    let ca = TestCa::new();
    let first = ca.install("first");
    let data = tempfile::tempdir().unwrap();
    let mut server = start(&ca, data.path());

    // A key that belongs to another certificate.
    let other = ca.leaf("other");
    replace(&ca.key_path(), other.key.as_bytes());
    wait_for(&mut server, &["did not load", "does not fit"]);
    let mut conn = Conn::open(&ca, server.addr).await;
    assert_eq!(conn.server_cert(), first.der(), "the old pair still serves");
    assert_eq!(conn.get("/v2/").await.0, 200);

    // Not PEM at all, then SIGHUP: refused again, still the old pair.
    replace(&ca.cert_path(), b"not a certificate");
    server.signal(libc::SIGHUP);
    wait_for(&mut server, &["did not load", "SIGHUP"]);
    let conn = Conn::open(&ca, server.addr).await;
    assert_eq!(conn.server_cert(), first.der());

    // A good pair again is taken.
    let third = ca.install("third");
    wait_for(&mut server, &["TLS certificate reloaded"]);
    let conn = Conn::open(&ca, server.addr).await;
    assert_eq!(conn.server_cert(), third.der());
}

#[test]
fn a_bad_pair_at_start_stops_the_server_with_the_reason() {
    let ca = TestCa::new();
    ca.install("first");
    replace(&ca.key_path(), ca.leaf("other").key.as_bytes());
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::process::larder_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--tls-cert")
        .arg(ca.cert_path())
        .arg("--tls-key")
        .arg(ca.key_path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not fit"), "{stderr}");
}
