//! Turborepo's remote cache API (`/v8/artifacts`) against a real server:
//! what turbo sends, what it reads back, and 4xx (never 5xx) refusals.

mod common;
mod httpcache_support;

use common::{client, TestServer};
use httpcache_support::*;
use serde_json::{json, Value};

async fn put_artifact(
    s: &TestServer,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = client()
        .put(s.url(path))
        .header("Content-Type", "application/octet-stream");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.unwrap()
}

#[tokio::test]
async fn artifacts_round_trip_with_tag_and_duration() {
    let s = TestServer::start().await;
    let status: Value = client()
        .get(s.url("/v8/artifacts/status?slug=web"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status, json!({ "status": "enabled" }));

    let artifact = data(5000, 5);
    let res = put_artifact(
        &s,
        "/v8/artifacts/a1aa6e5ae91490e9?slug=web",
        None,
        &[
            ("x-artifact-duration", "1234"),
            ("x-artifact-tag", "c2lnbmF0dXJl"),
        ],
        artifact.clone(),
    )
    .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["urls"][0],
        s.url("/v8/artifacts/a1aa6e5ae91490e9").as_str()
    );

    let res = client()
        .get(s.url("/v8/artifacts/a1aa6e5ae91490e9?slug=web"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-artifact-duration"], "1234");
    assert_eq!(res.headers()["x-artifact-tag"], "c2lnbmF0dXJl");
    assert_eq!(res.bytes().await.unwrap(), artifact);

    let res = client()
        .head(s.url("/v8/artifacts/a1aa6e5ae91490e9?slug=web"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "5000");
    assert_eq!(res.headers()["x-artifact-duration"], "1234");

    let query: Value = client()
        .post(s.url("/v8/artifacts?slug=web"))
        .json(&json!({ "hashes": ["a1aa6e5ae91490e9", "ffff000011112222"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        query["a1aa6e5ae91490e9"],
        json!({ "size": 5000, "taskDurationMs": 1234, "tag": "c2lnbmF0dXJl" })
    );
    assert!(query["ffff000011112222"]["error"].is_object());

    let events = client()
        .post(s.url("/v8/artifacts/events?slug=web"))
        .json(&json!([{ "sessionId": "x", "source": "REMOTE", "event": "HIT", "hash": "a1aa6e5ae91490e9", "duration": 1 }]))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.json::<Value>().await.unwrap(), json!({}));
}

#[tokio::test]
async fn teams_are_namespaces() {
    let s = TestServer::start().await;
    put_artifact(
        &s,
        "/v8/artifacts/0011?slug=web",
        None,
        &[],
        b"web".to_vec(),
    )
    .await;
    put_artifact(
        &s,
        "/v8/artifacts/0011?teamId=team_docs",
        None,
        &[],
        b"docs".to_vec(),
    )
    .await;
    let get = |q: &str| {
        client()
            .get(s.url(&format!("/v8/artifacts/0011?{q}")))
            .send()
    };
    assert_eq!(get("slug=web").await.unwrap().text().await.unwrap(), "web");
    assert_eq!(
        get("teamId=team_docs").await.unwrap().text().await.unwrap(),
        "docs"
    );
    // teamId wins over slug when turbo sends both.
    assert_eq!(
        get("teamId=team_docs&slug=web")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "docs"
    );
    let miss = get("slug=other").await.unwrap();
    assert_eq!(miss.status(), 404);
    assert_eq!(
        miss.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    // No team at all: the "default" namespace in auth mode none.
    put_artifact(&s, "/v8/artifacts/0022", None, &[], b"dflt".to_vec()).await;
    assert_eq!(
        client()
            .get(s.url("/v8/artifacts/0022"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "dflt"
    );
}

#[tokio::test]
async fn without_a_team_the_token_namespace_is_used() {
    let s = token_server().await;
    let t = token(&s, &[("mono", RW)]);
    let res = put_artifact(&s, "/v8/artifacts/abcd", Some(&t), &[], b"m".to_vec()).await;
    assert_eq!(res.status(), 202);
    let res = client()
        .get(s.url("/v8/artifacts/abcd?slug=mono"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "m");
}

#[tokio::test]
async fn refusals_are_4xx_json_and_store_nothing() {
    let s = token_server().await;
    let rw = token(&s, &[("web", RW)]);
    let ro = token(&s, &[("web", RO)]);
    let body = data(3000, 11);

    let expect = |res: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(res.status(), status);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    };
    let path = "/v8/artifacts/beef?slug=web";
    expect(
        put_artifact(&s, path, None, &[], body.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    expect(
        put_artifact(&s, path, Some("garbage"), &[], body.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    // turbo reads `forbidden` as "no write access to the remote cache".
    expect(
        put_artifact(&s, path, Some(&ro), &[], body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    let other = "/v8/artifacts/beef?slug=other";
    expect(
        put_artifact(&s, other, Some(&rw), &[], body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    expect(
        put_artifact(
            &s,
            path,
            Some(&rw),
            &[("x-artifact-duration", "soon")],
            body.clone(),
        )
        .await,
        400,
        "bad_request",
    )
    .await;
    let long_tag = "t".repeat(601);
    expect(
        put_artifact(
            &s,
            path,
            Some(&rw),
            &[("x-artifact-tag", &long_tag)],
            body.clone(),
        )
        .await,
        400,
        "bad_request",
    )
    .await;
    expect(
        put_artifact(
            &s,
            "/v8/artifacts/beef?slug=..",
            Some(&rw),
            &[],
            body.clone(),
        )
        .await,
        400,
        "invalid_key",
    )
    .await;
    let auth = format!("Bearer {rw}");
    for hostile in ["/v8/artifacts/%2e%2e?slug=web", "/v8/artifacts/..?slug=web"] {
        let res = raw_request(&s, "PUT", hostile, &[("Authorization", &auth)], &body).await;
        assert_eq!(res.status, 400, "{hostile}");
        let v: Value = serde_json::from_slice(&res.body).unwrap();
        assert_eq!(v["error"]["code"], "invalid_key");
    }
    assert_eq!(files_holding(&s.data_dir(), &body), 0);
    let res = client()
        .get(s.url(path))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn oversized_artifacts_and_a_full_disk_are_413_not_5xx() {
    let s = TestServer::start_with(|c| c.storage.max_blob_size = larder::config::Size(1024)).await;
    let res = put_artifact(&s, "/v8/artifacts/big?slug=web", None, &[], data(2048, 1)).await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "too_large"
    );

    // A budget smaller than two artifacts, the first just read: its lease
    // keeps its bytes, so the second would cross the hard limit.
    let s = TestServer::start_with(|c| c.storage.max_size = larder::config::Size(4096)).await;
    let res = put_artifact(&s, "/v8/artifacts/a?slug=web", None, &[], data(3000, 1)).await;
    assert_eq!(res.status(), 202);
    let res = client()
        .get(s.url("/v8/artifacts/a?slug=web"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = put_artifact(&s, "/v8/artifacts/b?slug=web", None, &[], data(3000, 2)).await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "storage_full"
    );
}
