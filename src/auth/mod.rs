//! Tokens, namespaces and permissions. Every protocol asks the same question
//! — may this caller read or write this namespace? — and renders a denial in
//! its own error format: 401 when the caller is not (validly) identified,
//! 403 when it is but lacks the permission.

pub mod key;
pub mod names;
pub mod seen;
pub mod token;
mod usage;

use axum::http::{header, HeaderMap};
use base64::Engine as _;

use std::sync::Arc;

use crate::cluster::store::ClusterStore;
use crate::config::{AuthMode, Config};
use crate::index::Index;
pub use token::{Claims, Grant, TokenError, TokenSpec, ANY_NAMESPACE, METRICS, READ, WRITE};

/// Who is asking.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No credentials (allowed everything when `auth.mode = "none"`).
    Anonymous,
    Token(Box<Claims>),
}

impl Caller {
    pub fn subject(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Token(c) => &c.sub,
        }
    }
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// 401: no credentials, or credentials that are not valid.
    Unauthenticated(String),
    /// 403: a valid token without the needed permission.
    Forbidden(String),
}

impl Denied {
    pub fn message(&self) -> &str {
        match self {
            Denied::Unauthenticated(m) | Denied::Forbidden(m) => m,
        }
    }
}

/// Where revocations are looked up and token uses recorded.
pub enum Records {
    Index(Index),
    /// A replica checks its in-memory copy of the revocations (refreshed
    /// every second) and keeps uses in memory: no database trip per
    /// request.
    Cluster(Arc<ClusterStore>),
}

pub struct Auth {
    key: Vec<u8>,
    mode: AuthMode,
    anonymous_read: bool,
    records: Records,
    usage: usage::Usage,
}

impl Auth {
    pub fn new(config: &Config, key: Vec<u8>, records: Records) -> Auth {
        Auth {
            key,
            mode: config.auth.mode,
            anonymous_read: config.auth.anonymous_read,
            records,
            usage: usage::Usage::default(),
        }
    }

    /// True when requests need tokens.
    pub fn enabled(&self) -> bool {
        self.mode == AuthMode::Token
    }

    /// A key for one purpose (signing URLs, …), derived from the signing key
    /// as HMAC-SHA256(key, purpose): a secret of its own that reveals nothing
    /// of the key tokens are signed with, and changes when that key does.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.key, purpose.as_bytes())
    }

    pub fn mint(&self, spec: &TokenSpec) -> (String, Claims) {
        token::mint(&self.key, spec)
    }

    /// Verifies a token: signature, time window, and revocation of it and
    /// of the token it was exchanged from.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = token::verify(&self.key, token)?;
        let revoked = |jti: &str| match &self.records {
            Records::Index(index) => index.is_revoked(jti).unwrap_or(true),
            Records::Cluster(store) => store.revoked.contains(jti),
        };
        if revoked(&claims.jti) || claims.parent.as_deref().is_some_and(revoked) {
            return Err(TokenError::Revoked);
        }
        let now = token::now_secs();
        match &self.records {
            Records::Index(index) => {
                self.usage.used(Some(index), &claims, now);
            }
            Records::Cluster(store) => {
                // Shown at once by this replica, by every replica once its
                // touches are flushed (within a second).
                let first = self.usage.used(None, &claims, now);
                if let Some((jti, itself)) = usage::credited(&claims) {
                    // A token minted offline has no record until it is
                    // used, as on a single node.
                    if itself && first {
                        let meta = usage::offline_meta(&claims).to_string();
                        store.touches.token_seen(jti, meta.into_bytes());
                    }
                    store.touches.token_used(jti, now as i64);
                }
            }
        }
        Ok(claims)
    }

    /// Writes the token uses still held in memory (at a clean stop).
    pub fn flush_usage(&self) {
        if let Records::Index(index) = &self.records {
            self.usage.flush(index);
        }
    }

    /// When `jti` was last used, as seen since this server started.
    pub fn last_used(&self, jti: &str) -> Option<u64> {
        self.usage.last_used(jti)
    }

    /// Identifies the caller from `Authorization` (Bearer, or Basic with the
    /// token as password). Bad credentials are an error even where anonymous
    /// access would be allowed, so a typo never silently downgrades a client.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        if !self.enabled() {
            return Ok(Caller::Anonymous);
        }
        match credential(headers) {
            None => Ok(Caller::Anonymous),
            Some(t) => match self.verify(&t) {
                Ok(c) => {
                    seen::token(&c.sub);
                    Ok(Caller::Token(Box::new(c)))
                }
                Err(e) => Err(Denied::Unauthenticated(e.to_string())),
            },
        }
    }

    /// Whether `caller` holds `permission` (READ or WRITE bits) on `namespace`.
    pub fn require(&self, caller: &Caller, namespace: &str, permission: u8) -> Result<(), Denied> {
        let decision = self.decide(caller, namespace, permission);
        seen::namespace(namespace, decision.is_ok());
        decision
    }

    fn decide(&self, caller: &Caller, namespace: &str, permission: u8) -> Result<(), Denied> {
        if !self.enabled() {
            return Ok(());
        }
        match caller {
            Caller::Anonymous if permission == READ && self.anonymous_read => Ok(()),
            Caller::Anonymous => Err(Denied::Unauthenticated("authentication required".into())),
            Caller::Token(c) if c.permission(namespace) & permission == permission => Ok(()),
            Caller::Token(c) => Err(Denied::Forbidden(format!(
                "token {:?} may not {} namespace {namespace:?}",
                c.sub,
                if permission & WRITE != 0 {
                    "write to"
                } else {
                    "read"
                }
            ))),
        }
    }

    pub fn require_admin(&self, caller: &Caller) -> Result<(), Denied> {
        match caller {
            _ if !self.enabled() => Ok(()),
            Caller::Token(c) if c.larder_admin && !looks_scoped(c) => Ok(()),
            // Minted before admin tokens had to name every namespace: it
            // looks scoped but would manage all of them, so it manages none.
            Caller::Token(c) if c.larder_admin => Err(Denied::Forbidden(format!(
                "token {:?} is an admin token limited to some namespaces; admin tokens manage \
                 every namespace and must be created with the namespace * alone",
                c.sub
            ))),
            Caller::Token(c) => Err(Denied::Forbidden(format!(
                "token {:?} is not an admin token",
                c.sub
            ))),
            Caller::Anonymous => Err(Denied::Unauthenticated("an admin token is required".into())),
        }
    }

    /// Whether `caller` may scrape `/metrics`: an admin token, or one whose
    /// `*` grant holds `METRICS`.
    pub fn require_metrics(&self, caller: &Caller) -> Result<(), Denied> {
        match caller {
            _ if !self.enabled() => Ok(()),
            Caller::Token(c) if c.larder_admin && !looks_scoped(c) => Ok(()),
            Caller::Token(c)
                if c.grants()
                    .iter()
                    .any(|g| g.scope == ANY_NAMESPACE && g.permission & METRICS != 0) =>
            {
                Ok(())
            }
            Caller::Token(c) => Err(Denied::Forbidden(format!(
                "token {:?} may not read metrics: it needs the metrics permission \
                 (larder token create --namespace '*' --metrics) or to be an admin token",
                c.sub
            ))),
            Caller::Anonymous => Err(Denied::Unauthenticated(
                "metrics need a token with the metrics permission or an admin token".into(),
            )),
        }
    }

    /// `caller` then `require`, for the common case.
    pub fn check(
        &self,
        headers: &HeaderMap,
        namespace: &str,
        permission: u8,
    ) -> Result<Caller, Denied> {
        let caller = self.caller(headers)?;
        self.require(&caller, namespace, permission)?;
        Ok(caller)
    }

    /// The permission bits `caller` holds on `namespace` (all bits without auth).
    pub fn permission(&self, caller: &Caller, namespace: &str) -> u8 {
        match caller {
            _ if !self.enabled() => READ | WRITE,
            Caller::Anonymous if self.anonymous_read => READ,
            Caller::Anonymous => 0,
            Caller::Token(c) => c.permission(namespace),
        }
    }
}

/// A token naming some namespaces and not `*`: as an admin token it would
/// seem limited to them while the admin API manages every namespace.
fn looks_scoped(c: &Claims) -> bool {
    let grants = c.grants();
    !grants.is_empty() && !grants.iter().any(|g| g.scope == ANY_NAMESPACE)
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Mac, SimpleHmac};
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The secret in `Authorization`: a Bearer token, or the password of Basic
/// credentials (the user name is ignored, as `docker login -u any -p TOKEN`).
pub fn credential(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned()).filter(|t| !t.is_empty());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':').unwrap_or((&text, ""));
        let secret = if password.is_empty() { user } else { password };
        return Some(secret.to_owned()).filter(|t| !t.is_empty());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::hmac_sha256;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
