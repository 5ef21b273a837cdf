//! Signed URLs: archive downloads (v1 `archiveLocation`, v2
//! `signed_download_url`) and v2 uploads (`signed_upload_url`) are fetched
//! without a token, so the URL itself carries the authorization, as Azure's
//! SAS URLs do: `?se=<expiry, unix seconds>&sig=<HMAC-SHA256>`, bound to one
//! entry (its id and content) or one reservation, keyed by a secret derived
//! from the server's signing key. Any change to the URL breaks the signature.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::error::{GhaError, Kind};
use crate::api::AppState;
use crate::auth::{hmac_sha256, token::now_secs};
use crate::cache::EntryRecord;

/// What the URL key is derived for; a new version invalidates every URL.
const PURPOSE: &str = "larder gha url v1";

/// Path prefixes of the signed endpoints. Azure's SDK reads the first two
/// segments of a URL on an IP address as account and container, so the blob
/// name comes third.
pub const DOWNLOAD_PREFIX: &str = "/gha/blobs";
pub const UPLOAD_PREFIX: &str = "/gha/uploads";

pub struct Signer {
    key: [u8; 32],
    ttl: Duration,
}

impl Signer {
    pub fn new(state: &AppState) -> Signer {
        Signer {
            key: state.auth.derive_key(PURPOSE),
            ttl: state.config.gha.url_ttl.0,
        }
    }

    fn signature(&self, resource: &str, expiry: u64) -> String {
        URL_SAFE_NO_PAD.encode(hmac_sha256(
            &self.key,
            format!("{resource}\n{expiry}").as_bytes(),
        ))
    }

    fn sign(&self, base: &str, path: &str, resource: &str) -> String {
        // Rounded up to a whole second, so a URL never lives shorter than the TTL.
        let ttl = self.ttl.as_millis().div_ceil(1000) as u64;
        let expiry = now_secs().saturating_add(ttl);
        let sig = self.signature(resource, expiry);
        format!("{base}{path}?se={expiry}&sig={sig}")
    }

    /// The download URL of an entry's content.
    pub fn download_url(&self, base: &str, entry: &EntryRecord) -> String {
        let (id, content) = (entry.id.to_string(), entry.content.to_hex());
        self.sign(
            base,
            &format!("{DOWNLOAD_PREFIX}/{id}/{content}"),
            &download_resource(&id, &content),
        )
    }

    /// The URL that uploads into reservation `id`.
    pub fn upload_url(&self, base: &str, id: &str) -> String {
        self.sign(base, &format!("{UPLOAD_PREFIX}/{id}"), &upload_resource(id))
    }

    /// Checks the `se` and `sig` of a request for `resource`: 403 when either
    /// is missing, altered, or expired.
    pub fn verify(&self, resource: &str, query: &[(String, String)]) -> Result<(), GhaError> {
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let denied = |why: &str| GhaError::new(Kind::Forbidden, why).azure("AuthenticationFailed");
        let (Some(se), Some(sig)) = (param("se"), param("sig")) else {
            return Err(denied("the URL is not signed"));
        };
        let expiry: u64 = se
            .parse()
            .map_err(|_| denied("the URL's expiry is malformed"))?;
        let want = self.signature(resource, expiry);
        if !bool::from(want.as_bytes().ct_eq(sig.as_bytes())) {
            return Err(denied("the URL's signature does not match"));
        }
        if now_secs() > expiry {
            return Err(denied("the signed URL has expired; request a new one"));
        }
        Ok(())
    }
}

/// What a download URL signs: the entry id and content as its path spells them.
pub fn download_resource(entry: &str, content: &str) -> String {
    format!("download\n{entry}\n{content}")
}

/// What an upload URL signs: the reservation id.
pub fn upload_resource(reservation: &str) -> String {
    format!("upload\n{reservation}")
}
