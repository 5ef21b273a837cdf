//! Recovery from a full disk that broke the index: once an index write met
//! ENOSPC, sled refused every later write until it was opened again, so the
//! server answered 500 until a restart and exited 1 on SIGTERM. Now the
//! index is repaired in place once there is room, and a stop is clean.

mod common;
mod faults_support;

use std::time::Duration;

use common::process::LarderProcess;
use faults_support::*;
use larder::config::Size;
use reqwest::StatusCode;
use serde_json::json;

const RESUME: Duration = Duration::from_secs(20);

async fn create_token(server: &common::TestServer, name: &str) -> reqwest::Response {
    common::client()
        .post(server.url("/admin/v1/tokens"))
        .json(&json!({ "namespaces": ["team"], "read": true, "name": name }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_writes_on_a_full_disk_are_507_and_resume_without_a_restart() {
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let mut server = common::TestServer::start_with(|c| {
        disk_config(&disk, c);
        c.storage.disk_reserve = Size(0);
    })
    .await;
    assert_eq!(create_token(&server, "before").await.status(), 201);
    disk.fill();
    // Index records, until the index itself meets ENOSPC.
    let name = "n".repeat(120);
    let mut refused = None;
    for _ in 0..5000 {
        let res = create_token(&server, &name).await;
        match res.status() {
            StatusCode::CREATED => {}
            status => {
                refused = Some((status, res.text().await.unwrap()));
                break;
            }
        }
    }
    let (status, body) = refused.expect("the index never met the full disk");
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(body.contains("storage is full"), "{body}");
    assert!(
        !body.contains("Os {"),
        "debug text in an error body: {body}"
    );

    disk.free_filler();
    ready_becomes(&server, 200, RESUME).await;
    let res = create_token(&server, "after").await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap()
    );
    // A clean stop (the harness asserts the server's result is Ok).
    server.shutdown().await;
}

/// The real binary, stopped by SIGTERM while the disk is still full and the
/// index has refused a write: the drain is clean, so the exit is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_full_disk_exits_0() {
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let mut server = LarderProcess::start_env(
        &disk.data_dir(),
        &[],
        &[("LARDER__STORAGE__DISK_RESERVE", "0")],
    );
    let c = common::client();
    let token = |name: String| {
        c.post(server.url("/admin/v1/tokens"))
            .json(&json!({ "namespaces": ["team"], "read": true, "name": name }))
            .send()
    };
    assert_eq!(token("before".into()).await.unwrap().status(), 201);
    disk.fill();
    let name = "n".repeat(120);
    let mut refused = false;
    for _ in 0..5000 {
        if token(name.clone()).await.unwrap().status() == StatusCode::INSUFFICIENT_STORAGE {
            refused = true;
            break;
        }
    }
    assert!(refused, "the index never met the full disk");
    server.sigterm();
    let status = server.wait(RESUME);
    assert!(
        status.success(),
        "exit {status:?} on a full disk:\n{}",
        server.log_lines.join("\n")
    );
}
