//! Operational behaviour: a separate metrics port, abandoned upload
//! sessions expiring with their bytes, and the index reopened while quiet.

mod common;
mod oci_support;

use std::time::Duration;

use common::TestServer;
use larder::config::Span;
use oci_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_also_be_served_on_a_port_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = larder::server::Server::bind(config).await.unwrap();
    let (main, metrics) = (
        server.local_addr(),
        server.metrics_addr().expect("metrics port"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let c = common::client();
    let text = metrics_text(&c, &format!("http://{metrics}")).await;
    assert!(
        text.contains("# TYPE larder_storage_used_bytes gauge"),
        "{text}"
    );
    // Only metrics there: the cache API stays on the main port.
    let res = c.get(format!("http://{metrics}/v2/")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        c.get(format!("http://{main}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_session_expires_with_its_bytes() {
    let server = TestServer::start_with(|c| {
        c.gc.upload_expiry = Span(Duration::from_millis(300));
        c.gc.interval = Span(Duration::from_millis(100));
    })
    .await;
    let (c, base) = (common::client(), server.base());
    let location = start_upload(&c, &base, "team/app").await;
    let res = c
        .patch(&location)
        .body(vec![7u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let uploads = server.data_dir().join("uploads");
    assert_eq!(files_under(&uploads).len(), 1);

    // Nothing touches the session: GC ends it and deletes what it received.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = c.get(&location).send().await.unwrap().status();
        if status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        files_under(&uploads).is_empty(),
        "{:?}",
        files_under(&uploads)
    );
    let res = c.patch(&location).body(vec![1u8; 10]).send().await.unwrap();
    expect_error(res, reqwest::StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

async fn metrics_text(c: &reqwest::Client, base: &str) -> String {
    c.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of a metric without labels in a `/metrics` exposition.
async fn metric(c: &reqwest::Client, base: &str, name: &str) -> u64 {
    let text = metrics_text(c, base).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// A quiet server reopens its index (so a start after long uptime replays
/// little) and goes on serving and storing as before, across a restart too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_server_reopens_its_index_and_loses_nothing() {
    let server = TestServer::start_with(|c| {
        c.storage.index_snapshot_interval = Span(Duration::from_millis(100));
    })
    .await;
    let (c, base) = (common::client(), server.base());
    let layer = fixed_bytes(1, 100_000);
    let layer_digest = push_blob(&c, &base, "team/app", &layer).await;
    let config = fixed_bytes(2, 300);
    let config_digest = push_blob(&c, &base, "team/app", &config).await;
    let manifest = image_manifest(
        &descriptor(OCI_CONFIG, &config),
        &[descriptor(OCI_LAYER_GZIP, &layer)],
    );
    let media = OCI_MANIFEST;
    put_manifest(&c, &base, "team/app", "v1", media, &manifest).await;

    // Scrapes are not requests to the cache: the server is quiet now.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while metric(&c, &base, "larder_index_snapshots_total").await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no index snapshot within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(get_manifest(&c, &base, "team/app", "v1").await.0, manifest);
    assert_eq!(get_blob(&c, &base, "team/app", &layer_digest).await, layer);
    put_manifest(&c, &base, "team/app", "v2", media, &manifest).await;
    let server = server.restart().await;
    let base = server.base();
    for tag in ["v1", "v2"] {
        assert_eq!(get_manifest(&c, &base, "team/app", tag).await.0, manifest);
    }
    assert_eq!(
        get_blob(&c, &base, "team/app", &config_digest).await,
        config
    );
}
