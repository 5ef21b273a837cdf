//! The `[server]` connection limits hold over TLS as over plain HTTP: headers
//! trickled after the handshake are cut at `header_read_timeout`, an idle
//! keep-alive connection at `keep_alive_timeout`, and over HTTP/2 a stalled
//! upload at `min_body_rate` and an idle connection too.

mod common;
mod tls_support;

use std::time::Duration;

use common::TestServer;
use larder::config::{Size, Span};
use tls_support::{tls_server, Conn, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn limited_tls_server(ca: &TestCa) -> TestServer {
    tls_server(ca, |c| {
        c.server.header_read_timeout = Span::secs(1);
        c.server.keep_alive_timeout = Span::secs(1);
        c.server.min_body_rate = Size(1 << 10);
        c.server.body_rate_window = Span::secs(1);
    })
    .await
}

/// Waits for the server to close `conn` (EOF or reset), failing after 10 s.
async fn closed_by_server(conn: &mut Conn, what: &str) {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.stream.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: the server did not close the connection"));
    assert!(matches!(read, Ok(0) | Err(_)), "{what}: {read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_cut_over_tls() {
    let ca = TestCa::new();
    let server = limited_tls_server(&ca).await;

    let mut slow = Conn::open(&ca, server.addr).await;
    slow.stream
        .write_all(b"GET /v2/ HTTP/1.1\r\n")
        .await
        .unwrap();
    slow.stream.flush().await.unwrap();
    closed_by_server(&mut slow, "headers never finished").await;

    let mut idle = Conn::open(&ca, server.addr).await;
    assert_eq!(idle.get("/v2/").await.0, 200);
    closed_by_server(&mut idle, "idle after a request").await;
}

/// An HTTP/2 connection over TLS (ALPN h2), driven in the background.
async fn h2_client(ca: &TestCa, server: &TestServer) -> h2::client::SendRequest<bytes::Bytes> {
    let conn = Conn::open_alpn(ca, server.addr, &[b"h2"]).await;
    assert_eq!(conn.stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, connection) = h2::client::handshake(conn.stream)
        .await
        .expect("h2 handshake");
    tokio::spawn(connection);
    client
}

fn request(method: &str, server: &TestServer, path: &str) -> axum::http::Request<()> {
    axum::http::Request::builder()
        .method(method)
        .uri(format!("https://{}{path}", server.addr))
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_http2_upload_is_cut() {
    let ca = TestCa::new();
    let server = limited_tls_server(&ca).await;
    let mut client = h2_client(&ca, &server).await.ready().await.unwrap();
    let req = request("PUT", &server, "/cache/limits/stalled");
    // The body is left open and never sent.
    let (response, _body) = client.send_request(req, false).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(20), response)
        .await
        .expect("the stalled upload was answered or reset in time");
    let res = res.expect("an answer, not a reset");
    assert_eq!(res.status(), 400, "the body was too slow");
    // The connection and the server carry on; nothing was stored.
    let mut client = client.ready().await.unwrap();
    let (response, _) = client
        .send_request(request("GET", &server, "/cache/limits/stalled"), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed() {
    let ca = TestCa::new();
    let server = limited_tls_server(&ca).await;
    let conn = Conn::open_alpn(&ca, server.addr, &[b"h2"]).await;
    let (client, connection) = h2::client::handshake(conn.stream).await.unwrap();
    let mut client = client.ready().await.unwrap();
    let driver = tokio::spawn(connection);
    let (response, _) = client
        .send_request(request("GET", &server, "/v2/"), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    // Idle from here on: the server ends the connection (GOAWAY or close).
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the server closed the idle connection")
        .unwrap()
        .ok();
}
