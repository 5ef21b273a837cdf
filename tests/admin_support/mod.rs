//! Helpers for the admin API tests (`tests/admin_api.rs`, `tests/admin_cli.rs`,
//! `tests/metrics.rs`): admin tokens minted with a server's own key, a small
//! JSON client for `/admin/v1/…`, the admin error body check, paging through
//! `GET entries`, and waiting for what the server does in the background.
//!
//! Every test crate that uses this module declares `mod common;` and
//! `mod admin_support;`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use larder::auth::token::mint;
use larder::auth::{Grant, TokenSpec, ANY_NAMESPACE, READ, WRITE};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

// ---------------------------------------------------------------- tokens

/// An admin token (read and write on every namespace too), valid for an hour,
/// signed with `key` (a server's `signing.key`, decoded).
pub fn admin_token(key: &[u8]) -> String {
    mint(
        key,
        &TokenSpec {
            subject: "test-admin".into(),
            grants: vec![Grant {
                scope: ANY_NAMESPACE.into(),
                permission: READ | WRITE,
            }],
            admin: true,
            ttl_secs: 3600,
            parent: None,
        },
    )
    .0
}

/// A valid token that is not an admin token (read and write everywhere).
pub fn user_token(key: &[u8]) -> String {
    mint(
        key,
        &TokenSpec {
            subject: "test-user".into(),
            grants: vec![Grant {
                scope: ANY_NAMESPACE.into(),
                permission: READ | WRITE,
            }],
            admin: false,
            ttl_secs: 3600,
            parent: None,
        },
    )
    .0
}

/// A valid token that reads no namespace: the metrics permission only.
pub fn metrics_token(key: &[u8]) -> String {
    scoped_token(key, ANY_NAMESPACE, larder::auth::METRICS)
}

/// A non-admin token holding `permission` on `namespace` only.
pub fn scoped_token(key: &[u8], namespace: &str, permission: u8) -> String {
    mint(
        key,
        &TokenSpec {
            subject: format!("test-{namespace}"),
            grants: vec![Grant {
                scope: namespace.into(),
                permission,
            }],
            admin: false,
            ttl_secs: 3600,
            parent: None,
        },
    )
    .0
}

/// A client sending `Authorization: Bearer <token>` on every request (so the
/// `oci_support` helpers work against a server in token mode).
pub fn bearer(token: &str) -> Client {
    let mut headers = HeaderMap::new();
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).expect("header value");
    v.set_sensitive(true);
    headers.insert(AUTHORIZATION, v);
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("http client")
}

// ---------------------------------------------------------------- the client

/// One answer of the admin API, read whole.
#[derive(Debug)]
pub struct Reply {
    pub what: String,
    pub status: StatusCode,
    pub content_type: String,
    pub allow: Option<String>,
    pub www_authenticate: Option<String>,
    pub text: String,
}

impl Reply {
    pub async fn read(what: String, res: reqwest::Response) -> Reply {
        let status = res.status();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let allow = header("allow");
        let www_authenticate = header("www-authenticate");
        let text = res.text().await.expect("response body");
        Reply {
            what,
            status,
            content_type,
            allow,
            www_authenticate,
            text,
        }
    }

    /// The body as JSON; panics (with the body) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not JSON ({e}): {}",
                self.what, self.status, self.text
            )
        })
    }

    /// Asserts the status and a JSON body; returns the body.
    pub fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(
            self.status, status,
            "{}: status (body: {})",
            self.what, self.text
        );
        assert!(
            self.content_type.starts_with("application/json"),
            "{}: Content-Type {:?}, want application/json (body: {})",
            self.what,
            self.content_type,
            self.text
        );
        self.json()
    }

    /// Asserts an admin error: the status, a JSON content type and
    /// `{"error":{"code","message"}}` with a non-empty message (and `code`
    /// when given). Returns the message.
    pub fn expect_error(&self, status: StatusCode, code: Option<&str>) -> String {
        let body = self.expect(status);
        let err = body
            .get("error")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("{}: no \"error\" object: {body}", self.what));
        let got_code = err
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: error without a string code: {body}", self.what));
        assert!(
            !got_code.is_empty()
                && got_code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{}: error code {got_code:?} is not a snake_case identifier",
            self.what
        );
        if let Some(code) = code {
            assert_eq!(got_code, code, "{}: error code (body: {body})", self.what);
        }
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: error without a string message: {body}", self.what));
        assert!(
            !message.trim().is_empty(),
            "{}: empty error message",
            self.what
        );
        message.to_owned()
    }
}

/// The admin API of one server, as one caller.
#[derive(Clone)]
pub struct AdminApi {
    pub base: String,
    pub client: Client,
}

impl AdminApi {
    /// No credentials (for `auth.mode = "none"`, or to check refusals).
    pub fn anonymous(base: &str) -> AdminApi {
        AdminApi {
            base: base.to_owned(),
            client: crate::common::client(),
        }
    }

    pub fn with_token(base: &str, token: &str) -> AdminApi {
        AdminApi {
            base: base.to_owned(),
            client: bearer(token),
        }
    }

    /// `METHOD base+path` with an optional JSON body (sent as raw text so that
    /// malformed bodies can be sent too).
    pub async fn send(&self, method: Method, path: &str, body: Option<&str>) -> Reply {
        let what = format!("{method} {path}");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        Reply::read(what, res).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(&body.to_string())).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    /// `GET path` ⇒ 200 JSON.
    pub async fn get_ok(&self, path: &str) -> Value {
        self.get(path).await.expect(StatusCode::OK)
    }

    pub async fn stats(&self) -> Value {
        self.get_ok("/admin/v1/stats").await
    }

    /// `GET namespaces` as name → namespace object.
    pub async fn namespaces(&self) -> std::collections::BTreeMap<String, Value> {
        let body = self.get_ok("/admin/v1/namespaces").await;
        body["namespaces"]
            .as_array()
            .unwrap_or_else(|| panic!("namespaces is not a list: {body}"))
            .iter()
            .map(|n| {
                let name = n["name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("namespace without a name: {n}"));
                (name.to_owned(), n.clone())
            })
            .collect()
    }

    /// One page of `GET entries?query`: (entries, next_cursor).
    pub async fn entries_page(&self, query: &str) -> (Vec<Value>, Option<String>) {
        let body = self.get_ok(&format!("/admin/v1/entries?{query}")).await;
        let entries = body["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("entries is not a list: {body}"))
            .clone();
        let next = match &body["next_cursor"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => panic!("next_cursor is neither null nor a string: {other}"),
        };
        (entries, next)
    }

    /// Every entry of `GET entries?query`, following `next_cursor` with pages
    /// of `limit`. Asserts every page but the last is full and the last is
    /// not empty (unless there is nothing at all).
    pub async fn all_entries(&self, query: &str, limit: usize) -> Vec<Value> {
        let sep = if query.is_empty() { "" } else { "&" };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let q = match &cursor {
                None => format!("{query}{sep}limit={limit}"),
                Some(c) => format!("{query}{sep}limit={limit}&cursor={c}"),
            };
            let (page, next) = self.entries_page(&q).await;
            assert!(page.len() <= limit, "{q}: {} entries > limit", page.len());
            out.extend(page.iter().cloned());
            match next {
                Some(c) => {
                    assert_eq!(page.len(), limit, "{q}: a page before the last is full");
                    cursor = Some(c);
                }
                None => {
                    assert!(
                        !page.is_empty() || out.is_empty(),
                        "{q}: the last page is empty although a cursor led to it"
                    );
                    return out;
                }
            }
        }
        panic!("entries pagination of {query:?} does not end");
    }

    /// `POST gc` ⇒ 200; returns the report.
    pub async fn gc(&self) -> Value {
        self.post("/admin/v1/gc", &serde_json::json!({}))
            .await
            .expect(StatusCode::OK)
    }
}

// ---------------------------------------------------------------- values

/// The ids of a list of entries, in order.
pub fn ids(entries: &[Value]) -> Vec<u64> {
    entries
        .iter()
        .map(|e| {
            e["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("entry id is not a number: {e}"))
        })
        .collect()
}

/// The names (`repo@digest` for OCI) of a list of entries.
pub fn names(entries: &[Value]) -> BTreeSet<String> {
    entries
        .iter()
        .map(|e| e["name"].as_str().expect("entry name").to_owned())
        .collect()
}

/// A JSON number that must be an unsigned integer.
pub fn num(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not an unsigned integer: {v}"))
}

/// Parses an RFC 3339 timestamp and asserts it lies within `slack` of now.
pub fn assert_recent(ts: &Value, slack: Duration, what: &str) -> std::time::SystemTime {
    let s = ts
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not an RFC 3339 string: {ts}"));
    let t =
        humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{what} {s:?} is not RFC 3339: {e}"));
    let now = std::time::SystemTime::now();
    let diff = match now.duration_since(t) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(diff <= slack, "{what} {s} is not within {slack:?} of now");
    t
}

// ---------------------------------------------------------------- waiting

/// Polls `cond` (a state the server reaches on its own, in the background)
/// until it holds or `limit` passes; true if it held.
pub async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `lease` has certainly passed since now: the only way to get
/// past a lease is to let the time pass.
pub async fn outlive_lease(lease: Duration) {
    tokio::time::sleep(lease + Duration::from_millis(20)).await;
}
