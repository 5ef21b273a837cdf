//! Larder's tokens: HS256 JWTs whose `ac` claim is a JSON *string* holding
//! `[{"Scope":"<namespace>","Permission":<bits>}]` (1 = read, 2 = write), the
//! exact shape BuildKit's GitHub Actions cache client insists on, so one
//! token works for every protocol.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const READ: u8 = 1;
pub const WRITE: u8 = 2;
/// Scraping `/metrics` where `metrics.require_token` is set. It covers the
/// whole server, so it counts only on the `*` grant.
pub const METRICS: u8 = 4;

/// Every namespace.
pub const ANY_NAMESPACE: &str = "*";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "Scope")]
    pub scope: String,
    #[serde(rename = "Permission")]
    pub permission: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    /// JSON-encoded `Vec<Grant>`, as a string.
    pub ac: String,
    /// Admin API access.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub larder_admin: bool,
    /// The token this one was exchanged from (the registry token endpoint),
    /// so revoking the original also revokes what it was exchanged for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl Claims {
    pub fn grants(&self) -> Vec<Grant> {
        serde_json::from_str(&self.ac).unwrap_or_default()
    }

    /// The permission bits this token holds on `namespace`.
    pub fn permission(&self, namespace: &str) -> u8 {
        self.grants()
            .iter()
            .filter(|g| g.scope == namespace || g.scope == ANY_NAMESPACE)
            .fold(0, |acc, g| acc | g.permission)
    }
}

/// What a new token says.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub subject: String,
    pub grants: Vec<Grant>,
    pub admin: bool,
    pub ttl_secs: u64,
    pub parent: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token has been revoked")]
    Revoked,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds as RFC 3339 (`2026-11-27T04:19:32Z`), for people and JSON.
pub fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs),
    )
    .to_string()
}

pub fn mint(key: &[u8], spec: &TokenSpec) -> (String, Claims) {
    let now = now_secs();
    let claims = Claims {
        sub: spec.subject.clone(),
        exp: now.saturating_add(spec.ttl_secs),
        // A little slack for clocks that are slightly behind ours.
        nbf: now.saturating_sub(60),
        iat: now,
        jti: format!("{:032x}", rand::random::<u128>()),
        ac: serde_json::to_string(&spec.grants).unwrap_or_else(|_| "[]".into()),
        larder_admin: spec.admin,
        parent: spec.parent.clone(),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap_or_default();
    (token, claims)
}

/// Checks signature, expiry and not-before. Revocation is the caller's.
pub fn verify(key: &[u8], token: &str) -> Result<Claims, TokenError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "nbf", "sub"]);
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key), &v)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidSignature => TokenError::BadSignature,
                other => TokenError::Malformed(format!("{other:?}")),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(grants: Vec<Grant>, ttl: u64) -> TokenSpec {
        TokenSpec {
            subject: "ci".into(),
            grants,
            admin: false,
            ttl_secs: ttl,
            parent: None,
        }
    }

    #[test]
    fn minted_tokens_verify_and_carry_their_grants_as_a_json_string() {
        let key = b"k".repeat(32);
        let grants = vec![Grant {
            scope: "team-a".into(),
            permission: READ | WRITE,
        }];
        let (token, claims) = mint(&key, &spec(grants, 60));
        let back = verify(&key, &token).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.ac, r#"[{"Scope":"team-a","Permission":3}]"#);
        assert_eq!(back.permission("team-a"), 3);
        assert_eq!(back.permission("team-b"), 0);
    }

    #[test]
    fn wrong_key_and_expired_tokens_are_refused() {
        let key = b"k".repeat(32);
        let (token, _) = mint(&key, &spec(vec![], 60));
        assert_eq!(
            verify(&b"x".repeat(32), &token),
            Err(TokenError::BadSignature)
        );
        let (old, _) = mint(&key, &spec(vec![], 0));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(verify(&key, &old), Err(TokenError::Expired));
        assert!(matches!(
            verify(&key, "not.a.jwt"),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn the_wildcard_scope_covers_every_namespace() {
        let key = b"k".repeat(32);
        let grants = vec![Grant {
            scope: ANY_NAMESPACE.into(),
            permission: READ,
        }];
        let (token, _) = mint(&key, &spec(grants, 60));
        assert_eq!(verify(&key, &token).unwrap().permission("anything"), READ);
    }
}
