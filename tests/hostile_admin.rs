//! The admin API against hostile or careless input (issue 17): invalid
//! namespaces get 400 on every admin route that takes one; admin tokens are
//! global, so one limited to namespaces is refused when minted and not
//! honoured if minted before; token requests are bounded.

mod admin_support;
mod auth_support;
mod common;
mod oci_support;

use admin_support::*;
use auth_support::token_server;
use common::TestServer;
use larder::auth::token::{mint, Grant, TokenSpec};
use larder::auth::{READ, WRITE};
use reqwest::StatusCode;
use serde_json::json;

const BAD_NAMESPACES: [&str; 7] = ["..%2f..", "%00", "_x", "a%20b", "-x", "a%2Fb", "%C3%A9"];

#[tokio::test]
async fn invalid_namespaces_are_refused_by_every_admin_route() {
    let server = TestServer::start().await;
    let admin = AdminApi::anonymous(&server.base());
    oci_support::push_blob(&common::client(), &server.base(), "team-a/app", b"x").await;
    for bad in BAD_NAMESPACES {
        admin
            .delete(&format!("/admin/v1/namespaces/{bad}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
        admin
            .get(&format!("/admin/v1/entries?namespace={bad}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    }
    let long = "n".repeat(129);
    admin
        .delete(&format!("/admin/v1/namespaces/{long}"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    // Valid names still work, whether or not they hold anything.
    admin.get_ok("/admin/v1/entries?namespace=team-a").await;
    let body = admin
        .delete("/admin/v1/namespaces/nobody")
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["entries_removed"], 0);
}

#[tokio::test]
async fn admin_tokens_must_name_every_namespace() {
    let (server, key) = token_server(|_| {}).await;
    let admin = AdminApi::with_token(&server.base(), &admin_token(&key));
    for bad in [
        json!({ "namespaces": ["team-a"], "admin": true }),
        json!({ "namespaces": ["team-a"], "read": true, "write": true, "admin": true }),
        json!({ "namespaces": ["*", "team-a"], "admin": true }),
    ] {
        let why = admin
            .post("/admin/v1/tokens", &bad)
            .await
            .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
        assert!(why.contains("admin token") && why.contains('*'), "{why}");
    }
    let minted = admin
        .post(
            "/admin/v1/tokens",
            &json!({ "namespaces": ["*"], "admin": true, "name": "ops" }),
        )
        .await
        .expect(StatusCode::CREATED);
    let ops = AdminApi::with_token(&server.base(), minted["token"].as_str().unwrap());
    ops.get_ok("/admin/v1/namespaces").await;

    // One minted as "admin of team-a" before the rule manages nothing.
    let legacy = mint(
        &key,
        &TokenSpec {
            subject: "team-a-admin".into(),
            grants: vec![Grant {
                scope: "team-a".into(),
                permission: READ | WRITE,
            }],
            admin: true,
            ttl_secs: 3600,
            parent: None,
        },
    )
    .0;
    let legacy = AdminApi::with_token(&server.base(), &legacy);
    for path in [
        "/admin/v1/namespaces",
        "/admin/v1/stats",
        "/admin/v1/tokens",
    ] {
        let why = legacy
            .get(path)
            .await
            .expect_error(StatusCode::FORBIDDEN, Some("forbidden"));
        assert!(why.contains('*'), "{why}");
    }
    legacy
        .delete("/admin/v1/namespaces/team-b")
        .await
        .expect_error(StatusCode::FORBIDDEN, Some("forbidden"));
    // One naming no namespace at all (admin API only) does not look scoped.
    let api_only = TokenSpec {
        subject: "ops".into(),
        grants: vec![],
        admin: true,
        ttl_secs: 3600,
        parent: None,
    };
    let api_only = AdminApi::with_token(&server.base(), &mint(&key, &api_only).0);
    api_only.get_ok("/admin/v1/namespaces").await;
}

#[tokio::test]
async fn token_requests_are_bounded_and_their_names_checked() {
    let server = TestServer::start().await;
    let admin = AdminApi::anonymous(&server.base());
    let many: Vec<String> = (0..65).map(|i| format!("team-{i}")).collect();
    admin
        .post(
            "/admin/v1/tokens",
            &json!({ "namespaces": many, "read": true }),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    // 200,000 namespaces: refused before it is even parsed.
    let huge: Vec<String> = (0..200_000).map(|i| format!("team-{i:06}")).collect();
    admin
        .post(
            "/admin/v1/tokens",
            &json!({ "namespaces": huge, "read": true }),
        )
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"));
    for bad in [
        json!({ "namespaces": ["../team"], "read": true }),
        json!({ "namespaces": ["team a"], "read": true }),
        json!({ "namespaces": ["team-a"], "read": true, "name": "x\ny" }),
        json!({ "namespaces": ["team-a"], "read": true, "name": "n".repeat(129) }),
    ] {
        admin
            .post("/admin/v1/tokens", &bad)
            .await
            .expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    }
    let ok: Vec<String> = (0..64).map(|i| format!("team-{i}")).collect();
    admin
        .post(
            "/admin/v1/tokens",
            &json!({ "namespaces": ok, "read": true }),
        )
        .await
        .expect(StatusCode::CREATED);
    // Other admin bodies are bounded too, with a JSON error.
    let big = format!(
        "{{\"target_bytes\": 0, \"pad\": \"{}\"}}",
        "x".repeat(1 << 20)
    );
    admin
        .send(reqwest::Method::POST, "/admin/v1/evict", Some(&big))
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"));
}
