//! Raw HTTP/1.1 over a TcpStream, for what a well-behaved client never does:
//! trickle headers, stall bodies, declare bodies it never sends.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// A response read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (headers, then a `Content-Length` body), failing the
/// test if it does not arrive within `limit`.
pub async fn read_response(stream: &mut TcpStream, limit: Duration) -> RawResponse {
    tokio::time::timeout(limit, read_response_inner(stream))
        .await
        .unwrap_or_else(|_| panic!("no response within {limit:?}"))
}

async fn read_response_inner(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read response head");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut res = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = res
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    res.body = vec![0; len];
    stream.read_exact(&mut res.body).await.expect("read body");
    res
}

/// Waits until the server closes the connection (EOF or reset), discarding
/// anything it sends; fails the test if it stays open longer than `limit`.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) {
    let mut sink = [0u8; 1024];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {limit:?}"
    );
}

/// Sends a complete GET request and reads its response.
pub async fn get(stream: &mut TcpStream, path: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: larder\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .expect("send request");
    read_response(stream, Duration::from_secs(10)).await
}
