//! What the REAPI tests share: a channel to the test server, digests,
//! authorised requests, ByteStream writes and reads, and blobs put into the
//! CAS with one batch call.
#![allow(dead_code)]

use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;
use larder::api::reapi::gen::google::bytestream as bs;
use re::content_addressable_storage_client::ContentAddressableStorageClient as CasClient;
use tonic::transport::Channel;
use tonic::Request;

use crate::common::{client, TestServer};
use crate::httpcache_support::sha256_hex;

/// The instance name (namespace) the tests use.
pub const NS: &str = "team";

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

/// `msg` with the bearer token Bazel sends (`--remote_header`), if any.
pub fn authed<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        let v = format!("Bearer {t}").parse().expect("header value");
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// A BatchUpdateBlobs of `blobs` into `instance`, each under its digest.
pub fn batch(instance: &str, blobs: &[&[u8]]) -> re::BatchUpdateBlobsRequest {
    re::BatchUpdateBlobsRequest {
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
    }
}

/// Stores `blobs` in `instance` and checks that each was accepted.
pub async fn put(cas: &mut CasClient<Channel>, instance: &str, blobs: &[&[u8]]) {
    let res = cas
        .batch_update_blobs(batch(instance, blobs))
        .await
        .expect("batch update");
    for r in res.into_inner().responses {
        assert_eq!(r.status.map(|s| s.code), Some(0), "{:?}", r.digest);
    }
}

/// The requests of a ByteStream write of `data` in `chunk`-byte pieces
/// (`write_offset` counts the bytes sent, compressed or not).
pub fn writes(name: &str, data: &[u8], chunk: usize) -> Vec<bs::WriteRequest> {
    let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| bs::WriteRequest {
            resource_name: if i == 0 { name.into() } else { String::new() },
            write_offset: (i * chunk) as i64,
            finish_write: i + 1 == pieces.len(),
            data: piece.to_vec(),
        })
        .collect()
}

/// A ByteStream read of `name` from `offset` to the end.
pub async fn read_all(
    bs: &mut bs::byte_stream_client::ByteStreamClient<Channel>,
    name: &str,
    offset: i64,
) -> Result<Vec<u8>, tonic::Status> {
    let req = bs::ReadRequest {
        resource_name: name.to_owned(),
        read_offset: offset,
        read_limit: 0,
    };
    let mut stream = bs.read(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await? {
        out.extend(msg.data);
    }
    Ok(out)
}

/// Whether `data` is in `NS`'s CAS, asked over HTTP.
pub async fn is_stored(s: &TestServer, data: &[u8]) -> bool {
    let url = s.url(&format!("/cache/{NS}/cas/{}", sha256_hex(data)));
    let res = client().head(url).send().await.expect("HEAD");
    res.status().is_success()
}
