//! A proxied artifact streams to the client that asked first while it is
//! fetched and stored: that client has its first bytes before the upstream
//! has sent the last ones, a body that fails verification at the end is
//! cut short (never completed) and not stored, and a client that hangs up
//! mid-way, or stops reading, neither cancels nor holds up the fetch.
//! Against the npm proxy and a static upstream that can hold a large
//! tarball's tail back.

mod common;
mod npm_support;
mod proxy_support;

use std::time::Duration;

use common::TestServer;
use npm_support::upstream::{get, npm_proxy, write_fixture, Hash};
use proxy_support::{metric, StaticUpstream};
use reqwest::header::CONTENT_LENGTH;
use reqwest::StatusCode;

const MIB: usize = 1 << 20;

/// A few MiB that no two fixtures share.
fn tarball(seed: u8) -> Vec<u8> {
    sized(seed, 4 * MIB)
}

fn sized(seed: u8, len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i % 251) as u8 ^ seed).collect()
}

async fn start() -> (tempfile::TempDir, StaticUpstream, TestServer) {
    start_with(|_| {}).await
}

async fn start_with(
    more: impl FnOnce(&mut larder::config::Config),
) -> (tempfile::TempDir, StaticUpstream, TestServer) {
    let root = tempfile::tempdir().unwrap();
    let up = StaticUpstream::start(root.path()).await;
    let proxy = npm_proxy(&up.url(), Duration::from_secs(300));
    let server = TestServer::start_with(|c| {
        proxy(c);
        more(c);
    })
    .await;
    (root, up, server)
}

/// Reads `res` until it has at least `n` bytes (or ends).
async fn read_at_least(res: &mut reqwest::Response, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        match res.chunk().await.unwrap() {
            Some(c) => got.extend_from_slice(&c),
            None => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_client_gets_bytes_before_the_upstream_has_sent_them_all() {
    let (_root, up, server) = start().await;
    let body = tarball(0);
    write_fixture(&up, "big", "1.0.0", &body, &body, Hash::Sha512);
    up.hold_after(MIB);

    let mut res = get(&server, "/npm/team/big/-/big-1.0.0.tgz", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
    // The upstream sends nothing past its first MiB until released: what
    // the client reads here was streamed while the fetch was under way.
    let head = read_at_least(&mut res, MIB / 2).await;
    assert!(head.len() >= MIB / 2 && head.len() < body.len());
    assert_eq!(head[..], body[..head.len()]);
    // Counted when it starts: the packument's miss and the tarball's.
    let m = server.metrics().await;
    assert_eq!(
        metric(&m, "larder_proxy_misses_total{ecosystem=\"npm\"}"),
        2.0,
        "{m}"
    );
    up.release();
    let rest = res.bytes().await.unwrap();
    assert!([head, rest.to_vec()].concat() == body, "the whole tarball");

    // Stored as it streamed: the next client is a hit, not a fetch.
    let again = get(&server, "/npm/team/big/-/big-1.0.0.tgz", &[]).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.bytes().await.unwrap() == body);
    assert_eq!(up.hits("/files/big-1.0.0.tgz"), 1);
    let m = server.metrics().await;
    assert_eq!(
        metric(&m, "larder_proxy_hits_total{ecosystem=\"npm\"}"),
        1.0,
        "{m}"
    );
}

/// Both hashes npm publishes: sha512 `integrity` (checked by the CAS at
/// the end) and the SHA-1 `shasum` of old packages (checked as it streams).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_artifact_is_cut_short_for_the_streaming_client_and_not_stored() {
    let (_root, up, server) = start().await;
    let (real, tampered) = (tarball(1), tarball(2));
    write_fixture(&up, "evil", "1.0.0", &real, &tampered, Hash::Sha512);
    write_fixture(&up, "old-evil", "1.0.0", &real, &tampered, Hash::Sha1Only);

    for name in ["evil", "old-evil"] {
        let path = format!("/npm/team/{name}/-/{name}-1.0.0.tgz");
        for attempt in 1..=2 {
            let mut res = get(&server, &path, &[]).await;
            assert_eq!(res.status(), StatusCode::OK, "{name}: streamed");
            let mut got = 0;
            let end = loop {
                match res.chunk().await {
                    Ok(Some(c)) => got += c.len(),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            assert!(end.is_err(), "{name}: the body ends in an error");
            assert!(got < tampered.len(), "{name}: never the whole file");
            assert_eq!(
                up.hits(&format!("/files/{name}-1.0.0.tgz")),
                attempt,
                "{name}: not stored, so fetched again"
            );
        }
    }
    let m = server.metrics().await;
    assert_eq!(
        metric(&m, "larder_proxy_upstream_errors_total{ecosystem=\"npm\"}"),
        4.0,
        "{m}"
    );
}

/// The fetch outlives the client that started it: others may be waiting,
/// and the bytes are already on their way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_way_leaves_the_fetch_to_finish_and_be_stored() {
    let (_root, up, server) = start().await;
    let body = tarball(3);
    write_fixture(&up, "left", "1.0.0", &body, &body, Hash::Sha512);
    up.hold_after(MIB);

    let mut res = get(&server, "/npm/team/left/-/left-1.0.0.tgz", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    read_at_least(&mut res, 1).await;
    drop(res);
    // Larder has seen the connection go (only the scrape's is left).
    let mut open = f64::MAX;
    for _ in 0..200 {
        open = metric(&server.metrics().await, "larder_connections_open");
        if open <= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(open, 1.0, "the client's connection closed");
    up.release();

    // Joins the fetch still under way, or finds it stored: either way the
    // upstream was asked once.
    let again = get(&server, "/npm/team/left/-/left-1.0.0.tgz", &[]).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.bytes().await.unwrap() == body);
    assert_eq!(up.hits("/files/left-1.0.0.tgz"), 1);
}

/// A client that stops reading holds the fetch up for `read_timeout` at
/// most: then it is dropped from the copy, the fetch is stored, and the
/// others get it; the stalled client's body never completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_hold_up_the_fetch() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let patience = Duration::from_secs(1);
    let (_root, up, server) = start_with(|c| {
        c.proxy.read_timeout = larder::config::Span(patience);
        // Only the proxy's patience lets go of the client, not the
        // server's cut of connections that stop reading.
        c.server.min_body_rate = larder::config::Size(0);
    })
    .await;
    // More than the socket buffers between Larder and a client that reads
    // nothing through a tiny receive window can hold.
    let body = sized(4, 24 * MIB);
    write_fixture(&up, "slow", "1.0.0", &body, &body, Hash::Sha512);
    let path = "/npm/team/slow/-/slow-1.0.0.tgz";

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: larder\r\nConnection: close\r\n\r\n");
    stalled.write_all(request.as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    stalled.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200", "streamed");

    // Would wait forever for the stalled client if the fetch went at its pace.
    let other = get(&server, path, &[]).await;
    assert_eq!(other.status(), StatusCode::OK);
    assert!(other.bytes().await.unwrap() == body);
    assert_eq!(up.hits("/files/slow-1.0.0.tgz"), 1);

    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest).await;
    assert!(
        rest.len() < body.len(),
        "the stalled client never gets a completed body ({} bytes)",
        rest.len()
    );
}
