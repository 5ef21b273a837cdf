//! ByteStream for CAS blobs against a real server with a tonic client:
//! chunked writes, offset reads, refused digests and resource names, the
//! same blobs over HTTP, resumed writes and concurrent writers of a blob.

mod common;
mod httpcache_support;
mod reapi_support;

use bs::byte_stream_client::ByteStreamClient;
use common::{client, TestServer};
use httpcache_support::sha256_hex;
use larder::api::reapi::gen::google::bytestream as bs;
use reapi_support::{channel, read_all, writes};
use tonic::transport::Channel;
use tonic::Code;

async fn connect(s: &TestServer) -> ByteStreamClient<Channel> {
    ByteStreamClient::new(channel(s).await)
}

fn upload_name(data: &[u8]) -> String {
    upload_name_of("3f1c0e1e-0000-4000-8000-000000000001", data)
}

fn upload_name_of(uuid: &str, data: &[u8]) -> String {
    format!(
        "team/uploads/{uuid}/blobs/{}/{}",
        sha256_hex(data),
        data.len()
    )
}

#[tokio::test]
async fn a_chunked_write_is_readable_over_bytestream_and_http() {
    let s = TestServer::start().await;
    let mut bs = connect(&s).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let res = bs
        .write(stream_of(writes(&upload_name(&data), &data, 100_000)))
        .await
        .expect("write");
    assert_eq!(res.into_inner().committed_size, data.len() as i64);

    let name = format!("team/blobs/{}/{}", sha256_hex(&data), data.len());
    assert_eq!(read_all(&mut bs, &name, 0).await.expect("read"), data);
    assert_eq!(
        read_all(&mut bs, &name, 1000).await.expect("read"),
        &data[1000..]
    );
    let url = s.url(&format!("/cache/team/cas/{}", sha256_hex(&data)));
    let res = client().get(url).send().await.unwrap();
    assert_eq!(res.bytes().await.unwrap(), data);

    let status = bs
        .query_write_status(bs::QueryWriteStatusRequest {
            resource_name: upload_name(&data),
        })
        .await
        .expect("status")
        .into_inner();
    assert!(status.complete);
}

#[tokio::test]
async fn an_http_upload_is_readable_over_bytestream() {
    let s = TestServer::start().await;
    let mut bs = connect(&s).await;
    let data = b"put over HTTP, read over ByteStream".to_vec();
    let url = s.url(&format!("/cache/team/cas/{}", sha256_hex(&data)));
    let res = client().put(url).body(data.clone()).send().await.unwrap();
    assert!(res.status().is_success());
    let name = format!("team/blobs/{}/{}", sha256_hex(&data), data.len());
    assert_eq!(read_all(&mut bs, &name, 0).await.expect("read"), data);
    // A small blob is answered from memory: offset and limit still hold.
    let part = bs
        .read(bs::ReadRequest {
            resource_name: name,
            read_offset: 4,
            read_limit: 10,
        })
        .await
        .expect("read")
        .into_inner()
        .message()
        .await
        .expect("a message")
        .expect("data");
    assert_eq!(part.data, &data[4..14]);
}

#[tokio::test]
async fn wrong_bytes_and_bad_names_are_invalid_and_store_nothing() {
    let s = TestServer::start().await;
    let mut bs = connect(&s).await;
    let claimed = b"the bytes the digest names".to_vec();
    let sent = b"other bytes of the same size!!".to_vec();
    let mut reqs = writes(&upload_name(&claimed), &sent[..claimed.len()], 10);
    reqs.last_mut().unwrap().finish_write = true;
    let err = bs.write(stream_of(reqs)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let name = format!("team/blobs/{}/{}", sha256_hex(&claimed), claimed.len());
    let read = bs
        .read(bs::ReadRequest {
            resource_name: name,
            ..Default::default()
        })
        .await;
    assert_eq!(read.unwrap_err().code(), Code::NotFound);

    for bad in [
        "",
        "team/blobs",
        "team/blobs/abc/1",
        "team/blobs/../../etc/passwd/1",
        &format!("team/blobs/{}/-1", sha256_hex(b"x")),
        &format!("team/blobs/{}/notanumber", sha256_hex(b"x")),
    ] {
        let read = bs
            .read(bs::ReadRequest {
                resource_name: bad.to_owned(),
                ..Default::default()
            })
            .await;
        assert_eq!(read.unwrap_err().code(), Code::InvalidArgument, "{bad:?}");
    }
}

fn stream_of(
    reqs: Vec<bs::WriteRequest>,
) -> impl futures_util::Stream<Item = bs::WriteRequest> + Send + 'static {
    futures_util::stream::iter(reqs)
}

/// The requests of a write of `data[from..]`, the first naming the resource.
fn writes_from(name: &str, data: &[u8], from: usize, chunk: usize) -> Vec<bs::WriteRequest> {
    let mut reqs = writes(name, &data[from..], chunk);
    for r in &mut reqs {
        r.write_offset += from as i64;
    }
    reqs
}

async fn write_status(bs: &mut ByteStreamClient<Channel>, name: &str) -> (i64, bool) {
    let status = bs
        .query_write_status(bs::QueryWriteStatusRequest {
            resource_name: name.to_owned(),
        })
        .await
        .expect("status")
        .into_inner();
    (status.committed_size, status.complete)
}

/// Bytes of the upload sessions in the server's data dir.
fn upload_bytes(s: &TestServer) -> u64 {
    std::fs::read_dir(s.data_dir().join("uploads"))
        .unwrap()
        .flatten()
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn a_broken_write_resumes_from_what_was_committed() {
    let s = TestServer::start().await;
    let mut bs = connect(&s).await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 239) as u8).collect();
    let name = upload_name_of("9e7a1b2c-0000-4000-8000-00000000000a", &data);
    let reqs = writes(&name, &data, 250_000);
    let half = 6 * 250_000;

    // Half the requests, then the stream ends without finish_write.
    let (tx, rx) = tokio::sync::mpsc::channel(reqs.len());
    let requests =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut writer = bs.clone();
    let call = tokio::spawn(async move { writer.write(requests).await });
    for r in reqs.into_iter().take(6) {
        tx.send(r).await.unwrap();
    }
    drop(tx);
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    assert_eq!(write_status(&mut bs, &name).await, (half as i64, false));
    // The committed bytes are on disk, in an upload session (counted in usage).
    assert_eq!(upload_bytes(&s), half as u64);

    // A resume elsewhere than the committed size is refused and changes nothing.
    for wrong in [half - 1000, half + 1000] {
        let reqs = writes_from(&name, &data, wrong, 250_000);
        let err = bs.write(stream_of(reqs)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    }
    assert_eq!(write_status(&mut bs, &name).await, (half as i64, false));

    let res = bs
        .write(stream_of(writes_from(&name, &data, half, 250_000)))
        .await
        .expect("resumed write");
    assert_eq!(res.into_inner().committed_size, data.len() as i64);
    assert_eq!(
        write_status(&mut bs, &name).await,
        (data.len() as i64, true)
    );
    let read = format!("team/blobs/{}/{}", sha256_hex(&data), data.len());
    assert_eq!(read_all(&mut bs, &read, 0).await.expect("read"), data);
    assert_eq!(upload_bytes(&s), 0);

    // An upload nobody began is at 0; a write into it elsewhere is refused.
    let other: Vec<u8> = (0..2_000_000u32).map(|i| (i % 233) as u8).collect();
    let fresh = upload_name_of("9e7a1b2c-0000-4000-8000-00000000000b", &other);
    assert_eq!(write_status(&mut bs, &fresh).await, (0, false));
    let err = bs
        .write(stream_of(writes_from(&fresh, &other, 500_000, 250_000)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
}

#[tokio::test]
async fn concurrent_writers_of_one_blob_all_succeed_and_store_it_once() {
    let s = TestServer::start().await;
    let bs = connect(&s).await;
    // Over the resumable size, so each writer has an upload session.
    let data: Vec<u8> = (0..1_600_000u32).map(|i| (i % 241) as u8).collect();
    let writers = (0..16).map(|i| {
        let mut bs = bs.clone();
        let name = upload_name_of(&format!("0000000{i:x}-0000-4000-8000-000000000000"), &data);
        let reqs = writes(&name, &data, 100_000);
        tokio::spawn(async move { bs.write(stream_of(reqs)).await })
    });
    for w in futures_util::future::join_all(writers).await {
        let res = w.unwrap().expect("every writer succeeds");
        assert_eq!(res.into_inner().committed_size, data.len() as i64);
    }
    let mut bs = bs;
    let read = format!("team/blobs/{}/{}", sha256_hex(&data), data.len());
    assert_eq!(read_all(&mut bs, &read, 0).await.expect("read"), data);
    let url = s.url(&format!("/cache/team/cas/{}", sha256_hex(&data)));
    let res = client().get(url).send().await.unwrap();
    assert_eq!(res.bytes().await.unwrap(), data);
    assert_eq!(upload_bytes(&s), 0);
    let mut files = 0;
    let mut dirs = vec![s.data_dir().join("blobs")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                files += 1;
            }
        }
    }
    assert_eq!(files, 1, "one stored blob");
}
