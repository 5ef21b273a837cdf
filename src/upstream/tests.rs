//! The upstream client against a scripted HTTP server on loopback: what a
//! hostile or broken upstream can do is bounded.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Upstream, UpstreamError};
use crate::config::{ProxyConfig, Size, Span, UpstreamConfig};

/// Serves `reply` (a raw HTTP response; None: never answer) to every
/// connection, and hands back each request head it read.
async fn scripted(reply: Option<String>) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (reply, tx) = (reply.clone(), tx.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                match reply {
                    Some(r) => {
                        let _ = conn.write_all(r.as_bytes()).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            });
        }
    });
    (url, rx)
}

fn upstream(url: &str, adjust: impl FnOnce(&mut ProxyConfig)) -> Upstream {
    let mut limits = ProxyConfig::default();
    limits.go.upstream = url.to_owned();
    adjust(&mut limits);
    Upstream::new(&limits.go, &limits).unwrap()
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_refused() {
    let (url, _) = scripted(Some(
        "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n".into(),
    ))
    .await;
    let e = upstream(&url, |_| {})
        .metadata(&format!("{url}/x"), None)
        .await
        .unwrap_err();
    // Not followed (reqwest leaves it, or the policy refuses it): a 502.
    assert!(
        matches!(
            e,
            UpstreamError::Status { status: 302, .. } | UpstreamError::Unreachable(_)
        ),
        "{e}"
    );
    assert_eq!(e.status(), axum::http::StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn metadata_past_the_limit_is_refused_whether_announced_or_not() {
    for head in ["Content-Length: 100\r\n", "Transfer-Encoding: chunked\r\n"] {
        let body = if head.starts_with("Content") {
            "x".repeat(100)
        } else {
            format!("64\r\n{}\r\n0\r\n\r\n", "x".repeat(100))
        };
        let (url, _) = scripted(Some(format!("HTTP/1.1 200 OK\r\n{head}\r\n{body}"))).await;
        let up = upstream(&url, |c| c.max_metadata_size = Size(50));
        let e = up.metadata(&format!("{url}/x"), None).await.unwrap_err();
        assert_eq!(e, UpstreamError::TooLarge(50), "{head}");
    }
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_timed_out() {
    let (url, _) = scripted(None).await;
    let up = upstream(&url, |c| c.read_timeout = Span(Duration::from_millis(300)));
    let e = up.metadata(&format!("{url}/x"), None).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Timeout(_)), "{e}");
    assert_eq!(e.status(), axum::http::StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn basic_credentials_come_from_the_environment_named() {
    let (url, mut heads) = scripted(Some(
        "HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n".into(),
    ))
    .await;
    // A variable only this test sets: nothing else reads or writes it.
    std::env::set_var("LARDER_TEST_UPSTREAM_PASSWORD", "s3cret");
    let mut limits = ProxyConfig::default();
    limits.go = UpstreamConfig {
        upstream: url.clone(),
        username: Some("ci".into()),
        password_env: Some("LARDER_TEST_UPSTREAM_PASSWORD".into()),
        ..limits.go
    };
    let up = Upstream::new(&limits.go, &limits).unwrap();
    let e = up.metadata(&format!("{url}/x"), None).await.unwrap_err();
    assert_eq!(e, UpstreamError::Missing(410));
    assert_eq!(e.status(), axum::http::StatusCode::GONE);
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    // base64("ci:s3cret")
    assert!(head.contains("authorization: basic y2k6cznjcmv0"), "{head}");
}
