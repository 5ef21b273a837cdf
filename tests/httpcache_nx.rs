//! Nx's self-hosted remote cache API (`/v1/cache/<hash>`, Nx ≥ 20.8)
//! against a real server: the statuses its OpenAPI spec names.

mod common;
mod httpcache_support;

use common::{client, TestServer};
use httpcache_support::*;

#[tokio::test]
async fn outputs_are_written_once_and_read_back() {
    let s = TestServer::start().await;
    let out = data(7000, 3);
    let url = s.url("/v1/cache/1234567890123456789");
    let miss = client().get(&url).send().await.unwrap();
    assert_eq!(miss.status(), 404);
    let res = client().put(&url).body(out.clone()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = client().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), out);
    // Records are never overwritten.
    let res = client().put(&url).body(data(10, 1)).send().await.unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        out
    );
    assert_eq!(files_holding(&s.data_dir(), &data(10, 1)), 0);
}

#[tokio::test]
async fn a_put_without_content_length_is_400() {
    let s = TestServer::start().await;
    let body = data(100, 4);
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(body.clone())]);
    let res = client()
        .put(s.url("/v1/cache/42"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(res.text().await.unwrap().contains("Content-Length"));
    assert_eq!(
        client()
            .get(s.url("/v1/cache/42"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(files_holding(&s.data_dir(), &body), 0);
}

#[tokio::test]
async fn tokens_decide_namespace_and_permission() {
    let s = token_server().await;
    let rw = token(&s, &[("nx-team", RW)]);
    let ro = token(&s, &[("nx-team", RO)]);
    let other = token(&s, &[("another", RW)]);
    let url = s.url("/v1/cache/777");

    let res = client().put(&url).body("x").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = client()
        .get(&url)
        .bearer_auth("bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A read-only token may not write.
    let res = client()
        .put(&url)
        .bearer_auth(&ro)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(!res.text().await.unwrap().is_empty());

    let res = client()
        .put(&url)
        .bearer_auth(&rw)
        .body("team")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client().get(&url).bearer_auth(&ro).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "team");
    // Another token's namespace is another cache.
    let res = client().get(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn hostile_hashes_are_400() {
    let s = TestServer::start().await;
    for path in [
        "/v1/cache/..",
        "/v1/cache/%2e%2e",
        "/v1/cache/a%2fb",
        "/v1/cache/a\\b",
    ] {
        for method in ["GET", "PUT"] {
            let res = raw_request(&s, method, path, &[], b"payload").await;
            assert_eq!(res.status, 400, "{method} {path}");
        }
    }
    assert_eq!(files_holding(&s.data_dir(), b"payload"), 0);
}
