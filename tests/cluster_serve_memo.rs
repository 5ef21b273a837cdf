//! Replicas answer HEADs and tag lookups from memory (the metadata cache),
//! and what one replica changes the others serve next: a tag moved through
//! A is what B resolves, a manifest deleted through A is gone through B,
//! and a blob or tag B missed before is found through B as soon as A has
//! acknowledged it.

mod cluster_support;
mod common;
mod oci_support;

use cluster_support::serve::{metric, scrape, Fleet};
use oci_support::*;
use reqwest::{Client, StatusCode};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_or_deleted_through_one_replica_is_what_the_others_serve_next() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let [a, b] = <[_; 2]>::try_from(fleet.replicas(2)).ok().unwrap();
    let (a, b) = (a.url(""), b.url(""));
    let http = Client::new();
    cluster_support::until("both replicas hear the database", || async {
        let (ta, tb) = (
            scrape(&http, a.clone()).await,
            scrape(&http, b.clone()).await,
        );
        [ta, tb]
            .iter()
            .all(|t| metric(t, "larder_cluster_metadata_cache_listening") == Some(1.0))
    })
    .await;

    let config = fixed_bytes(1, 300);
    let layer = fixed_bytes(2, 4096);
    // B misses the layer and the tag twice (the second time from memory),
    // as BuildKit's HEAD before a push and a first import do.
    let head = |base: &str, what: &str| http.head(format!("{base}/v2/team/app/{what}")).send();
    let layer_path = format!("blobs/{}", sha256_digest(&layer));
    for _ in 0..2 {
        for what in [&layer_path[..], "manifests/latest"] {
            let res = head(&b, what).await.unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{what}");
        }
    }
    push_blob(&http, &a, "team/app", &config).await;
    let layer_digest = push_blob(&http, &a, "team/app", &layer).await;
    let res = head(&b, &layer_path).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "found through B once pushed through A"
    );
    let manifest = |n: u32| {
        let mut layer_desc = descriptor("application/vnd.oci.image.layer.v1.tar", &layer);
        layer_desc["annotations"] = serde_json::json!({ "n": n.to_string() });
        let config_desc = descriptor("application/vnd.oci.image.config.v1+json", &config);
        image_manifest(&config_desc, &[layer_desc])
    };
    let (one, two) = (manifest(1), manifest(2));
    let one_digest = put_manifest(&http, &a, "team/app", "latest", MANIFEST, &one).await;
    let res = head(&b, "manifests/latest").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the tag too");

    // B resolves the tag and HEADs the layer twice: the second time from
    // memory.
    let hits = |text: &str| metric(text, "larder_cluster_metadata_cache_hits_total").unwrap();
    for _ in 0..2 {
        let (got, _, digest) = get_manifest(&http, &b, "team/app", "latest").await;
        assert_eq!((got, digest), (one.clone(), one_digest.clone()));
        let res = (http.head(format!("{b}/v2/team/app/blobs/{layer_digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let before = hits(&scrape(&http, b.clone()).await);
    assert!(
        before >= 3.0,
        "tag, entry and blob answered from memory: {before}"
    );

    // The tag moves through A: A serves the new manifest at once, B as soon
    // as the database's notice reaches it.
    let two_digest = put_manifest(&http, &a, "team/app", "latest", MANIFEST, &two).await;
    let (got, _, _) = get_manifest(&http, &a, "team/app", "latest").await;
    assert_eq!(got, two);
    cluster_support::until("B serves the moved tag", || async {
        get_manifest(&http, &b, "team/app", "latest").await.2 == two_digest
    })
    .await;

    // The manifest is deleted through A: B's tag and digest lookups miss.
    let res = (http.delete(format!("{a}/v2/team/app/manifests/{two_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    cluster_support::until("B no longer finds the deleted manifest", || async {
        let by_tag = http.head(format!("{b}/v2/team/app/manifests/latest"));
        let by_digest = http.head(format!("{b}/v2/team/app/manifests/{two_digest}"));
        let (t, d) = (
            by_tag.send().await.unwrap(),
            by_digest.send().await.unwrap(),
        );
        t.status() == StatusCode::NOT_FOUND && d.status() == StatusCode::NOT_FOUND
    })
    .await;
    // The first manifest is still there under its digest, through both.
    for base in [&a, &b] {
        let (got, _, _) = get_manifest(&http, base, "team/app", &one_digest).await;
        assert_eq!(got, one);
    }
}
