//! The admin API's namespace views for a token that is not an admin token:
//! it sees the namespaces it may read and their entries, changes only those
//! it may write, and none of the server-wide routes (stats, history,
//! workers, tokens). What the dashboard shows a team's token.

mod admin_support;
mod auth_support;
mod common;
// auth_support refers to it.
mod oci_support;

use admin_support::*;
use auth_support::token_server;
use larder::auth::{READ, WRITE};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_token_sees_only_its_namespaces_and_writes_only_where_allowed() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let admin = AdminApi::with_token(&base, &admin_token(&key));
    for path in ["/cache/team-a/x", "/cache/team-a/z", "/cache/team-b/y"] {
        let res = admin
            .client
            .put(format!("{base}{path}"))
            .body(vec![3u8; 100])
            .send()
            .await;
        assert!(res.expect("PUT").status().is_success(), "{path}");
    }
    let all = admin.all_entries("", 100).await;
    let id_of = |name: &str| {
        num(
            &all.iter().find(|e| e["name"] == name).expect(name)["id"],
            "id",
        )
    };

    let reader = AdminApi::with_token(&base, &scoped_token(&key, "team-a", READ));
    let me = reader.get_ok("/admin/v1/whoami").await;
    assert_eq!(me["admin"], false, "{me}");
    assert_eq!(me["namespaces"][0]["namespace"], "team-a", "{me}");
    assert_eq!(me["namespaces"][0]["write"], false, "{me}");
    let seen: Vec<String> = reader.namespaces().await.into_keys().collect();
    assert_eq!(seen, ["team-a"]);
    let (entries, _) = reader.entries_page("namespace=team-a").await;
    assert_eq!(names(&entries), ["x", "z"].map(String::from).into());
    let detail = reader
        .get_ok(&format!("/admin/v1/entries/{}", id_of("x")))
        .await;
    assert_eq!(detail["namespace"], "team-a");

    let series = reader.get_ok("/admin/v1/history?namespace=team-a").await;
    assert_eq!(series["namespace"], "team-a");
    let other = reader.get("/admin/v1/history?namespace=team-b").await;
    other.expect_error(StatusCode::FORBIDDEN, Some("forbidden"));

    // Another namespace's entries are forbidden or, by id, absent.
    let other = reader.get("/admin/v1/entries?namespace=team-b").await;
    other.expect_error(StatusCode::FORBIDDEN, Some("forbidden"));
    let unnamed = reader.get("/admin/v1/entries").await;
    unnamed.expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
    let by_id = reader
        .get(&format!("/admin/v1/entries/{}", id_of("y")))
        .await;
    by_id.expect_error(StatusCode::NOT_FOUND, Some("not_found"));
    let del = reader
        .delete(&format!("/admin/v1/entries/{}", id_of("y")))
        .await;
    del.expect_error(StatusCode::NOT_FOUND, Some("not_found"));
    // Read-only where it may read.
    let del = reader
        .delete(&format!("/admin/v1/entries/{}", id_of("x")))
        .await;
    del.expect_error(StatusCode::FORBIDDEN, Some("forbidden"));
    let purge = reader.delete("/admin/v1/namespaces/team-a").await;
    purge.expect_error(StatusCode::FORBIDDEN, Some("forbidden"));
    for path in [
        "/admin/v1/stats",
        "/admin/v1/history",
        "/admin/v1/workers",
        "/admin/v1/tokens",
    ] {
        reader
            .get(path)
            .await
            .expect_error(StatusCode::FORBIDDEN, Some("forbidden"));
    }
    assert_eq!(
        admin.all_entries("", 100).await.len(),
        3,
        "refusals changed nothing"
    );

    let writer = AdminApi::with_token(&base, &scoped_token(&key, "team-a", READ | WRITE));
    let purge = writer.delete("/admin/v1/namespaces/team-b").await;
    purge.expect_error(StatusCode::FORBIDDEN, Some("forbidden"));
    let removed = writer
        .delete(&format!("/admin/v1/entries/{}", id_of("x")))
        .await;
    removed.expect(StatusCode::OK);
    writer
        .delete("/admin/v1/namespaces/team-a")
        .await
        .expect(StatusCode::OK);
    let left = admin.all_entries("", 100).await;
    assert_eq!(names(&left), ["y"].map(String::from).into());
}
