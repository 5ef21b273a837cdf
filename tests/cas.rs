//! Blob ingest and ranged reads against a real blob tree on disk: what ends up
//! published, and that every failed write leaves neither a blob nor a temp file.

mod common;

use std::convert::Infallible;
use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use larder::cas::{self, BlobMeta, Cas, CasError, ContentId, Digest};
use sha2::{Digest as _, Sha256, Sha512};

/// Hyper hands bodies over in chunks of about this size.
const CHUNK: usize = 64 << 10;

fn open_cas() -> (tempfile::TempDir, Cas) {
    let dir = tempfile::tempdir().unwrap();
    let cas = Cas::open(&dir.path().join("blobs"), &dir.path().join("tmp")).unwrap();
    (dir, cas)
}

/// A store as opened here (anonymous temp files where the filesystem has
/// `O_TMPFILE`) and one with named temp files, as on filesystems without it.
fn open_cas_both_ways() -> [(tempfile::TempDir, Cas); 2] {
    let (dir, cas) = open_cas();
    let (named_dir, named) = open_cas();
    [(dir, cas), (named_dir, named.with_named_temp_files())]
}

/// Deterministic bytes that differ per `seed`, so tests never share content.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn body(data: &[u8]) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let chunks: Vec<_> = data.chunks(CHUNK).map(Bytes::copy_from_slice).collect();
    stream::iter(chunks.into_iter().map(Ok))
}

fn sha256(data: &[u8]) -> Digest {
    Digest::Sha256(Sha256::digest(data).into())
}

fn sha512(data: &[u8]) -> Digest {
    Digest::Sha512(Box::new(Sha512::digest(data).into()))
}

fn blake3(data: &[u8]) -> Digest {
    Digest::Blake3(*blake3::hash(data).as_bytes())
}

fn tmp_files(cas: &Cas) -> Vec<String> {
    std::fs::read_dir(cas.tmp_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Nothing published and nothing left half-written.
fn assert_empty(cas: &Cas) {
    assert_eq!(cas.list().unwrap(), vec![], "no blob may be published");
    assert_eq!(
        tmp_files(cas),
        Vec::<String>::new(),
        "no temp file may remain"
    );
}

/// Ingest as the store does it: verify, then publish on a blocking thread.
async fn ingest<S, E>(
    cas: &Cas,
    body: S,
    expected: Option<Digest>,
    limit: u64,
) -> Result<BlobMeta, CasError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let verified = cas::ingest_stream(cas, body, expected, limit).await?;
    let cas = cas.clone();
    Ok(tokio::task::spawn_blocking(move || verified.publish(&cas))
        .await
        .unwrap()?)
}

async fn read_all(cas: &Cas, id: &ContentId, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut s = cas.read_range(id, offset, len).await?;
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[tokio::test]
async fn verified_ingest_accepts_sha256_sha512_and_blake3_digests() {
    let bytes = data(3 * CHUNK + 17, 1);
    for expected in [sha256(&bytes), sha512(&bytes), blake3(&bytes)] {
        let (_dir, cas) = open_cas();
        let meta = ingest(&cas, body(&bytes), Some(expected.clone()), u64::MAX)
            .await
            .unwrap_or_else(|e| panic!("{expected}: {e}"));
        let want = BlobMeta {
            id: ContentId(*blake3::hash(&bytes).as_bytes()),
            sha256: Sha256::digest(&bytes).into(),
            size: bytes.len() as u64,
        };
        assert_eq!(meta, want, "{expected}");
        assert_eq!(std::fs::read(cas.path(&meta.id)).unwrap(), bytes);
        assert_eq!(cas.list().unwrap(), vec![(meta.id, meta.size)]);
        assert!(tmp_files(&cas).is_empty());
    }
}

#[tokio::test]
async fn a_digest_mismatch_leaves_no_blob_and_no_temp_file() {
    let bytes = data(2 * CHUNK, 2);
    let other = data(2 * CHUNK, 3);
    for wrong in [sha256(&other), sha512(&other), blake3(&other)] {
        for (_dir, cas) in open_cas_both_ways() {
            let err = ingest(&cas, body(&bytes), Some(wrong.clone()), u64::MAX)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, CasError::DigestMismatch { expected } if *expected == wrong),
                "{wrong}: {err}"
            );
            assert_empty(&cas);
        }
    }
}

/// Verification and publishing are separate steps (the store publishes under
/// its blob lock): until published the content is invisible, and a verified
/// blob that is dropped instead leaves nothing behind.
#[tokio::test]
async fn a_verified_blob_is_invisible_until_published_and_dropping_it_leaves_nothing() {
    for (named, (_dir, cas)) in open_cas_both_ways().into_iter().enumerate() {
        let bytes = data(2 * CHUNK, 10);
        let verified = cas::ingest_stream(&cas, body(&bytes), Some(sha256(&bytes)), u64::MAX)
            .await
            .unwrap();
        assert_eq!(verified.meta.size, bytes.len() as u64);
        assert!(!cas.exists(&verified.meta.id));
        assert_eq!(cas.list().unwrap(), vec![]);
        // An anonymous temp file has no name anywhere until published.
        assert_eq!(tmp_files(&cas).len(), named, "temp files in tmp/");
        drop(verified);
        assert_empty(&cas);
    }
}

/// A copy of a recorded blob (a cluster replica's tier) is checked against
/// its BLAKE3 alone: the right bytes are kept, a short or wrong body is
/// refused and leaves nothing.
#[tokio::test]
async fn a_copy_is_verified_against_its_blake3_alone() {
    let (_dir, cas) = open_cas();
    let bytes = data(3 * CHUNK + 1, 12);
    let id = ContentId(*::blake3::hash(&bytes).as_bytes());
    let copy = cas::ingest_copy(&cas, body(&bytes), id).await.unwrap();
    assert_eq!((copy.meta.id, copy.meta.size), (id, bytes.len() as u64));
    assert_eq!(copy.meta.sha256, [0; 32], "not computed");
    drop(copy);
    for wrong in [&bytes[..bytes.len() - 1], &data(3 * CHUNK + 1, 13)[..]] {
        let refused = cas::ingest_copy(&cas, body(wrong), id).await;
        assert!(
            matches!(refused, Err(CasError::DigestMismatch { .. })),
            "{:?}",
            refused.err()
        );
    }
    assert_empty(&cas);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_the_same_bytes_all_succeed_with_one_file() {
    for (_dir, cas) in open_cas_both_ways() {
        let bytes = data(8 * CHUNK + 5, 4);
        let writers = (0..32).map(|_| {
            let cas = cas.clone();
            let body = body(&bytes);
            let expected = Some(sha256(&bytes));
            tokio::spawn(async move { ingest(&cas, body, expected, u64::MAX).await })
        });
        let results = futures_util::future::join_all(writers).await;
        let metas: Vec<BlobMeta> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert!(metas.iter().all(|m| *m == metas[0]), "writers disagree");
        assert_eq!(cas.list().unwrap(), vec![(metas[0].id, bytes.len() as u64)]);
        assert_eq!(std::fs::read(cas.path(&metas[0].id)).unwrap(), bytes);
        assert!(tmp_files(&cas).is_empty(), "{:?}", tmp_files(&cas));
    }
}

/// Larger than two of read_range's 4 MiB chunks, so a range can start,
/// cross and end between chunks, at offsets no page boundary lines up with.
const MULTI_CHUNK: usize = (9 << 20) + 4321;

#[tokio::test]
async fn ranges_read_back_the_right_bytes() {
    let (_dir, cas) = open_cas();
    let bytes = data(MULTI_CHUNK, 5);
    let id = ingest(&cas, body(&bytes), None, u64::MAX).await.unwrap().id;
    let size = bytes.len() as u64;
    for (offset, len) in [
        (0, 10),                       // start
        (0, size),                     // whole, three chunks
        (1000, 4096),                  // middle, one chunk
        (4097, (4 << 20) + 1),         // crosses one chunk boundary, unaligned
        ((4 << 20) - 1, 2),            // two bytes either side of a boundary
        (size - 7, 7),                 // suffix, one chunk
        (size - 6_000_000, 6_000_000), // suffix, two chunks
        (size, 0),                     // empty range at the end
    ] {
        let got = read_all(&cas, &id, offset, len).await.unwrap();
        let want = &bytes[offset as usize..(offset + len) as usize];
        assert!(got == want, "range {offset}+{len}: got {} bytes", got.len());
    }
}

/// Eviction may remove a blob while a slow client is still downloading it;
/// that download must still get every byte it was promised.
#[tokio::test]
async fn a_blob_removed_mid_read_still_streams_whole() {
    let (_dir, cas) = open_cas();
    let bytes = data(MULTI_CHUNK, 7);
    let id = ingest(&cas, body(&bytes), None, u64::MAX).await.unwrap().id;
    let mut stream = cas.read_range(&id, 0, bytes.len() as u64).await.unwrap();
    let mut got = stream.next().await.unwrap().unwrap().to_vec();
    cas.remove(&id).unwrap();
    assert!(!cas.path(&id).exists());
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == bytes, "got {} of {} bytes", got.len(), bytes.len());
}

/// The caller checks ranges against the size, so a range past the end is a
/// bug or a file that changed under us: it must fail, never come back short
/// (a short body under a promised Content-Length is a broken response).
#[tokio::test]
async fn a_range_past_the_end_is_an_error_not_a_short_read() {
    let (_dir, cas) = open_cas();
    let bytes = data(MULTI_CHUNK, 6);
    let id = ingest(&cas, body(&bytes), None, u64::MAX).await.unwrap().id;
    let size = bytes.len() as u64;
    for (offset, len) in [
        (size - 10, 20),        // one chunk
        (size + 10, 1),         // one chunk, entirely outside
        (1000, size),           // several chunks
        (size + 10, 5_000_000), // several chunks, entirely outside
    ] {
        let result = read_all(&cas, &id, offset, len).await;
        assert!(
            result.is_err(),
            "range {offset}+{len} of a {size}-byte blob returned {} bytes instead of an error",
            result.unwrap().len()
        );
    }
}

#[tokio::test]
async fn a_zero_byte_blob_is_stored_and_read_back() {
    let (_dir, cas) = open_cas();
    let empty = stream::iter([Ok::<_, Infallible>(Bytes::new())]);
    let meta = ingest(&cas, empty, Some(sha256(b"")), u64::MAX)
        .await
        .unwrap();
    assert_eq!(meta.size, 0);
    assert_eq!(meta.id.0, *blake3::hash(b"").as_bytes());
    assert_eq!(cas.list().unwrap(), vec![(meta.id, 0)]);
    assert_eq!(read_all(&cas, &meta.id, 0, 0).await.unwrap(), b"");
    // A body with no chunks at all is the same blob.
    let none = stream::iter(Vec::<Result<Bytes, Infallible>>::new());
    let again = ingest(&cas, none, None, 0).await.unwrap();
    assert_eq!(again, meta);
    assert!(tmp_files(&cas).is_empty());
}

#[tokio::test]
async fn a_body_that_fails_midway_publishes_nothing() {
    for (_dir, cas) in open_cas_both_ways() {
        let bytes = data(4 * CHUNK, 7);
        let failing = stream::iter(
            bytes
                .chunks(CHUNK)
                .take(3)
                .map(|c| Ok(Bytes::copy_from_slice(c))),
        )
        .chain(stream::once(async {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            ))
        }));
        let err = ingest(&cas, failing, Some(sha256(&bytes)), u64::MAX)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CasError::Body(m) if m.contains("client went away")),
            "{err}"
        );
        assert_empty(&cas);
    }
}

#[tokio::test]
async fn the_size_limit_refuses_the_blob_and_leaves_nothing() {
    for (_dir, cas) in open_cas_both_ways() {
        let bytes = data(4 * CHUNK, 8);
        let limit = bytes.len() as u64 - 1;
        let err = ingest(&cas, body(&bytes), None, limit).await.unwrap_err();
        assert!(
            matches!(err, CasError::TooLarge { limit: l } if l == limit),
            "{err}"
        );
        assert_empty(&cas);
        // The limit is inclusive: exactly `limit` bytes fit.
        let meta = ingest(&cas, body(&bytes), None, bytes.len() as u64)
            .await
            .unwrap();
        assert_eq!(meta.size, bytes.len() as u64);
    }
}

async fn poll_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in 10s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client that disconnects mid-body makes hyper drop the handler's future:
/// the writer thread must notice and delete its temp file on its own. Named
/// temp files make that visible (an anonymous one vanishes with its thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_dropped_midway_publishes_nothing() {
    let (_dir, cas) = open_cas();
    let cas = cas.with_named_temp_files();
    let bytes = data(4 * CHUNK, 9);
    let (reached, reached_rx) = tokio::sync::oneshot::channel::<()>();
    let stalled = stream::iter(
        bytes
            .chunks(CHUNK)
            .take(2)
            .map(|c| Ok(Bytes::copy_from_slice(c))),
    )
    .chain(stream::once(async move {
        let _ = reached.send(());
        std::future::pending::<Result<Bytes, Infallible>>().await
    }));
    // Neither the writer thread creating its temp file nor it deleting the
    // file after the drop signals anything, so both are polled for. Waiting
    // for the file first keeps "not created yet" from passing as "cleaned up".
    let tmp_dir = cas.tmp_dir().to_owned();
    tokio::select! {
        r = ingest(&cas, stalled, None, u64::MAX) => panic!("ingest ended: ok={}", r.is_ok()),
        () = async {
            let _ = reached_rx.await;
            poll_until(|| std::fs::read_dir(&tmp_dir).unwrap().next().is_some()).await;
        } => {} // the ingest future is dropped here, mid-body
    }
    poll_until(|| tmp_files(&cas).is_empty()).await;
    assert_empty(&cas);
}
