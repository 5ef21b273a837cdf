//! zstd-compressed blobs over REAPI against a real server with a tonic
//! client: ByteStream's `compressed-blobs/zstd` and the batch calls'
//! compressors, stored once uncompressed (so HTTP reads them plain), wrong
//! bytes and zstd bombs refused with nothing stored.

mod common;
mod httpcache_support;
mod reapi_support;

use bs::byte_stream_client::ByteStreamClient;
use common::{client, TestServer};
use httpcache_support::sha256_hex;
use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;
use larder::api::reapi::gen::google::bytestream as bs;
use re::compressor::Value as Compressor;
use re::content_addressable_storage_client::ContentAddressableStorageClient as CasClient;
use reapi_support::{channel, digest, read_all, writes, NS};
use tonic::Code;

/// Bytes that compress, but not to nothing: a text-like mix.
fn sample(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 4 == 0 {
                (x % 251) as u8
            } else {
                b"the quick brown fox "[i % 20]
            }
        })
        .collect()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 3).expect("compress")
}

fn unzstd(z: &[u8]) -> Vec<u8> {
    zstd::decode_all(z).expect("valid zstd")
}

fn upload_name(uuid: &str, data: &[u8]) -> String {
    format!(
        "{NS}/uploads/{uuid}/compressed-blobs/zstd/{}/{}",
        sha256_hex(data),
        data.len()
    )
}

fn read_name(data: &[u8]) -> String {
    format!(
        "{NS}/compressed-blobs/zstd/{}/{}",
        sha256_hex(data),
        data.len()
    )
}

async fn http_get(s: &TestServer, data: &[u8]) -> reqwest::Response {
    let url = s.url(&format!("/cache/{NS}/cas/{}", sha256_hex(data)));
    client().get(url).send().await.expect("HTTP GET")
}

#[tokio::test]
async fn a_multi_mib_compressed_write_reads_back_compressed_plain_and_over_http() {
    let s = TestServer::start().await;
    let mut bs = ByteStreamClient::new(channel(&s).await);
    let data = sample(6 << 20, 1);
    let z = zstd(&data);
    assert!(
        z.len() < data.len() / 2 && z.len() > 600 << 10,
        "{}",
        z.len()
    );

    let reqs = writes(&upload_name("u-1", &data), &z, 200 << 10);
    assert!(reqs.len() > 3);
    let res = bs
        .write(futures_util::stream::iter(reqs))
        .await
        .expect("write");
    // REAPI's clients expect the compressed bytes they sent.
    assert_eq!(res.into_inner().committed_size, z.len() as i64);

    let back = read_all(&mut bs, &read_name(&data), 0).await.expect("read");
    assert!(back.len() < data.len());
    assert_eq!(unzstd(&back), data);
    // An offset counts uncompressed bytes.
    let tail = read_all(&mut bs, &read_name(&data), 5 << 20).await.unwrap();
    assert_eq!(unzstd(&tail), &data[5 << 20..]);
    let plain = format!("{NS}/blobs/{}/{}", sha256_hex(&data), data.len());
    assert_eq!(read_all(&mut bs, &plain, 0).await.unwrap(), data);

    let res = http_get(&s, &data).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), data);

    let limited = bs
        .read(bs::ReadRequest {
            resource_name: read_name(&data),
            read_offset: 0,
            read_limit: 10,
        })
        .await;
    assert_eq!(limited.unwrap_err().code(), Code::InvalidArgument);

    // Writing it again, compressed, answers at once that it is there.
    let again = writes(&upload_name("u-2", &data), &z, 200 << 10);
    let res = bs.write(futures_util::stream::iter(again)).await.unwrap();
    assert_eq!(res.into_inner().committed_size, -1);
}

#[tokio::test]
async fn an_http_upload_reads_compressed_over_bytestream() {
    let s = TestServer::start().await;
    let mut bs = ByteStreamClient::new(channel(&s).await);
    let data = sample(300_000, 2);
    let url = s.url(&format!("/cache/{NS}/cas/{}", sha256_hex(&data)));
    let res = client().put(url).body(data.clone()).send().await.unwrap();
    assert!(res.status().is_success());
    let z = read_all(&mut bs, &read_name(&data), 0).await.expect("read");
    assert!(z.len() < data.len());
    assert_eq!(unzstd(&z), data);

    let empty = format!("{NS}/compressed-blobs/zstd/{}/0", sha256_hex(b""));
    let z = read_all(&mut bs, &empty, 0).await.expect("the empty blob");
    assert!(unzstd(&z).is_empty());
}

#[tokio::test]
async fn batch_calls_carry_zstd_both_ways() {
    let s = TestServer::start().await;
    let ch = channel(&s).await;
    let caps = re::capabilities_client::CapabilitiesClient::new(ch.clone())
        .get_capabilities(re::GetCapabilitiesRequest {
            instance_name: NS.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cache_capabilities
        .unwrap();
    assert_eq!(caps.supported_compressors, [Compressor::Zstd as i32]);
    assert_eq!(
        caps.supported_batch_update_compressors,
        [Compressor::Zstd as i32]
    );

    let mut cas = CasClient::new(ch);
    let blobs: Vec<Vec<u8>> = (0..3).map(|i| sample(100_000 + i, 10 + i as u32)).collect();
    let requests = blobs
        .iter()
        .map(|b| re::batch_update_blobs_request::Request {
            digest: Some(digest(b)),
            data: zstd(b),
            compressor: Compressor::Zstd as i32,
        })
        .collect();
    let res = cas
        .batch_update_blobs(re::BatchUpdateBlobsRequest {
            instance_name: NS.into(),
            requests,
            digest_function: 0,
        })
        .await
        .unwrap()
        .into_inner();
    for r in &res.responses {
        assert_eq!(r.status.as_ref().unwrap().code, 0, "{:?}", r.status);
    }
    for b in &blobs {
        assert_eq!(http_get(&s, b).await.bytes().await.unwrap(), *b);
    }

    let digests: Vec<re::Digest> = blobs.iter().map(|b| digest(b)).collect();
    let res = cas
        .batch_read_blobs(re::BatchReadBlobsRequest {
            instance_name: NS.into(),
            digests: digests.clone(),
            acceptable_compressors: vec![Compressor::Zstd as i32],
            digest_function: 0,
        })
        .await
        .unwrap()
        .into_inner();
    for (r, b) in res.responses.iter().zip(&blobs) {
        assert_eq!(r.compressor, Compressor::Zstd as i32);
        assert!(r.data.len() < b.len());
        assert_eq!(unzstd(&r.data), *b);
    }
    // Without zstd among the acceptable ones, plain.
    let res = cas
        .batch_read_blobs(re::BatchReadBlobsRequest {
            instance_name: NS.into(),
            digests,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.responses[0].compressor, Compressor::Identity as i32);
    assert_eq!(res.responses[0].data, blobs[0]);
}

#[tokio::test]
async fn wrong_bytes_bombs_and_other_compressors_are_invalid_and_store_nothing() {
    let s = TestServer::start().await;
    let ch = channel(&s).await;
    let mut bs = ByteStreamClient::new(ch.clone());
    let claimed = sample(2 << 20, 3);
    let sent = sample(2 << 20, 4);
    let reqs = writes(&upload_name("u-3", &claimed), &zstd(&sent), 64 << 10);
    let err = bs
        .write(futures_util::stream::iter(reqs))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert_eq!(http_get(&s, &claimed).await.status(), 404);
    let err = read_all(&mut bs, &read_name(&claimed), 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // 256 MiB of zeros in a few KiB, claiming to be 4 KiB.
    let bomb = zstd::bulk::compress(&vec![0u8; 256 << 20], 19).unwrap();
    assert!(bomb.len() < 64 << 10);
    let small = vec![0u8; 4096];
    let reqs = writes(&upload_name("u-4", &small), &bomb, 4096);
    let err = bs
        .write(futures_util::stream::iter(reqs))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert_eq!(http_get(&s, &small).await.status(), 404);

    let mut cas = CasClient::new(ch);
    let res = cas
        .batch_update_blobs(re::BatchUpdateBlobsRequest {
            instance_name: NS.into(),
            requests: vec![
                re::batch_update_blobs_request::Request {
                    digest: Some(re::Digest {
                        hash: sha256_hex(&small),
                        size_bytes: small.len() as i64,
                    }),
                    data: bomb,
                    compressor: Compressor::Zstd as i32,
                },
                re::batch_update_blobs_request::Request {
                    digest: Some(re::Digest {
                        hash: sha256_hex(b"abc"),
                        size_bytes: 3,
                    }),
                    data: b"abc".to_vec(),
                    compressor: Compressor::Deflate as i32,
                },
            ],
            digest_function: 0,
        })
        .await
        .unwrap()
        .into_inner();
    for r in &res.responses {
        let code = r.status.as_ref().unwrap().code;
        assert_eq!(code, Code::InvalidArgument as i32, "{:?}", r.status);
    }
    assert_eq!(http_get(&s, &small).await.status(), 404);
    assert_eq!(http_get(&s, b"abc").await.status(), 404);

    let deflate = format!("{NS}/compressed-blobs/deflate/{}/3", sha256_hex(b"abc"));
    let err = read_all(&mut bs, &deflate, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(blob_files(&s), 0);
}

/// Blob files in the server's data dir.
fn blob_files(s: &TestServer) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        count(&p)
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    count(&s.data_dir().join("blobs"))
}
