//! Tokens across replicas sharing one signing key: a token minted offline
//! (`larder token create`) is recorded at its first use on one replica,
//! so every replica's admin API lists it and revokes it by id, as a single
//! node does.

mod admin_support;
mod auth_support;
mod cluster_support;
mod common;
mod oci_support;

use cluster_support::serve::Fleet;
use reqwest::{Client, StatusCode};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_token_used_on_one_replica_is_listed_and_revoked_through_another() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("signing.key");
    let key = larder::auth::key::load_or_create(&key_file).unwrap();
    let key_path = key_file.to_str().unwrap();
    let auth = [
        ("LARDER__AUTH__MODE", "token"),
        ("LARDER__AUTH__SIGNING_KEY_FILE", key_path),
    ];
    let (a, b) = (fleet.replica("r0", &auth), fleet.replica("r1", &auth));
    let (a, b) = (a.url(""), b.url(""));
    let admin = admin_support::admin_token(&key);
    let (offline, claims) = auth_support::token_claims(&key, &[("team-a", auth_support::RW)], 3600);
    let http = Client::new();
    let tags = |base: &str| {
        (http.get(format!("{base}/v2/team-a/app/tags/list")))
            .bearer_auth(&offline)
            .send()
    };
    let listed = |base: String| {
        let req = http
            .get(format!("{base}/admin/v1/tokens"))
            .bearer_auth(&admin);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }
    };
    let row = |list: &Value| {
        let rows = list.get("tokens").unwrap_or(list).as_array().cloned();
        (rows.unwrap_or_default().into_iter()).find(|t| t["id"] == claims.jti.as_str())
    };
    assert_eq!(
        row(&listed(b.clone()).await),
        None,
        "unknown before its use"
    );

    let res = tags(&a).await.unwrap();
    assert_ne!(res.status(), StatusCode::UNAUTHORIZED);
    cluster_support::until("B lists the token A saw", || async {
        row(&listed(b.clone()).await).is_some_and(|t| t["last_used"].is_u64())
    })
    .await;
    let t = row(&listed(b.clone()).await).unwrap();
    assert_eq!(t["name"], "test");
    assert_eq!(t["namespaces"], serde_json::json!(["team-a"]));
    assert_eq!(t["expires_at"], claims.exp);

    // Known now, it is revoked by id through B (an unknown id is a 404),
    // and refused through both.
    let revoke = |id: &str| {
        (http.delete(format!("{b}/admin/v1/tokens/{id}")))
            .bearer_auth(&admin)
            .send()
    };
    let res = revoke("0123456789abcdef0123456789abcdef").await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = revoke(&claims.jti).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(tags(&b).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    cluster_support::until("A refuses the revoked token", || async {
        tags(&a).await.unwrap().status() == StatusCode::UNAUTHORIZED
    })
    .await;
}
