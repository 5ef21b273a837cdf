//! Smaller hostile-client cases of issue 17: concurrent PUTs of one new key
//! answer exactly one 201; a manifest descriptor whose size disagrees with
//! the stored blob is refused; Turborepo's events body is bounded.

mod common;
mod oci_support;

use common::TestServer;
use oci_support::{descriptor, image_manifest, push_blob, try_put_manifest, OCI_MANIFEST};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn fifty_concurrent_puts_of_a_new_key_answer_one_201() {
    let server = TestServer::start().await;
    let client = common::client();
    for round in 0..3 {
        let url = server.url(&format!("/cache/team/race-{round}"));
        let puts = (0..50).map(|i| {
            let (client, url) = (client.clone(), url.clone());
            // Round 0: the same value; later rounds: a value per writer.
            let body = if round == 0 {
                b"same value".to_vec()
            } else {
                format!("value {i}").into_bytes()
            };
            async move { client.put(url).body(body).send().await.unwrap().status() }
        });
        let statuses = futures_util::future::join_all(puts).await;
        let created = statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        let replaced = statuses
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count();
        assert_eq!((created, replaced), (1, 49), "round {round}: {statuses:?}");
        let res = client.put(&url).body("again").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "an existing key");
    }
}

#[tokio::test]
async fn a_descriptor_size_that_disagrees_with_the_blob_is_refused() {
    let server = TestServer::start().await;
    let (client, base) = (common::client(), server.base());
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = vec![5u8; 1000];
    push_blob(&client, &base, "app", config).await;
    push_blob(&client, &base, "app", &layer).await;
    let config_desc = descriptor("application/vnd.oci.image.config.v1+json", config);
    let mut layer_desc = descriptor("application/vnd.oci.image.layer.v1.tar", &layer);
    layer_desc["size"] = 999.into();
    let manifest = image_manifest(&config_desc, &[layer_desc.clone()]);
    let res = try_put_manifest(&client, &base, "app", "bad", OCI_MANIFEST, &manifest).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_INVALID", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("999"),
        "{body}"
    );
    let res = client
        .get(format!("{base}/v2/app/manifests/bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "nothing was stored");

    layer_desc["size"] = 1000.into();
    let manifest = image_manifest(&config_desc, &[layer_desc]);
    let res = try_put_manifest(&client, &base, "app", "good", OCI_MANIFEST, &manifest).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn turborepo_events_bodies_are_bounded() {
    let server = TestServer::start().await;
    let client = common::client();
    let url = server.url("/v8/artifacts/events?slug=team");
    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"[{"source":"LOCAL","event":"HIT","hash":"abc","duration":1}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b' '; 10 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The same without a Content-Length: read up to the bound, then refused.
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1 << 20]));
    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    // The server may close before the client has sent everything.
    if let Ok(res) = res {
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
