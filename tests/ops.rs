//! Operational behaviour: a separate metrics port, and abandoned upload
//! sessions expiring with their bytes.

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
    let text = c
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
