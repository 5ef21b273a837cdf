//! Bazel's gRPC cache on a full disk (a real small tmpfs): every write RPC
//! answers RESOURCE_EXHAUSTED, which Bazel reports as a failed upload and
//! builds on, stores nothing, and the server takes writes again by itself
//! once space is back.

mod common;
mod faults_support;
mod httpcache_support;
mod reapi_support;

use bs::byte_stream_client::ByteStreamClient;
use common::TestServer;
use faults_support::*;
use httpcache_support::sha256_hex;
use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;
use larder::api::reapi::gen::google::bytestream as bs;
use larder::config::Size;
use re::action_cache_client::ActionCacheClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient as CasClient;
use reapi_support::{batch, channel, digest, is_stored, NS};
use tonic::Code;

fn one_write(data: &[u8]) -> bs::WriteRequest {
    bs::WriteRequest {
        resource_name: format!(
            "{NS}/uploads/5e3b1f52-0000-4000-8000-0000000000aa/blobs/{}/{}",
            sha256_hex(data),
            data.len()
        ),
        write_offset: 0,
        finish_write: true,
        data: data.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_resource_exhausted_and_stores_nothing() {
    let Some(disk) = SmallDisk::mount(32) else {
        return;
    };
    let s = TestServer::start_with(|c| {
        disk_config(&disk, c);
        c.storage.disk_reserve = Size(0);
    })
    .await;
    let ch = channel(&s).await;
    let (mut cas, mut bytestream, mut ac) = (
        CasClient::new(ch.clone()),
        ByteStreamClient::new(ch.clone()),
        ActionCacheClient::new(ch),
    );

    // A batch answers per blob: the call succeeds, the blob's status says why.
    let small = vec![3u8; 64 << 10];
    on_full_disk(&disk, &s, || async {
        let res = cas
            .batch_update_blobs(batch(NS, &[&small]))
            .await
            .expect("batch");
        let st = res.into_inner().responses[0]
            .status
            .clone()
            .expect("status");
        assert_eq!(st.code, Code::ResourceExhausted as i32, "{}", st.message);
        assert!(st.message.contains("storage is full"), "{}", st.message);
    })
    .await;
    assert!(!is_stored(&s, &small).await);

    let large = vec![4u8; 1 << 20];
    on_full_disk(&disk, &s, || async {
        let req = futures_util::stream::iter([one_write(&large)]);
        let err = bytestream
            .write(req)
            .await
            .expect_err("a write on a full disk");
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    })
    .await;
    assert!(!is_stored(&s, &large).await);

    // An action result is a small entry of its own: refused the same way.
    let out = &b"an output"[..];
    let up = cas
        .batch_update_blobs(batch(NS, &[out]))
        .await
        .expect("batch");
    assert_eq!(
        up.into_inner().responses[0].status.as_ref().unwrap().code,
        0
    );
    let action = digest(b"an action");
    let update = || re::UpdateActionResultRequest {
        instance_name: NS.into(),
        action_digest: Some(action.clone()),
        action_result: Some(re::ActionResult {
            output_files: vec![re::OutputFile {
                path: "out".into(),
                digest: Some(digest(out)),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    on_full_disk(&disk, &s, || async {
        let err = ac.update_action_result(update()).await.expect_err("full");
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    })
    .await;
    let get = || re::GetActionResultRequest {
        instance_name: NS.into(),
        action_digest: Some(action.clone()),
        ..Default::default()
    };
    let miss = ac.get_action_result(get()).await.expect_err("not stored");
    assert_eq!(miss.code(), Code::NotFound);

    // Space is back: every write works again, no restart.
    let res = cas
        .batch_update_blobs(batch(NS, &[&small]))
        .await
        .expect("batch");
    assert_eq!(
        res.into_inner().responses[0].status.as_ref().unwrap().code,
        0
    );
    let req = futures_util::stream::iter([one_write(&large)]);
    bytestream.write(req).await.expect("a write with space");
    ac.update_action_result(update()).await.expect("an update");
    assert!(ac.get_action_result(get()).await.is_ok());
    assert!(is_stored(&s, &small).await && is_stored(&s, &large).await);
}
