//! Helpers for the TLS tests (`tests/tls.rs`, `tests/tls_reload.rs`): a test
//! CA and server certificates for 127.0.0.1 and localhost made with rcgen,
//! written where Larder and the clients read them, and a rustls client that
//! reports which certificate the server presented.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A server on 127.0.0.1:0 presenting this CA's `larder-test` certificate,
/// with `adjust` applied to its config.
pub async fn tls_server(
    ca: &TestCa,
    adjust: impl FnOnce(&mut larder::config::Config),
) -> crate::common::TestServer {
    ca.install("larder-test");
    let (cert, key) = (ca.cert_path(), ca.key_path());
    crate::common::TestServer::start_with(move |c| {
        c.server.tls_cert = Some(cert);
        c.server.tls_key = Some(key);
        adjust(c);
    })
    .await
}

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Holds `ca.crt` (the layout skopeo's `--cert-dir` expects), `tls.crt`
    /// and `tls.key`.
    pub dir: tempfile::TempDir,
}

/// A server certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Leaf {
    /// The DER of the leaf certificate, as a client sees it.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert.as_bytes())
            .expect("leaf PEM")
            .to_vec()
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Larder test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), issuer.pem()).unwrap();
        TestCa { issuer, dir }
    }

    /// A new server certificate for 127.0.0.1 and localhost, named `name`.
    pub fn leaf(&self, name: &str) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    /// The directory skopeo's `--src-cert-dir`/`--dest-cert-dir` takes: it
    /// must hold only the CA (a `*.key` there would be read as a client key).
    pub fn cert_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("certs.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(self.ca_path(), dir.join("ca.crt")).unwrap();
        dir
    }

    /// Makes a leaf and installs it as `tls.crt`/`tls.key`, each file
    /// replaced by a rename, as cert-manager or certbot would.
    pub fn install(&self, name: &str) -> Leaf {
        let leaf = self.leaf(name);
        replace(&self.key_path(), leaf.key.as_bytes());
        replace(&self.cert_path(), leaf.cert.as_bytes());
        leaf
    }

    /// A client trusting only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client_config_alpn(&[])
    }

    /// A client trusting only this CA, offering these ALPN protocols.
    pub fn client_config_alpn(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.issuer.pem().as_bytes()).unwrap();
        roots.add(ca).unwrap();
        #[allow(deprecated)] // ring, as the server uses; see src/server/tls.rs
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Writes `bytes` to `path` through a temp file and a rename.
pub fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A TLS connection to Larder speaking HTTP/1.1 by hand.
pub struct Conn {
    pub stream: TlsStream<TcpStream>,
}

impl Conn {
    pub async fn open(ca: &TestCa, addr: SocketAddr) -> Conn {
        Self::open_alpn(ca, addr, &[]).await
    }

    pub async fn open_alpn(ca: &TestCa, addr: SocketAddr, alpn: &[&[u8]]) -> Conn {
        let connector = tokio_rustls::TlsConnector::from(ca.client_config_alpn(alpn));
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let stream = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake succeeds");
        Conn { stream }
    }

    /// The DER of the certificate the server presented.
    pub fn server_cert(&self) -> Vec<u8> {
        let certs = self.stream.get_ref().1.peer_certificates().expect("certs");
        certs[0].to_vec()
    }

    /// Sends `GET path` on this connection (kept alive) and returns the
    /// status and body.
    pub async fn get(&mut self, path: &str) -> (u16, String) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.stream.write_all(req.as_bytes()).await.unwrap();
        self.stream.flush().await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("response in time")
                .expect("read");
            assert!(n > 0, "connection closed before the response");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
        (status, body)
    }
}
