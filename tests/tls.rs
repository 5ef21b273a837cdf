//! Native TLS on the cache port with real clients trusting a test CA: curl
//! over HTTP/1.1 and HTTP/2 (ALPN), skopeo pushing and pulling an image with
//! only the CA in its cert dir, the token realm in https, plain HTTP to the
//! TLS port answered with a 400, and a stalled handshake cut.

mod common;
mod tls_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::require_tool;
use larder::config::{AuthMode, Span};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tls_support::{tls_server, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `curl -sS --cacert CA ARGS`: (exit ok, stdout, stderr).
async fn curl(ca: &TestCa, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--cacert"])
        .arg(ca.ca_path())
        .args(args)
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http1_and_http2_over_tls() {
    if require_tool("curl").is_none() {
        return;
    }
    let ca = TestCa::new();
    let server = tls_server(&ca, |_| {}).await;
    let url = format!("https://{}/v2/", server.addr);
    let out = "%{http_version} %{http_code}";
    let (ok, stdout, stderr) = curl(&ca, &["--http1.1", "-o", "/dev/null", "-w", out, &url]).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "1.1 200");
    let (ok, stdout, stderr) = curl(&ca, &["--http2", "-o", "/dev/null", "-w", out, &url]).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "2 200", "ALPN chose h2");

    // A body both ways over HTTP/2: the generic HTTP cache.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let object = format!("https://{}/cache/tls-test/object", server.addr);
    let file_arg = file.to_str().unwrap();
    let (ok, stdout, stderr) = curl(
        &ca,
        &[
            "--http2",
            "-X",
            "PUT",
            "-T",
            file_arg,
            "-o",
            "/dev/null",
            "-w",
            out,
            &object,
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("2 2"), "PUT over h2: {stdout}");
    let back = dir.path().join("back");
    let (ok, stdout, stderr) = curl(
        &ca,
        &["--http2", "-o", back.to_str().unwrap(), "-w", out, &object],
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "2 200");
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the body came back intact"
    );

    // Without the CA, curl refuses the certificate.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", &url])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an untrusted certificate is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_realm_is_https_under_tls_over_both_versions() {
    if require_tool("curl").is_none() {
        return;
    }
    let ca = TestCa::new();
    let server = tls_server(&ca, |c| c.auth.mode = AuthMode::Token).await;
    let url = format!("https://{}/v2/", server.addr);
    let realm = format!("realm=\"https://{}/v2/token\"", server.addr);
    for version in ["--http1.1", "--http2"] {
        let (ok, stdout, stderr) = curl(&ca, &[version, "-i", &url]).await;
        assert!(ok, "{stderr}");
        let challenge = stdout
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
            .unwrap_or_else(|| panic!("a challenge over {version}: {stdout}"));
        assert!(challenge.contains(&realm), "{version}: {challenge}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_is_told_to_use_https() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |_| {}).await;
    let res = common::client()
        .get(server.url("/v2/"))
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(res.status(), 400);
    let body = res.text().await.unwrap();
    assert!(body.contains("https://"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_cut_at_the_header_timeout() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |c| c.server.header_read_timeout = Span::secs(1)).await;
    // Connected, silent; then a handshake record started and never finished.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    for (what, stream) in [("silent", &mut silent), ("partial", &mut partial)] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: the server did not close the connection"));
        assert!(matches!(read, Ok(0) | Err(_)), "{what}: closed: {read:?}");
    }
    // And the server still serves.
    let mut conn = tls_support::Conn::open(&ca, server.addr).await;
    assert_eq!(conn.get("/v2/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_does_not_hold_up_shutdown() {
    let ca = TestCa::new();
    let mut server = tls_server(&ca, |c| c.server.header_read_timeout = Span::secs(600)).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Past the accept: the connection is in its handshake when the stop comes.
    let mut probe = tls_support::Conn::open(&ca, server.addr).await;
    assert_eq!(probe.get("/v2/").await.0, 200);
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown did not wait for the handshake");
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed: {read:?}");
}

// ---------------------------------------------------------------- skopeo

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI layout with one single-layer image tagged `v1`.
fn write_layout(dir: &Path) -> Vec<u8> {
    let layer: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(&layer), "size": layer.len()}]
    }))
    .unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for blob in [&layer, &config, &manifest] {
        let d = sha256(blob);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), blob).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": sha256(&manifest), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    layer
}

fn skopeo(home: &Path, args: &[&str]) -> std::process::Output {
    std::fs::write(
        home.join("policy.json"),
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    std::fs::write(home.join("registries.conf"), "").unwrap();
    std::fs::write(home.join("auth.json"), "{}").unwrap();
    Command::new("skopeo")
        .arg("--policy")
        .arg(home.join("policy.json"))
        .args(["--command-timeout", "120s"])
        .args(args)
        .env("HOME", home)
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env("CONTAINERS_REGISTRIES_CONF", home.join("registries.conf"))
        .env("TMPDIR", home)
        .stdin(Stdio::null())
        .output()
        .expect("skopeo runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_in_and_out_trusting_only_the_ca() {
    if require_tool("skopeo").is_none() {
        return;
    }
    let ca = TestCa::new();
    let server = tls_server(&ca, |_| {}).await;
    let work = tempfile::tempdir().unwrap();
    let (src, back, home) = (
        work.path().join("src"),
        work.path().join("back"),
        work.path().join("home"),
    );
    std::fs::create_dir_all(&home).unwrap();
    let layer = write_layout(&src);
    let cert_dir = ca.cert_dir().to_str().unwrap().to_owned();
    let remote = format!("docker://{}/tls/image:v1", server.addr);
    let src_ref = format!("oci:{}:v1", src.display());
    let back_ref = format!("oci:{}:v1", back.display());
    let (h, r) = (home.clone(), remote.clone());
    let out = tokio::task::spawn_blocking(move || {
        skopeo(
            &h,
            &[
                "copy",
                "--preserve-digests",
                "--dest-cert-dir",
                &cert_dir,
                &src_ref,
                &r,
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert_dir = ca.cert_dir();
    let out = tokio::task::spawn_blocking(move || {
        let dir = cert_dir.to_str().unwrap();
        skopeo(
            &home,
            &[
                "copy",
                "--preserve-digests",
                "--src-cert-dir",
                dir,
                &remote,
                &back_ref,
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled = back.join("blobs/sha256").join(&sha256(&layer)[7..]);
    let listing = std::fs::read_dir(back.join("blobs/sha256"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>());
    assert!(
        std::fs::read(&pulled).ok().as_ref() == Some(&layer),
        "{}: {listing:?}",
        pulled.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_reaches_the_tls_port_with_ca_cert() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |_| {}).await;
    let url = format!("https://{}", server.addr);
    let admin = |extra: Vec<std::ffi::OsString>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(common::process::larder_bin())
                .args(["admin", "--url", &url, "--json"])
                .args(extra)
                .arg("stats")
                .env_remove("LARDER_CA_CERT")
                .env_remove("LARDER_TOKEN")
                .stdin(Stdio::null())
                .output()
                .expect("larder admin runs")
        })
    };
    let out = admin(vec!["--ca-cert".into(), ca.ca_path().into()])
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON stats");
    assert!(stats.is_object(), "{stats}");
    // Without the CA the certificate is not trusted.
    let out = admin(vec![]).await.unwrap();
    assert!(!out.status.success(), "an untrusted certificate is refused");
}
