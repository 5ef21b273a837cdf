//! Helpers for the auth tests (`tests/oci_auth.rs`, `tests/token_cli.rs`):
//! servers in token mode, minting tokens with the server's own key (or
//! hand-encoding claims the minting code would never produce), clients that
//! send credentials on every request (so the `oci_support` helpers work
//! authenticated), parsing the Docker `WWW-Authenticate` challenge, and the
//! registry token exchange as docker and BuildKit perform it.
//!
//! Every test crate that uses this module declares `mod common;` and
//! `mod auth_support;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use larder::auth::token::{mint, now_secs};
use larder::auth::{Claims, Grant, TokenSpec, READ, WRITE};
use larder::config::{AuthMode, Config};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use crate::common::TestServer;

/// Read and write.
pub const RW: u8 = READ | WRITE;

// ---------------------------------------------------------------- servers and keys

/// An in-process server with `auth.mode = "token"`, after `adjust` edits the
/// config further. Returns it with its signing key.
pub async fn token_server(adjust: impl FnOnce(&mut Config)) -> (TestServer, Vec<u8>) {
    let server = TestServer::start_with(|cfg| {
        cfg.auth.mode = AuthMode::Token;
        adjust(cfg);
    })
    .await;
    let key = read_key(&server.data_dir().join("signing.key"));
    (server, key)
}

/// The hex signing key in `path`, decoded.
pub fn read_key(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading signing key {}: {e}", path.display()));
    let key = hex::decode(text.trim())
        .unwrap_or_else(|e| panic!("signing key {} is not hex: {e}", path.display()));
    assert!(
        key.len() >= 32,
        "signing key {} is too short",
        path.display()
    );
    key
}

// ---------------------------------------------------------------- tokens

pub fn grant(namespace: &str, permission: u8) -> Grant {
    Grant {
        scope: namespace.to_owned(),
        permission,
    }
}

/// Mints a token for `grants` (namespace, permission bits) valid for an hour.
pub fn token(key: &[u8], grants: &[(&str, u8)]) -> String {
    token_claims(key, grants, 3600).0
}

/// Mints a token and returns its claims too.
pub fn token_claims(key: &[u8], grants: &[(&str, u8)], ttl_secs: u64) -> (String, Claims) {
    mint(
        key,
        &TokenSpec {
            subject: "test".into(),
            grants: grants.iter().map(|(ns, p)| grant(ns, *p)).collect(),
            admin: false,
            ttl_secs,
            parent: None,
        },
    )
}

/// Encodes arbitrary claims as an HS256 JWT signed with `key`: for tokens
/// the server's minting code never produces (expired, not yet valid, …).
pub fn encode_claims(key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .expect("encode JWT")
}

/// Claims shaped like Larder's, with the given time window (unix seconds).
pub fn claims_with_window(grants: &[(&str, u8)], nbf: u64, exp: u64) -> Value {
    let grants: Vec<Grant> = grants.iter().map(|(ns, p)| grant(ns, *p)).collect();
    serde_json::json!({
        "sub": "hand-made",
        "exp": exp,
        "nbf": nbf,
        "iat": now_secs(),
        "jti": format!("{:032x}", rand::random::<u128>()),
        "ac": serde_json::to_string(&grants).unwrap(),
    })
}

/// The claims of a JWT, decoded without checking anything (to inspect what
/// the server handed out).
pub fn peek_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt:?} is not a JWT");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .expect("JWT payload is base64url");
    serde_json::from_slice(&payload).expect("JWT payload is JSON")
}

/// The `ac` claim of a JWT as namespace → permission bits.
pub fn peek_grants(jwt: &str) -> BTreeMap<String, u8> {
    let claims = peek_claims(jwt);
    let ac = claims["ac"].as_str().expect("ac is a JSON string");
    let grants: Vec<Grant> = serde_json::from_str(ac).expect("ac holds grants");
    let mut out = BTreeMap::new();
    for g in grants {
        *out.entry(g.scope).or_insert(0) |= g.permission;
    }
    out
}

// ---------------------------------------------------------------- clients

fn client_with(value: &str) -> Client {
    let mut headers = HeaderMap::new();
    let mut v = HeaderValue::from_str(value).expect("header value");
    v.set_sensitive(true);
    headers.insert(AUTHORIZATION, v);
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// A client sending `Authorization: Bearer <token>` on every request.
pub fn bearer_client(token: &str) -> Client {
    client_with(&format!("Bearer {token}"))
}

/// A client sending Basic credentials `user:password` on every request, as
/// after `docker login -u user -p password`.
pub fn basic_client(user: &str, password: &str) -> Client {
    use base64::Engine as _;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    client_with(&format!("Basic {pair}"))
}

// ---------------------------------------------------------------- the challenge

/// A parsed `WWW-Authenticate: Bearer realm=…,service=…,scope=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// Parses a Bearer challenge the way containerd's `docker/auth` parser does:
/// the scheme, then comma-separated `key="quoted value"` (or bare) params.
pub fn parse_challenge(value: &str) -> Challenge {
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("challenge {value:?} has no parameters"));
    assert!(
        scheme.eq_ignore_ascii_case("bearer"),
        "challenge {value:?} is not a Bearer challenge"
    );
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("challenge {value:?}: parameter without '='"));
        let key = key.trim().to_ascii_lowercase();
        let (val, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .unwrap_or_else(|| panic!("challenge {value:?}: unterminated quote"));
            (quoted[..end].to_owned(), &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        assert!(
            params.insert(key.clone(), val).is_none(),
            "challenge {value:?} repeats {key}"
        );
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Challenge {
        realm: params
            .remove("realm")
            .unwrap_or_else(|| panic!("challenge {value:?} has no realm")),
        service: params.remove("service"),
        scope: params.remove("scope"),
    }
}

/// Asserts a 401 `UNAUTHORIZED` with a Bearer challenge naming the token
/// endpoint of `base` (`http://host:port`), service `larder` and `scope`
/// (None: no scope parameter). Returns the challenge.
pub async fn expect_challenge(res: Response, base: &str, scope: Option<&str>) -> Challenge {
    let what = format!("{} {}", res.url(), res.status());
    let value = res
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("challenge is text").to_owned());
    let body =
        crate::oci_support::expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let value =
        value.unwrap_or_else(|| panic!("{what}: a 401 without WWW-Authenticate (error {body})"));
    let challenge = parse_challenge(&value);
    assert_eq!(
        challenge.realm,
        format!("{base}/v2/token"),
        "{what}: realm of {value:?}"
    );
    assert_eq!(
        challenge.service.as_deref(),
        Some("larder"),
        "{what}: service of {value:?}"
    );
    assert_eq!(
        challenge.scope.as_deref(),
        scope,
        "{what}: scope of {value:?}"
    );
    challenge
}

/// Asserts a 401 `UNAUTHORIZED` with a challenge, whatever its scope.
pub async fn expect_unauthorized(res: Response, base: &str) {
    let what = format!("{} {}", res.url(), res.status());
    let value = res
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("challenge is text").to_owned());
    crate::oci_support::expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let value = value.unwrap_or_else(|| panic!("{what}: a 401 without WWW-Authenticate"));
    assert_eq!(
        parse_challenge(&value).realm,
        format!("{base}/v2/token"),
        "{what}: realm of {value:?}"
    );
}

/// Asserts a 403 `DENIED`.
pub async fn expect_denied(res: Response) {
    crate::oci_support::expect_error(res, StatusCode::FORBIDDEN, "DENIED").await;
}

// ---------------------------------------------------------------- the token endpoint

/// `GET <realm>?service=<service>&scope=<scope>…` with `client`'s credentials,
/// as containerd's `FetchToken` does. Returns the raw response.
pub async fn fetch_token_get(client: &Client, challenge: &Challenge, scopes: &[&str]) -> Response {
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = &challenge.service {
        query.push(("service", s));
    }
    for s in scopes {
        query.push(("scope", s));
    }
    client
        .get(&challenge.realm)
        .query(&query)
        .send()
        .await
        .expect("GET token")
}

/// `POST <realm>` with the OAuth2 password form, as containerd's
/// `FetchTokenWithOAuth` does (scopes space-separated in one field).
pub async fn fetch_token_post(
    challenge: &Challenge,
    username: &str,
    password: &str,
    scopes: &[&str],
) -> Response {
    let joined = scopes.join(" ");
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", "buildkit-client"),
        ("scope", &joined),
    ];
    if let Some(s) = &challenge.service {
        form.push(("service", s));
    }
    let body = serde_urlencoded(&form);
    crate::common::client()
        .post(&challenge.realm)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .expect("POST token")
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
fn serde_urlencoded(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks a token endpoint answer: 200 JSON with `token` and `access_token`
/// (equal), `expires_in` (positive seconds) and `issued_at` (RFC 3339), and
/// returns the token.
pub async fn expect_token_response(res: Response) -> String {
    let what = format!("{} {}", res.url(), res.status());
    let status = res.status();
    let text = res.text().await.expect("token body");
    assert_eq!(
        status,
        StatusCode::OK,
        "{what}: token endpoint (body {text})"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: token response is not JSON ({e}): {text}"));
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no \"token\": {text}"))
        .to_owned();
    assert!(!token.is_empty(), "{what}: empty token");
    assert_eq!(
        body["access_token"].as_str(),
        Some(token.as_str()),
        "{what}: access_token differs from token: {text}"
    );
    let expires_in = body["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: expires_in is not a number of seconds: {text}"));
    assert!(expires_in > 0, "{what}: expires_in {expires_in}");
    let issued_at = body["issued_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no issued_at: {text}"));
    let issued = humantime::parse_rfc3339(issued_at)
        .unwrap_or_else(|e| panic!("{what}: issued_at {issued_at:?} is not RFC 3339: {e}"));
    let issued = issued
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = now_secs();
    assert!(
        issued <= now + 1 && issued + 120 >= now,
        "{what}: issued_at {issued_at} is not now"
    );
    let claims = peek_claims(&token);
    let exp = claims["exp"].as_u64().expect("exp");
    let iat = claims["iat"].as_u64().expect("iat");
    assert_eq!(
        exp - iat,
        expires_in,
        "{what}: expires_in does not match the token's lifetime"
    );
    token
}

/// Namespace → permission bits, to compare with `peek_grants`.
pub fn grants_map(grants: &[(&str, u8)]) -> BTreeMap<String, u8> {
    grants
        .iter()
        .map(|(ns, p)| ((*ns).to_owned(), *p))
        .collect()
}
