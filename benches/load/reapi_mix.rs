//! The REAPI profiles: Bazel's remote cache over gRPC (ByteStream Write and
//! Read, FindMissingBlobs of 1,000 digests), each beside the same operation
//! over Larder's plain HTTP cache on blobs of the same size, so the cost of
//! the gRPC path is read against the HTTP one on the same server and run.

use std::sync::Arc;
use std::time::Duration;

use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;

use crate::args::Args;
use crate::client::Target;
use crate::client_reapi::Reapi;
use crate::driver::{self, Measured};
use crate::phases;
use crate::report::{Op, Row};
use crate::workload::{self, Blob, Profile};

/// Digests per FindMissingBlobs call (Bazel sends one call per action's
/// inputs and outputs; large actions name thousands).
pub const FIND_MISSING_DIGESTS: usize = 1000;
/// Half of each call names stored blobs, half blobs never stored.
const PRESENT: usize = FIND_MISSING_DIGESTS / 2;
/// FindMissingBlobs calls per repetition.
const FIND_MISSING_CALLS: usize = 500;

/// The blobs one repetition writes, over gRPC and (different content, so
/// neither deduplicates against the other) over HTTP.
struct Sets {
    grpc: Arc<Vec<Blob>>,
    http: Arc<Vec<Blob>>,
}

fn sets(p: &Profile, count: usize, seed: u64) -> Sets {
    Sets {
        grpc: Arc::new(workload::blobs(p, count, seed ^ 0x6772_7063)),
        http: Arc::new(workload::blobs(p, count, seed ^ 0x6874_7470)),
    }
}

pub async fn run_profile(
    p: &Profile,
    targets: &[Arc<Target>],
    args: &Args,
    nonce: u64,
) -> anyhow::Result<Vec<Row>> {
    let count = args.scaled(p.count);
    let stored = sets(p, count, nonce);
    let absent: Arc<Vec<re::Digest>> = Arc::new(
        (0..FIND_MISSING_DIGESTS)
            .map(|i| re::Digest {
                hash: workload::sha256_digest(format!("absent-{nonce}-{i}").as_bytes())
                    .trim_start_matches("sha256:")
                    .to_owned(),
                size_bytes: p.size as i64,
            })
            .collect(),
    );
    let amount = |ops| driver::Amount {
        ops,
        min_time: args.min_time(),
    };
    let reads = amount(args.scaled(p.reads()));
    let finds = amount(args.scaled(FIND_MISSING_CALLS));
    let c = args.concurrency.unwrap_or(p.concurrency);
    let mut clients = Vec::new();
    for t in targets {
        clients.push((t.name.clone(), Arc::new(Reapi::connect(t).await?)));
    }

    phases::run(
        p,
        &Op::REAPI,
        targets,
        args,
        async |op, rep, t: Arc<Target>| {
            let grpc = clients
                .iter()
                .find(|(n, _)| *n == t.name)
                .map(|(_, c)| c.clone())
                .expect("a client per target");
            let pid = t.pids();
            let http_name = format!("{} HTTP", t.name);
            // The side that goes first alternates by repetition.
            let grpc_first = rep % 2 == 0;
            let (g, h) = match op {
                Op::GrpcWrite => {
                    // Each repetition writes blobs never stored before.
                    let fresh = (rep > 0).then(|| sets(p, count, nonce ^ (rep as u64) << 40));
                    let set = fresh.as_ref().unwrap_or(&stored);
                    let once = driver::Amount {
                        ops: set.grpc.len(),
                        min_time: Duration::ZERO,
                    };
                    let (gs, hs) = (set.grpc.clone(), set.http.clone());
                    let write = || {
                        let gs = gs.clone();
                        driver::run(once, c, pid.clone(), move |i| {
                            let (r, b) = (grpc.clone(), gs[i].clone());
                            async move { r.write(i, &b).await }
                        })
                    };
                    let put = || {
                        let (hs, t) = (hs.clone(), t.clone());
                        driver::run(once, c, pid.clone(), move |i| {
                            let (t, b) = (t.clone(), hs[i].clone());
                            async move { t.cache_put(&cas_key(&b), &b.data).await }
                        })
                    };
                    both(grpc_first, write, put).await
                }
                Op::GrpcRead => {
                    let (gs, hs) = (stored.grpc.clone(), stored.http.clone());
                    let read = || {
                        let gs = gs.clone();
                        driver::run(reads, c, pid.clone(), move |i| {
                            let (r, b) = (grpc.clone(), gs[i % gs.len()].clone());
                            async move { r.read(i, &b).await }
                        })
                    };
                    let get = || {
                        let (hs, t) = (hs.clone(), t.clone());
                        driver::run(reads, c, pid.clone(), move |i| {
                            let (t, b) = (t.clone(), hs[i % hs.len()].clone());
                            async move { t.cache_get(&cas_key(&b), &b.data).await }
                        })
                    };
                    both(grpc_first, read, get).await
                }
                Op::FindMissing => {
                    let (gs, absent) = (stored.grpc.clone(), absent.clone());
                    let m = driver::run(finds, c, pid.clone(), move |i| {
                        let (r, gs, absent) = (grpc.clone(), gs.clone(), absent.clone());
                        async move {
                            // A window of stored blobs, moving with each call.
                            let present: Vec<Blob> = (0..PRESENT.min(gs.len()))
                                .map(|k| gs[(i * 37 + k) % gs.len()].clone())
                                .collect();
                            r.find_missing(i, &present, &absent[..PRESENT]).await
                        }
                    })
                    .await;
                    return Ok(vec![(t.name.clone(), m)]);
                }
                other => unreachable!("{other:?} is not a REAPI operation"),
            };
            Ok(vec![(t.name.clone(), g), (http_name, h)])
        },
    )
    .await
}

/// Where the HTTP side stores a blob: Bazel's `cas/` key.
fn cas_key(b: &Blob) -> String {
    format!("cas/{}", b.digest.trim_start_matches("sha256:"))
}

/// Runs the gRPC and the HTTP side one after the other, in the given order.
async fn both<G, H, FG, FH>(grpc_first: bool, g: G, h: H) -> (Measured, Measured)
where
    G: FnOnce() -> FG,
    H: FnOnce() -> FH,
    FG: std::future::Future<Output = Measured>,
    FH: std::future::Future<Output = Measured>,
{
    if grpc_first {
        let a = g().await;
        (a, h().await)
    } else {
        let b = h().await;
        (g().await, b)
    }
}
