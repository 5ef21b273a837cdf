//! The probe's TLS: rustls (ring, as the server uses) over the blocking
//! socket, with the certificate left unverified unless `--ca-cert` is given.
//!
//! Not verifying by default is what the kubelet does for HTTPS probes, and
//! for the same reasons: the probe runs next to the server and dials
//! 127.0.0.1, a name the certificate almost never holds, and it sends no
//! credentials and trusts nothing it is told beyond the status code, so a
//! verified peer would buy nothing. An operator who wants the certificate
//! checked anyway (a probe from another host, or to catch a broken chain)
//! passes `--ca-cert`, and then the URL's host must be named in it.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::{describe, Deadlined, ProbeUrl};

/// What a TLS probe needs: the client config and the CA it trusts, if any,
/// to name in a certificate error.
pub struct Client {
    config: Arc<rustls::ClientConfig>,
    ca_cert: Option<String>,
}

impl Client {
    /// Reads `--ca-cert` before anything is dialled, so a bad file is named
    /// as such rather than as a failed handshake.
    pub fn new(ca_cert: Option<&Path>) -> Result<Client, String> {
        // ring, as src/server/tls.rs explains: no C toolchain in the image.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("configuring TLS: {e}"))?;
        let mut config = match ca_cert {
            Some(path) => builder
                .with_root_certificates(crate::tls_roots::pem_roots(path, "--ca-cert")?)
                .with_no_client_auth(),
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth(),
        };
        // The probe speaks HTTP/1.1 only; without this the server may pick h2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            config: Arc::new(config),
            ca_cert: ca_cert.map(|p| p.display().to_string()),
        })
    }

    /// Completes the handshake on `sock`, every read and write of it within
    /// the probe's one deadline.
    pub fn handshake(
        &self,
        target: &ProbeUrl,
        sock: Deadlined,
        timeout: Duration,
    ) -> Result<StreamOwned<ClientConnection, Deadlined>, String> {
        let name = ServerName::try_from(target.host.clone())
            .map_err(|_| format!("{:?} cannot be a TLS server name", target.host))?;
        let conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| format!("starting TLS: {e}"))?;
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                return Err(self.describe(&e, target, timeout));
            }
        }
        Ok(stream)
    }

    fn describe(&self, e: &std::io::Error, target: &ProbeUrl, timeout: Duration) -> String {
        let tls = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        match (tls, &self.ca_cert) {
            (Some(rustls::Error::InvalidCertificate(why)), Some(ca)) => format!(
                "the certificate of {} does not verify against --ca-cert {ca} and the name {:?}: \
                 {why:?}",
                target.authority, target.host
            ),
            (Some(rustls::Error::InvalidMessage(_)), _) => format!(
                "{} does not speak TLS (does it serve plain http://?): {e}",
                target.authority
            ),
            (Some(_), _) => format!("TLS handshake with {} failed: {e}", target.authority),
            (None, _) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                format!("{} in the TLS handshake", describe(e, target, timeout))
            }
            (None, _) => format!(
                "TLS handshake with {} failed: {}",
                target.authority,
                describe(e, target, timeout)
            ),
        }
    }
}

/// Accepts any certificate (see the module comment for why), but still
/// checks the handshake's signatures, so the session keys are the peer's.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
