//! What the REAPI tests share: a channel to the test server, digests, and
//! blobs put into the CAS with one batch call.
#![allow(dead_code)]

use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;
use re::content_addressable_storage_client::ContentAddressableStorageClient as CasClient;
use tonic::transport::Channel;

use crate::common::TestServer;
use crate::httpcache_support::sha256_hex;

pub async fn channel(s: &TestServer) -> Channel {
    Channel::from_shared(s.base())
        .expect("server URL")
        .connect()
        .await
        .expect("h2c connection")
}

pub fn digest(data: &[u8]) -> re::Digest {
    re::Digest {
        hash: sha256_hex(data),
        size_bytes: data.len() as i64,
    }
}

/// Stores `blobs` in `instance` and checks that each was accepted.
pub async fn put(cas: &mut CasClient<Channel>, instance: &str, blobs: &[&[u8]]) {
    let req = re::BatchUpdateBlobsRequest {
        instance_name: instance.into(),
        requests: blobs
            .iter()
            .map(|data| re::batch_update_blobs_request::Request {
                digest: Some(digest(data)),
                data: data.to_vec(),
                compressor: 0,
            })
            .collect(),
        digest_function: 0,
    };
    let res = cas.batch_update_blobs(req).await.expect("batch update");
    for r in res.into_inner().responses {
        assert_eq!(r.status.map(|s| s.code), Some(0), "{:?}", r.digest);
    }
}
