//! Bazel's gRPC remote cache (REAPI v2) against a real server, with a tonic
//! client built from the same generated code: capabilities per token, the
//! CAS batch calls, the action cache, and the same entries over HTTP.

mod common;
mod httpcache_support;
mod reapi_support;

use common::{client, TestServer};
use httpcache_support::{sha256_hex, token, token_server};
use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;
use larder::auth::{READ, WRITE};
use prost::Message as _;
use re::action_cache_client::ActionCacheClient;
use re::capabilities_client::CapabilitiesClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient as CasClient;
use reapi_support::{authed, channel, digest, NS};
use tonic::transport::Channel;
use tonic::Code;

const MAX_MESSAGE: usize = 8 << 20;

async fn cas(s: &TestServer) -> CasClient<Channel> {
    CasClient::new(channel(s).await)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

fn upload(blobs: &[(re::Digest, &[u8])]) -> re::BatchUpdateBlobsRequest {
    re::BatchUpdateBlobsRequest {
        instance_name: NS.into(),
        requests: blobs
            .iter()
            .map(|(d, data)| re::batch_update_blobs_request::Request {
                digest: Some(d.clone()),
                data: data.to_vec(),
                compressor: 0,
            })
            .collect(),
        digest_function: 0,
    }
}

fn read(digests: &[re::Digest]) -> re::BatchReadBlobsRequest {
    re::BatchReadBlobsRequest {
        instance_name: NS.into(),
        digests: digests.to_vec(),
        ..Default::default()
    }
}

fn missing(digests: &[re::Digest]) -> re::FindMissingBlobsRequest {
    re::FindMissingBlobsRequest {
        instance_name: NS.into(),
        blob_digests: digests.to_vec(),
        digest_function: 0,
    }
}

fn codes(res: &re::BatchUpdateBlobsResponse) -> Vec<i32> {
    res.responses
        .iter()
        .map(|r| r.status.as_ref().map_or(-1, |s| s.code))
        .collect()
}

#[tokio::test]
async fn capabilities_offer_sha256_and_updates_only_to_writers() {
    let s = token_server().await;
    let mut caps = CapabilitiesClient::new(channel(&s).await);
    let ask = |t: Option<String>| {
        authed(
            re::GetCapabilitiesRequest {
                instance_name: NS.into(),
            },
            t.as_deref(),
        )
    };
    let rw = caps
        .get_capabilities(ask(Some(token(&s, &[(NS, READ | WRITE)]))))
        .await
        .expect("capabilities")
        .into_inner();
    let cache = rw.cache_capabilities.expect("cache capabilities");
    assert_eq!(
        cache.digest_functions,
        [re::digest_function::Value::Sha256 as i32]
    );
    assert!(
        cache
            .action_cache_update_capabilities
            .unwrap()
            .update_enabled
    );
    assert!(cache.max_batch_total_size_bytes >= 1 << 20);
    assert!(rw.execution_capabilities.is_none(), "cache only");

    let ro = caps
        .get_capabilities(ask(Some(token(&s, &[(NS, READ)]))))
        .await
        .expect("capabilities")
        .into_inner();
    let update = ro
        .cache_capabilities
        .unwrap()
        .action_cache_update_capabilities;
    assert!(!update.unwrap().update_enabled);

    let none = caps.get_capabilities(ask(None)).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn batch_upload_then_find_missing_and_read_back() {
    let s = TestServer::start().await;
    let mut cas = cas(&s).await;
    let (a, b) = (&b"first blob"[..], &b"second blob"[..]);
    let (da, db) = (digest(a), digest(b));
    let found = cas
        .find_missing_blobs(missing(&[da.clone(), db.clone()]))
        .await;
    assert_eq!(found.unwrap().into_inner().missing_blob_digests.len(), 2);

    let up = cas
        .batch_update_blobs(upload(&[(da.clone(), a)]))
        .await
        .unwrap();
    assert_eq!(codes(&up.into_inner()), [0]);
    let found = cas
        .find_missing_blobs(missing(&[da.clone(), db.clone()]))
        .await;
    assert_eq!(
        found.unwrap().into_inner().missing_blob_digests,
        std::slice::from_ref(&db)
    );

    let got = cas.batch_read_blobs(read(&[da.clone(), db.clone()])).await;
    let got = got.unwrap().into_inner().responses;
    assert_eq!(got[0].data, a);
    assert_eq!(got[0].status.as_ref().unwrap().code, 0);
    assert_eq!(got[1].status.as_ref().unwrap().code, Code::NotFound as i32);
}

#[tokio::test]
async fn a_wrong_digest_is_invalid_and_stores_nothing() {
    let s = TestServer::start().await;
    let mut cas = cas(&s).await;
    let claimed = digest(b"what the client says");
    let good = digest(b"good");
    let bad_hash = re::Digest {
        hash: "NOT-HEX".into(),
        size_bytes: 3,
    };
    let res = cas
        .batch_update_blobs(upload(&[
            (claimed.clone(), &b"what the client sends"[..]),
            (bad_hash, b"abc"),
            (good.clone(), b"good"),
        ]))
        .await
        .unwrap()
        .into_inner();
    let invalid = Code::InvalidArgument as i32;
    assert_eq!(codes(&res), [invalid, invalid, 0]);
    let found = cas
        .find_missing_blobs(missing(&[claimed.clone(), good]))
        .await;
    assert_eq!(found.unwrap().into_inner().missing_blob_digests, [claimed]);
}

#[tokio::test]
async fn a_batch_over_the_advertised_size_is_invalid() {
    let s = TestServer::start().await;
    let mut cas = cas(&s).await;
    let big = vec![7u8; 5 << 19];
    let other = vec![8u8; 2 << 20];
    let err = cas
        .batch_update_blobs(upload(&[(digest(&big), &big), (digest(&other), &other)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let found = cas.find_missing_blobs(missing(&[digest(&big)])).await;
    assert_eq!(found.unwrap().into_inner().missing_blob_digests.len(), 1);
}

fn action_result(outputs: &[(&str, re::Digest)]) -> re::ActionResult {
    re::ActionResult {
        output_files: outputs
            .iter()
            .map(|(path, d)| re::OutputFile {
                path: (*path).into(),
                digest: Some(d.clone()),
                ..Default::default()
            })
            .collect(),
        exit_code: 0,
        ..Default::default()
    }
}

fn update(action: &re::Digest, result: re::ActionResult) -> re::UpdateActionResultRequest {
    re::UpdateActionResultRequest {
        instance_name: NS.into(),
        action_digest: Some(action.clone()),
        action_result: Some(result),
        ..Default::default()
    }
}

fn get(action: &re::Digest) -> re::GetActionResultRequest {
    re::GetActionResultRequest {
        instance_name: NS.into(),
        action_digest: Some(action.clone()),
        ..Default::default()
    }
}

#[tokio::test]
async fn action_results_round_trip_and_need_their_outputs() {
    let s = TestServer::start().await;
    let ch = channel(&s).await;
    let (mut cas, mut ac) = (CasClient::new(ch.clone()), ActionCacheClient::new(ch));
    let action = digest(b"an action");
    let miss = ac.get_action_result(get(&action)).await.unwrap_err();
    assert_eq!(miss.code(), Code::NotFound);

    let out = &b"compiled output"[..];
    let up = cas.batch_update_blobs(upload(&[(digest(out), out)])).await;
    assert_eq!(codes(&up.unwrap().into_inner()), [0]);
    let result = action_result(&[("bin/out", digest(out))]);
    ac.update_action_result(update(&action, result.clone()))
        .await
        .expect("update");
    let hit = ac.get_action_result(get(&action)).await.expect("a hit");
    assert_eq!(hit.into_inner(), result);

    // A result naming a blob the cache lacks is refused, and never a hit.
    let other = digest(b"another action");
    let absent = action_result(&[("bin/gone", digest(b"never uploaded"))]);
    let err = ac.update_action_result(update(&other, absent)).await;
    assert_eq!(err.unwrap_err().code(), Code::FailedPrecondition);
    let miss = ac.get_action_result(get(&other)).await.unwrap_err();
    assert_eq!(miss.code(), Code::NotFound);
}

#[tokio::test]
async fn an_action_result_whose_output_is_missing_is_not_found() {
    let s = TestServer::start().await;
    let ch = channel(&s).await;
    let (mut cas, mut ac) = (CasClient::new(ch.clone()), ActionCacheClient::new(ch));
    // An HTTP PUT of unknown length is stored unparsed, so this result
    // exists while its output does not: it is checked on every read.
    let out = &b"output uploaded later"[..];
    let action = digest(b"action stored over HTTP");
    let value = action_result(&[("out", digest(out))]).encode_to_vec();
    let chunked = futures_util::stream::once(async { Ok::<_, std::io::Error>(value) });
    let url = s.url(&format!("/cache/{NS}/ac/{}", action.hash));
    let put = client()
        .put(url)
        .body(reqwest::Body::wrap_stream(chunked))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let miss = ac.get_action_result(get(&action)).await.unwrap_err();
    assert_eq!(miss.code(), Code::NotFound);

    let up = cas.batch_update_blobs(upload(&[(digest(out), out)])).await;
    assert_eq!(codes(&up.unwrap().into_inner()), [0]);
    let hit = ac.get_action_result(get(&action)).await.expect("now whole");
    assert_eq!(hit.into_inner().output_files[0].path, "out");
}

#[tokio::test]
async fn grpc_and_http_share_the_same_blobs() {
    let s = TestServer::start().await;
    let mut cas = cas(&s).await;
    let by_grpc = &b"uploaded over gRPC"[..];
    let up = cas
        .batch_update_blobs(upload(&[(digest(by_grpc), by_grpc)]))
        .await;
    assert_eq!(codes(&up.unwrap().into_inner()), [0]);
    let url = s.url(&format!("/cache/{NS}/cas/{}", sha256_hex(by_grpc)));
    let res = client().get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), by_grpc);

    let by_http = &b"uploaded over HTTP"[..];
    let url = s.url(&format!("/cache/{NS}/cas/{}", sha256_hex(by_http)));
    let res = client().put(url).body(by_http).send().await.unwrap();
    assert!(res.status().is_success());
    let got = cas.batch_read_blobs(read(&[digest(by_http)])).await;
    assert_eq!(got.unwrap().into_inner().responses[0].data, by_http);
}
