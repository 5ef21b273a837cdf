//! `GET /admin/v1/entries/{id}`: an entry with the blobs it pins, each with
//! its size and how many entries share it, against a live server; and the
//! list's name-prefix filter.

mod admin_support;
mod common;

use admin_support::*;
use common::TestServer;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_lists_its_blobs_and_how_many_entries_share_each() {
    let server = TestServer::start().await;
    let api = AdminApi::anonymous(&server.base());
    let c = common::client();
    for (path, body) in [
        ("/cache/team/a", vec![1u8; 4096]),
        ("/cache/other/b", vec![1u8; 4096]),
        ("/cache/team/c", vec![2u8; 1500]),
    ] {
        let res = c
            .put(server.url(path))
            .body(body)
            .send()
            .await
            .expect("PUT");
        assert!(res.status().is_success(), "{path}: {}", res.status());
    }
    let all = api.all_entries("", 100).await;
    let id_of = |name: &str| {
        let e = all.iter().find(|e| e["name"] == name).expect(name);
        num(&e["id"], "id")
    };

    let shared = api
        .get_ok(&format!("/admin/v1/entries/{}", id_of("a")))
        .await;
    assert_eq!(shared["name"], "a");
    assert_eq!(shared["namespace"], "team");
    let blobs = shared["pinned_blobs"].as_array().expect("pinned_blobs");
    assert_eq!(blobs.len(), 1, "{shared}");
    assert_eq!(num(&blobs[0]["size"], "size"), 4096);
    assert_eq!(num(&blobs[0]["shared_by"], "shared_by"), 2, "{shared}");
    assert_eq!(blobs[0]["id"].as_str().map(str::len), Some(64));
    assert_eq!(blobs[0]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(num(&shared["only_here_bytes"], "only_here_bytes"), 0);

    let alone = api
        .get_ok(&format!("/admin/v1/entries/{}", id_of("c")))
        .await;
    assert_eq!(num(&alone["pinned_blobs"][0]["shared_by"], "shared_by"), 1);
    assert_eq!(num(&alone["only_here_bytes"], "only_here_bytes"), 1500);

    // The list filters by name prefix before paging.
    let (page, next) = api.entries_page("prefix=c&limit=1").await;
    assert_eq!(names(&page), ["c"].map(String::from).into());
    assert_eq!(next, None, "one entry starts with c");
    let (page, _) = api.entries_page("namespace=team&prefix=a").await;
    assert_eq!(names(&page), ["a"].map(String::from).into());

    let missing = api.get("/admin/v1/entries/999999").await;
    missing.expect_error(StatusCode::NOT_FOUND, Some("not_found"));
    let bad = api.get("/admin/v1/entries/x1").await;
    bad.expect_error(StatusCode::BAD_REQUEST, Some("bad_request"));
}
