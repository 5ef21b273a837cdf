//! HTTPS on the cache port (`server.tls_cert`, `server.tls_key`): rustls
//! with the ring provider, ALPN offering `h2` then `http/1.1`. The handshake
//! counts against `header_read_timeout`, like the headers it precedes, so a
//! client that connects and stalls cannot hold a connection slot.

use std::sync::Arc;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::tls_reload::{self, Resolver, Source};
use crate::config::ServerConfig;

/// The first byte of a TLS handshake record.
const HANDSHAKE: u8 = 0x16;

/// What a plain HTTP client sending to the TLS port is told, instead of a
/// handshake failure it would report as garbage or a reset.
const PLAIN_HTTP_REFUSED: &str = "This port serves HTTPS: use https:// to reach it.\n";

pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    source: Option<Source>,
}

impl Tls {
    /// Loads the configured pair, or returns None when TLS is not configured.
    /// A pair that does not load stops the start: serving plain HTTP where
    /// HTTPS was asked for would be worse.
    pub fn load(config: &ServerConfig) -> anyhow::Result<Option<Tls>> {
        let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
            return Ok(None);
        };
        // ring builds without cmake or a C++ toolchain (aws-lc does not), which
        // keeps the static musl image simple; the price, flagged by this
        // deprecation, is no post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut source = Source::new(cert, key, provider.clone());
        let resolver = Arc::new(Resolver::new(source.load()?));
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("configuring TLS")?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Tls {
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            resolver,
            source: Some(source),
        }))
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Starts the reloader (SIGHUP, file changes) until `stop` is cancelled.
    pub fn watch(&mut self, stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let source = self.source.take()?;
        let hup = tls_reload::hangups();
        Some(tokio::spawn(tls_reload::watch(
            self.resolver.clone(),
            source,
            hup,
            stop,
        )))
    }
}

/// Why a TLS connection did not start.
pub enum Refused {
    /// The handshake did not finish by the deadline.
    Timeout,
    /// Plain HTTP, a failed handshake, or the client went away.
    Failed,
}

/// Runs the handshake on `stream` (wrapping the socket), finished by
/// `deadline`. A client speaking plain HTTP is answered with a 400 saying
/// so; `socket` reaches the TCP stream under `S` for that check.
pub async fn accept<S>(
    acceptor: &TlsAcceptor,
    mut stream: S,
    socket: impl Fn(&mut S) -> &mut TcpStream,
    deadline: Instant,
) -> Result<TlsStream<S>, Refused>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout_at(deadline, socket(&mut stream).peek(&mut first)).await;
    match peeked {
        Err(_) => return Err(Refused::Timeout),
        Ok(Ok(1)) if first[0] != HANDSHAKE => {
            if first[0].is_ascii_alphabetic() {
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
                     Connection: close\r\nContent-Length: {}\r\n\r\n{PLAIN_HTTP_REFUSED}",
                    PLAIN_HTTP_REFUSED.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.flush().await;
                super::linger::close(stream).await;
            }
            return Err(Refused::Failed);
        }
        Ok(Ok(1)) => {}
        Ok(_) => return Err(Refused::Failed),
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Err(_) => Err(Refused::Timeout),
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            Err(Refused::Failed)
        }
    }
}

/// Whether the client chose HTTP/2.
pub fn is_h2<S>(tls: &TlsStream<S>) -> bool {
    tls.get_ref().1.alpn_protocol() == Some(b"h2")
}
