//! Large blob bodies on plain HTTP/1 are sent by the kernel from the page
//! cache (`sendfile`): the same bytes as a copy, in order on a keep-alive
//! and a pipelined connection, across frame boundaries and ranges; read
//! through the blocking pool when not cached, and over HTTP/2.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{client, raw, TestServer};
use tokio::io::AsyncWriteExt;

const METRIC: &str = "larder_sent_from_files_bytes_total";

/// Two frames and a bit (a frame is at most 4 MiB), and one under a frame.
fn values() -> [(String, Vec<u8>); 2] {
    let big = (0..(9 << 20) + 123).map(|i| (i * 7 % 251) as u8).collect();
    let mid = (0..1 << 20).map(|i| (i * 13 % 241) as u8).collect();
    [
        ("/cache/files/value-big".to_owned(), big),
        ("/cache/files/value-mid".to_owned(), mid),
    ]
}

async fn store(s: &TestServer) -> [(String, Vec<u8>); 2] {
    let values = values();
    for (path, body) in &values {
        let res = client()
            .put(s.url(path))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "PUT {path}: {}", res.status());
    }
    values
}

async fn sent(s: &TestServer) -> u64 {
    let text = s.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(METRIC)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{METRIC} in {text}"))
}

#[tokio::test]
async fn cached_blobs_are_sent_from_their_files_with_the_same_bytes() {
    let s = TestServer::start().await;
    let values = store(&s).await;
    let c = client();
    let before = sent(&s).await;
    let mut expected = 0;
    for _ in 0..3 {
        for (path, body) in &values {
            let res = c.get(s.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 200);
            let got = res.bytes().await.unwrap();
            assert!(got[..] == body[..], "GET {path}: bytes differ");
            expected += body.len() as u64;
        }
    }
    // Across the first frame boundary (4 MiB), and the file's last bytes.
    let big = &values[0].1;
    for (range, from, to) in [
        ("bytes=4000000-4500000", 4_000_000, 4_500_001),
        ("bytes=-1000", big.len() - 1000, big.len()),
    ] {
        let res = c
            .get(s.url(&values[0].0))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 206, "{range}");
        let got = res.bytes().await.unwrap();
        assert!(got[..] == big[from..to], "{range}: bytes differ");
        expected += (to - from) as u64;
    }
    assert_eq!(sent(&s).await - before, expected);
}

#[tokio::test]
async fn pipelined_requests_get_their_own_bytes_in_order() {
    let s = TestServer::start().await;
    let values = store(&s).await;
    let small = b"a small value, answered from memory".to_vec();
    let res = client()
        .put(s.url("/cache/files/value-small"))
        .body(small.clone())
        .send()
        .await;
    assert!(res.unwrap().status().is_success());
    let order = [
        (values[0].0.as_str(), &values[0].1),
        ("/cache/files/value-small", &small),
        (values[1].0.as_str(), &values[1].1),
        (values[0].0.as_str(), &values[0].1),
    ];
    let mut stream = raw::connect(s.addr).await;
    let requests: String = order
        .iter()
        .map(|(path, _)| format!("GET {path} HTTP/1.1\r\nHost: larder\r\n\r\n"))
        .collect();
    stream.write_all(requests.as_bytes()).await.unwrap();
    for (path, body) in order {
        let res = raw::read_response(&mut stream, Duration::from_secs(30)).await;
        assert_eq!(res.status, 200, "{path}");
        assert!(res.body == body[..], "{path}: bytes differ");
    }
}

#[tokio::test]
async fn a_blob_not_in_the_page_cache_is_read_and_then_sent() {
    let s = TestServer::start().await;
    let values = store(&s).await;
    let (path, body) = &values[1];
    let file = s
        .data_dir()
        .join("blobs")
        .join(&hash(body)[..2])
        .join(hash(body));
    let dropped = std::fs::File::open(&file).unwrap();
    // SAFETY: an open descriptor; the advice only drops clean cached pages.
    let rc = unsafe { libc::posix_fadvise(dropped.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);

    let c = client();
    let before = sent(&s).await;
    let got = body_of(c.get(s.url(path))).await;
    assert!(got[..] == body[..], "bytes differ");
    assert_eq!(sent(&s).await, before, "an uncached file is read, not sent");
    // The read brought it into the page cache: now it is sent.
    let got = body_of(c.get(s.url(path))).await;
    assert!(got[..] == body[..], "bytes differ");
    assert_eq!(sent(&s).await - before, body.len() as u64);
}

#[tokio::test]
async fn http2_responses_carry_the_bytes_themselves() {
    let s = TestServer::start().await;
    let values = store(&s).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let before = sent(&s).await;
    for (path, body) in &values {
        let res = h2.get(s.url(path)).send().await.unwrap();
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        let got = res.bytes().await.unwrap();
        assert!(got[..] == body[..], "GET {path} over HTTP/2: bytes differ");
    }
    assert_eq!(sent(&s).await, before);
}

async fn body_of(req: reqwest::RequestBuilder) -> bytes::Bytes {
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap()
}

fn hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}
