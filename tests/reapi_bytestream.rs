//! ByteStream for CAS blobs against a real server with a tonic client:
//! chunked writes, offset reads, refused digests and resource names, and
//! the same blobs over HTTP.

mod common;
mod httpcache_support;

use bs::byte_stream_client::ByteStreamClient;
use common::{client, TestServer};
use httpcache_support::sha256_hex;
use larder::api::reapi::gen::google::bytestream as bs;
use tonic::transport::Channel;
use tonic::Code;

async fn connect(s: &TestServer) -> ByteStreamClient<Channel> {
    let ch = Channel::from_shared(s.base())
        .expect("server URL")
        .connect()
        .await
        .expect("h2c connection");
    ByteStreamClient::new(ch)
}

/// The requests of a write of `data` in `chunk`-byte pieces.
fn writes(name: &str, data: &[u8], chunk: usize) -> Vec<bs::WriteRequest> {
    let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| bs::WriteRequest {
            resource_name: if i == 0 {
                name.to_owned()
            } else {
                String::new()
            },
            write_offset: (i * chunk) as i64,
            finish_write: i + 1 == pieces.len(),
            data: piece.to_vec(),
        })
        .collect()
}

fn upload_name(data: &[u8]) -> String {
    format!(
        "team/uploads/3f1c0e1e-0000-4000-8000-000000000001/blobs/{}/{}",
        sha256_hex(data),
        data.len()
    )
}

async fn read_all(bs: &mut ByteStreamClient<Channel>, name: &str, offset: i64) -> Vec<u8> {
    let req = bs::ReadRequest {
        resource_name: name.to_owned(),
        read_offset: offset,
        read_limit: 0,
    };
    let mut stream = bs.read(req).await.expect("read").into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await.expect("a chunk") {
        out.extend(msg.data);
    }
    out
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
    assert_eq!(read_all(&mut bs, &name, 0).await, data);
    assert_eq!(read_all(&mut bs, &name, 1000).await, &data[1000..]);
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
    assert_eq!(read_all(&mut bs, &name, 0).await, data);
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
