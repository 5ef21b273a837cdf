//! Trust anchors for Larder's TLS clients: a PEM file an operator names
//! (a private CA), or the system's roots.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The certificates of PEM file `path`, which the setting `what` names (in
/// the errors).
pub fn pem_roots(path: &Path, what: &str) -> Result<RootCertStore, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("reading {what} {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {shown} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} {shown} holds no PEM certificate"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("{what} {shown}: {e}"))?;
    }
    Ok(roots)
}

/// The system's trusted roots; unreadable ones are skipped, as browsers do.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "a system root certificate could not be loaded");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}
