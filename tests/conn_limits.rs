//! Connection limits (docs/ARCHITECTURE.md, Faults): idle and
//! slowloris connections are closed within the configured times while other
//! clients are served; a connection cap holds; a stalled upload body is cut
//! and its OCI session or Actions cache reservation keeps the chunks it had
//! acknowledged; a response the client stops reading is cut.

mod common;
mod gha_support;
mod oci_support;

use std::time::{Duration, Instant};

use common::raw;
use common::TestServer;
use oci_support::{abs_url, must_header, sha256_digest, start_upload, with_query};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

/// Generous bound for "within the configured time" on a loaded 2-core box.
const SLACK: Duration = Duration::from_secs(5);

/// `larder_connections_cut_total{reason="<reason>"}` from /metrics.
async fn cut(server: &TestServer, reason: &str) -> u64 {
    let text = common::client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("larder_connections_cut_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
}

/// A server that cuts bodies slower than 1 KiB/s over a 1 s window.
async fn rate_limited_server() -> TestServer {
    TestServer::start_with(|c| {
        c.server.min_body_rate = larder::config::Size(1024);
        c.server.body_rate_window = larder::config::Span::secs(1);
    })
    .await
}

async fn healthz_ok(server: &TestServer) {
    let res = common::client()
        .get(server.url("/healthz"))
        .timeout(SLACK)
        .send()
        .await
        .expect("a new client is served");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_connection_that_never_sends_headers_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(|c| {
        c.server.header_read_timeout = larder::config::Span::secs(1);
    })
    .await;
    let started = Instant::now();
    let mut silent = raw::connect(server.addr).await;
    healthz_ok(&server).await;
    raw::closed_within(&mut silent, SLACK).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slowloris_headers_are_cut_while_new_clients_are_served() {
    let server = TestServer::start_with(|c| {
        c.server.header_read_timeout = larder::config::Span::secs(1);
    })
    .await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(raw::connect(server.addr).await);
    }
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut trickles = tokio::task::JoinSet::new();
    for stream in slow {
        let mut done = done_rx.clone();
        trickles.spawn(async move {
            let (mut read, mut write) = stream.into_split();
            let header = b"GET /healthz HTTP/1.1\r\nHost: larder\r\nX-Padding: ";
            let mut bytes = header.iter().copied().chain(std::iter::repeat(b'a'));
            // A byte at a time, forever: the headers never end.
            let writer = async {
                loop {
                    let byte = bytes.next().unwrap_or(b'a');
                    if write.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = done.changed() => break,
                    }
                }
            };
            let closed = async {
                let mut sink = [0u8; 256];
                loop {
                    match tokio::io::AsyncReadExt::read(&mut read, &mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            tokio::select! {
                () = closed => true,
                () = writer => false,
            }
        });
    }
    // Served while the slow connections are still trickling.
    healthz_ok(&server).await;
    let all_closed = tokio::time::timeout(SLACK, async {
        let mut closed = 0;
        while let Some(r) = trickles.join_next().await {
            closed += usize::from(r.expect("trickle task"));
        }
        closed
    })
    .await;
    let _ = done_tx.send(true);
    assert_eq!(
        all_closed.expect("slowloris connections closed in time"),
        20,
        "every slowloris connection is closed by the server"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    healthz_ok(&server).await;
    assert!(cut(&server, "header_timeout").await >= 20);
}

/// A connection idle for longer than the header timeout has its watchdog
/// sleeping until the idle deadline; a request that then starts and stalls
/// must still be cut at the (shorter) header timeout.
#[tokio::test]
async fn slow_headers_after_a_request_are_cut_at_the_header_timeout() {
    let server = TestServer::start_with(|c| {
        c.server.header_read_timeout = larder::config::Span::secs(1);
        c.server.keep_alive_timeout = larder::config::Span::secs(60);
    })
    .await;
    let mut conn = raw::connect(server.addr).await;
    let res = raw::get(&mut conn, "/healthz").await;
    assert_eq!(res.status, 200);
    // The idleness is the scenario: past the first request's header
    // deadline, the watchdog re-arms for the idle one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: larder\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    raw::closed_within(&mut conn, SLACK).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the header timeout: {:?}",
        started.elapsed()
    );
    assert!(cut(&server, "header_timeout").await >= 1);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        c.server.keep_alive_timeout = larder::config::Span::secs(1);
    })
    .await;
    let mut conn = raw::connect(server.addr).await;
    let res = raw::get(&mut conn, "/healthz").await;
    assert_eq!(res.status, 200);
    let idle_since = Instant::now();
    // Still usable before the timeout.
    let res = raw::get(&mut conn, "/healthz").await;
    assert_eq!(res.status, 200);
    raw::closed_within(&mut conn, SLACK).await;
    assert!(
        idle_since.elapsed() >= Duration::from_millis(900),
        "closed before the idle timeout: {:?}",
        idle_since.elapsed()
    );
    assert!(cut(&server, "idle_timeout").await >= 1);
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let server = TestServer::start_with(|c| {
        c.server.max_connections = 2;
    })
    .await;
    // Two connections, each proven served (so accepted), then left open.
    let mut first = raw::connect(server.addr).await;
    assert_eq!(raw::get(&mut first, "/healthz").await.status, 200);
    let mut second = raw::connect(server.addr).await;
    assert_eq!(raw::get(&mut second, "/healthz").await.status, 200);

    let mut third = raw::connect(server.addr).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: larder\r\n\r\n")
        .await
        .unwrap();
    let mut waiting = tokio::spawn(async move {
        let res = raw::read_response(&mut third, Duration::from_secs(30)).await;
        res.status
    });
    // Not served while two connections are open (a bounded negative check).
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut waiting)
            .await
            .is_err(),
        "a third connection was served over a cap of 2"
    );
    drop(first);
    let status = tokio::time::timeout(SLACK, waiting)
        .await
        .expect("served once a slot frees")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(raw::get(&mut second, "/healthz").await.status, 200);
}

#[tokio::test]
async fn a_stalled_chunk_is_cut_and_the_session_keeps_what_it_had() {
    let server = rate_limited_server().await;
    let client = common::client();
    let base = server.base();
    let location = start_upload(&client, &base, "app").await;
    let res = client
        .patch(&location)
        .header("content-range", "0-9")
        .body(b"0123456789".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = abs_url(&base, &must_header(&res, "location"));

    // A chunk that announces 1000 bytes, sends 10 and stalls.
    let started = Instant::now();
    let res = stall_chunk(
        &server,
        &location,
        "Content-Range: 10-1009\r\n",
        "abcdefghij",
    )
    .await;
    assert!(
        res.body_text().contains("min_body_rate"),
        "{}",
        res.body_text()
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // The session still holds the acknowledged chunk and can be resumed.
    resume_and_commit(&client, &server, &location).await;
}

/// A streamed chunk (no range announced) that stalls keeps the bytes that
/// arrived before the cut: the client reads the session's range and resumes.
#[tokio::test]
async fn a_stalled_streamed_chunk_keeps_the_bytes_that_arrived() {
    let server = rate_limited_server().await;
    let client = common::client();
    let location = start_upload(&client, &server.base(), "app").await;
    stall_chunk(&server, &location, "", "0123456789").await;
    resume_and_commit(&client, &server, &location).await;
}

/// Sends a PATCH of `location` that announces 1000 bytes, delivers `sent`
/// and stalls; the server must cut it for its body rate.
async fn stall_chunk(
    server: &TestServer,
    location: &str,
    range_header: &str,
    sent: &str,
) -> raw::RawResponse {
    let path = location.trim_start_matches(&server.base());
    let mut stalled = raw::connect(server.addr).await;
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: larder\r\n{range_header}Content-Length: 1000\r\n\
         Content-Type: application/octet-stream\r\n\r\n{sent}"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let res = raw::read_response(&mut stalled, SLACK).await;
    assert_eq!(res.status, 400, "{}", res.body_text());
    assert_eq!(cut(server, "body_rate").await, 1);
    res
}

/// The session at `location` holds exactly "0123456789": the rest is sent
/// and the blob committed.
async fn resume_and_commit(client: &reqwest::Client, server: &TestServer, location: &str) {
    let base = server.base();
    let res = client.get(location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        must_header(&res, "range"),
        "0-9",
        "what arrived was dropped"
    );
    let res = client
        .patch(location)
        .header("content-range", "10-19")
        .body(b"abcdefghij".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = abs_url(&base, &must_header(&res, "location"));
    let digest = sha256_digest(b"0123456789abcdefghij");
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_trickling_body_is_cut() {
    let server = rate_limited_server().await;
    let mut conn = raw::connect(server.addr).await;
    conn.write_all(
        b"PUT /cache/team/some-key HTTP/1.1\r\nHost: larder\r\nContent-Length: 100000\r\n\r\n",
    )
    .await
    .unwrap();
    let (mut read, mut write) = conn.into_split();
    let trickle = tokio::spawn(async move {
        // 20 bytes/s, far below 1 KiB/s.
        while write.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = Vec::new();
    let got = tokio::time::timeout(SLACK, async {
        let mut chunk = [0u8; 512];
        loop {
            match tokio::io::AsyncReadExt::read(&mut read, &mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    assert!(got.is_ok(), "a trickling body was not cut");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 4"), "{text}");
    let res = common::client()
        .get(server.url("/cache/team/some-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "nothing was stored");
}

#[tokio::test]
async fn a_response_the_client_stops_reading_is_cut() {
    let server = rate_limited_server().await;
    let value = vec![7u8; 32 << 20];
    let res = common::client()
        .put(server.url("/cache/team/big"))
        .body(value.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    // A small receive buffer, and never a read: the response stalls.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut reader = socket.connect(server.addr).await.unwrap();
    reader
        .write_all(b"GET /cache/team/big HTTP/1.1\r\nHost: larder\r\n\r\n")
        .await
        .unwrap();
    healthz_ok(&server).await;
    // The cut is only visible to the server: poll its counter, bounded.
    let deadline = Instant::now() + SLACK;
    while cut(&server, "send_stall").await == 0 {
        assert!(Instant::now() < deadline, "a stalled response was not cut");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What was already sent can be read; then the connection ends short.
    let mut got = Vec::new();
    let read = tokio::time::timeout(SLACK, async {
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut got).await;
    })
    .await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(got.len() < value.len(), "the whole response arrived");
}

#[tokio::test]
async fn a_stalled_gha_chunk_is_cut_and_the_reservation_keeps_the_others() {
    use gha_support::{rw, token, V1, VERSION};
    let server = gha_support::start(|c| {
        c.server.min_body_rate = larder::config::Size(1024);
        c.server.body_rate_window = larder::config::Span::secs(1);
    })
    .await;
    let v1 = V1::new(&server, Some(token(&server, &[rw("team")])));
    let id = v1.reserve_id("stalled", VERSION).await;
    assert_eq!(
        v1.patch(id, 0, b"0123456789").await.status(),
        StatusCode::NO_CONTENT
    );
    let mut stalled = raw::connect(server.addr).await;
    let head = format!(
        "PATCH /_apis/artifactcache/caches/{id} HTTP/1.1\r\nHost: larder\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: bytes 10-19/*\r\nContent-Length: 10\r\n\r\nabc",
        v1.token.as_deref().unwrap()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let res = raw::read_response(&mut stalled, SLACK).await;
    assert_eq!(res.status, 400, "{}", res.body_text());
    assert!(
        res.body_text().contains("min_body_rate"),
        "{}",
        res.body_text()
    );
    // The cut chunk left nothing; the first one is still there.
    assert_eq!(v1.commit(id, 20).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        v1.patch(id, 10, b"abcdefghij").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(v1.commit(id, 20).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        v1.restore("stalled", VERSION).await,
        b"0123456789abcdefghij"
    );
}
