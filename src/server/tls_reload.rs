//! The server certificate, replaceable while serving: cert-manager, certbot
//! and friends rewrite the files in place and either send SIGHUP or nothing
//! at all, so both a SIGHUP and a change seen by a 2 s poll reload the pair.
//! Each new handshake asks the resolver for the current pair; connections
//! already open keep the one they negotiated. A pair that does not load (a
//! half-written file, a key that does not match) is logged and the old one
//! stays in use.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

/// How often the files are checked for changes.
pub const POLL: Duration = Duration::from_secs(2);

/// Hands every handshake the pair loaded last.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// Where the pair comes from, and what was last seen of the files.
pub struct Source {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// Size, mtime and inode of both files at the last load attempt, good
    /// or bad: a bad pair is reported once, not every poll.
    seen: Option<Stamp>,
}

type Stamp = [(u64, Option<SystemTime>, u64); 2];

impl Source {
    pub fn new(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Source {
        Source {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            seen: None,
        }
    }

    /// Loads the pair now; an error names the file at fault.
    pub fn load(&mut self) -> anyhow::Result<Arc<CertifiedKey>> {
        self.seen = self.stamp();
        let cert_pem = std::fs::read(&self.cert)
            .with_context(|| format!("reading server.tls_cert {}", self.cert.display()))?;
        let key_pem = std::fs::read(&self.key)
            .with_context(|| format!("reading server.tls_key {}", self.key.display()))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("server.tls_cert {} is not PEM", self.cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!(
                "server.tls_cert {} holds no certificate",
                self.cert.display()
            );
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| {
            format!(
                "server.tls_key {} holds no PEM private key",
                self.key.display()
            )
        })?;
        let pair = CertifiedKey::from_der(chain, key, &self.provider).with_context(|| {
            format!(
                "server.tls_key {} does not fit server.tls_cert {}",
                self.key.display(),
                self.cert.display()
            )
        })?;
        Ok(Arc::new(pair))
    }

    /// Whether either file changed since the last load attempt.
    fn changed(&self) -> bool {
        self.stamp() != self.seen
    }

    fn stamp(&self) -> Option<Stamp> {
        let one = |p: &Path| {
            // Follows symlinks: Kubernetes secrets swap a `..data` link.
            std::fs::metadata(p).ok().map(|m: Metadata| {
                use std::os::unix::fs::MetadataExt;
                (m.len(), m.modified().ok(), m.ino())
            })
        };
        Some([one(&self.cert)?, one(&self.key)?])
    }
}

impl Resolver {
    pub fn new(first: Arc<CertifiedKey>) -> Resolver {
        Resolver {
            current: RwLock::new(first),
        }
    }

    fn reload(&self, source: &mut Source, why: &str) {
        match source.load() {
            Ok(pair) => {
                *self.current.write() = pair;
                tracing::info!(why, cert = %source.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::error!(
                why,
                error = format!("{e:#}"),
                "the new TLS certificate did not load; still serving the previous one"
            ),
        }
    }
}

/// Listens for SIGHUP. Called before the server says it is listening: a
/// SIGHUP that arrives before the handler is installed kills the process.
pub fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .inspect_err(
            |e| tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files are still polled"),
        )
        .ok()
}

/// Reloads `resolver` from `source` on each hangup and file change until
/// `stop` is cancelled.
pub async fn watch(
    resolver: Arc<Resolver>,
    mut source: Source,
    mut hup: Option<tokio::signal::unix::Signal>,
    stop: CancellationToken,
) {
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = async { hup.as_mut()?.recv().await } => {
                resolver.reload(&mut source, "SIGHUP");
            }
            _ = poll.tick() => {
                if source.changed() {
                    resolver.reload(&mut source, "file changed");
                }
            }
        }
    }
}
