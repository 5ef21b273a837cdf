//! Ingest throughput: `cas::ingest_stream` then `Verified::publish` (hash +
//! temp file + fsync + rename + dir fsync)
//! against hashing the same bytes alone, so the cost of the write path over
//! the hashes it cannot avoid is visible.
//!
//! The blob tree lives under the target dir (a real disk, where fsync costs
//! what it costs in production) unless LARDER_BENCH_DIR names another place.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use larder::cas::{self, Cas, Digest};
use sha2::{Digest as _, Sha256};

/// The chunk size hyper hands a request body over in.
const CHUNK: usize = 64 << 10;

const SIZES: [(&str, usize); 3] = [("4KiB", 4 << 10), ("1MiB", 1 << 20), ("64MiB", 64 << 20)];

/// Incompressible-looking bytes (xorshift), split like a request body.
fn body_chunks(len: usize) -> Vec<Bytes> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..len.div_ceil(8))
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .take(len)
        .collect();
    let data = Bytes::from(data);
    (0..len)
        .step_by(CHUNK)
        .map(|at| data.slice(at..len.min(at + CHUNK)))
        .collect()
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("LARDER_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")),
    }
    .expect("bench temp dir")
}

fn ingest(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = bench_dir();
    let cas = Cas::open(&dir.path().join("blobs"), &dir.path().join("tmp")).unwrap();

    let mut group = c.benchmark_group("ingest");
    for (name, len) in SIZES {
        let chunks = body_chunks(len);
        let sha256 = Digest::Sha256(Sha256::digest(chunks.concat()).into());
        group.throughput(Throughput::Bytes(len as u64));
        if len >= 16 << 20 {
            // Each iteration takes long enough that Flat sampling, 10 samples
            // and a short target keep this size to a few seconds per bench.
            group.sampling_mode(SamplingMode::Flat);
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(4));
        } else {
            group.sampling_mode(SamplingMode::Auto);
            group.sample_size(20);
            group.measurement_time(Duration::from_secs(3));
        }

        group.bench_function(BenchmarkId::new("ingest_stream", name), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (cas, chunks, sha256) = (cas.clone(), chunks.clone(), sha256.clone());
                async move {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let body = futures_util::stream::iter(
                            chunks.iter().cloned().map(Ok::<_, Infallible>),
                        );
                        let start = Instant::now();
                        let verified =
                            cas::ingest_stream(&cas, body, Some(sha256.clone()), u64::MAX)
                                .await
                                .unwrap();
                        // Publishing (fsync, rename, dir fsync) is part of
                        // every write the store acknowledges.
                        let cas2 = cas.clone();
                        let meta = tokio::task::spawn_blocking(move || verified.publish(&cas2))
                            .await
                            .unwrap()
                            .unwrap();
                        spent += start.elapsed();
                        // Untimed: without it every later iteration would
                        // take the cheaper deduplicating path.
                        cas.remove(&meta.id).unwrap();
                    }
                    spent
                }
            })
        });

        // Without publishing: the hashing and writing a stream costs, to
        // set beside SHA-256 alone (issue 22: one hash's time per stream).
        group.bench_function(BenchmarkId::new("ingest_stream_unsynced", name), |b| {
            b.to_async(&runtime).iter(|| {
                let body =
                    futures_util::stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>));
                cas::ingest_stream(&cas, body, Some(sha256.clone()), u64::MAX)
            })
        });

        group.bench_function(BenchmarkId::new("hash_only_sha256", name), |b| {
            b.iter(|| {
                let mut s = Sha256::new();
                for chunk in &chunks {
                    s.update(chunk);
                }
                s.finalize()
            })
        });

        group.bench_function(BenchmarkId::new("hash_only_sha256_blake3", name), |b| {
            b.iter(|| {
                let mut s = Sha256::new();
                let mut b3 = blake3::Hasher::new();
                for chunk in &chunks {
                    s.update(chunk);
                    b3.update(chunk);
                }
                (s.finalize(), b3.finalize())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
