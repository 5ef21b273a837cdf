//! The request mix of one profile, run against every target.

use std::sync::Arc;
use std::time::Duration;

use crate::args::Args;
use crate::client::Target;
use crate::report::{Op, Row};
use crate::workload::{self, Blob, Profile};
use crate::{driver, profiler};

/// One profile's full mix. Each operation runs on every target back to back
/// (rather than one target's whole run, then the other's), so a burst of
/// load from a neighbour on this shared machine skews both sides alike.
pub async fn run_profile(
    p: &Profile,
    targets: &[Arc<Target>],
    args: &Args,
    nonce: u64,
) -> anyhow::Result<Vec<Row>> {
    let scaled = |n: usize| ((n as f64 * args.scale).round() as usize).max(1);
    let count = scaled(p.count);
    let blobs = Arc::new(workload::blobs(p, count, nonce));
    let config = Blob::new(workload::random_bytes(700, nonce ^ 0xc0f1));
    let misses: Arc<Vec<Blob>> = Arc::new(
        (0..64)
            .map(|i| Blob {
                data: bytes::Bytes::new(),
                digest: workload::sha256_digest(format!("miss-{nonce}-{i}").as_bytes()),
            })
            .collect(),
    );
    let manifests: Arc<Vec<Blob>> = Arc::new(
        (0..scaled(workload::MANIFEST_PUTS))
            .map(|i| workload::cache_manifest(i, &config, &blobs))
            .collect(),
    );
    let repo: Arc<str> = format!("larder-bench/{}-{:08x}", p.key, nonce as u32).into();
    let small_ops = scaled(workload::MIN_SMALL_OPS.max(p.count));
    let gets = scaled((workload::MIN_GET_BYTES / p.size).max(p.count));
    let c = p.concurrency;
    let once = |ops| driver::Amount {
        ops,
        min_time: Duration::ZERO,
    };
    let repeat = |ops| driver::Amount {
        ops,
        min_time: Duration::from_secs_f64(workload::MIN_SECONDS * args.scale),
    };

    let mut rows = Vec::new();
    for (k, op) in Op::ALL.into_iter().enumerate() {
        let mut row = Row::new(p, op);
        // Rotate who goes first: on a busy machine the first to run after a
        // pause tends to fare differently, and that must not favour one side.
        let order = targets
            .iter()
            .cycle()
            .skip(k % targets.len())
            .take(targets.len());
        for t in order {
            if op == Op::ManifestPut {
                // The cache config every manifest names; not measured.
                t.push(&repo, &config).await?;
            }
            let phase = format!("{}-{}", p.key, op.key());
            let profiling = profiler::attach(args, &t.name, t.pid, &phase, op.key());
            let (t2, repo, blobs) = (t.clone(), repo.clone(), blobs.clone());
            let (misses, manifests) = (misses.clone(), manifests.clone());
            let m = match op {
                Op::Push => {
                    driver::run(once(count), c, t.pid, move |i| {
                        let (t, repo, blobs) = (t2.clone(), repo.clone(), blobs.clone());
                        async move { t.push(&repo, &blobs[i]).await }
                    })
                    .await
                }
                Op::HeadHit | Op::HeadMiss => {
                    let hit = op == Op::HeadHit;
                    driver::run(repeat(small_ops), c, t.pid, move |i| {
                        let (t, repo) = (t2.clone(), repo.clone());
                        let b = if hit {
                            blobs[i % blobs.len()].clone()
                        } else {
                            misses[i % misses.len()].clone()
                        };
                        async move { t.head(&repo, &b, hit).await }
                    })
                    .await
                }
                Op::GetBlob => {
                    driver::run(repeat(gets), c, t.pid, move |i| {
                        let (t, repo, b) =
                            (t2.clone(), repo.clone(), blobs[i % blobs.len()].clone());
                        async move { t.get_blob(&repo, &b).await }
                    })
                    .await
                }
                Op::ManifestPut => {
                    driver::run(once(manifests.len()), c, t.pid, move |i| {
                        let (t, repo, m) = (t2.clone(), repo.clone(), manifests[i].clone());
                        async move { t.put_manifest(&repo, &format!("cache-{i}"), &m).await }
                    })
                    .await
                }
                Op::ManifestGet => {
                    let n = scaled(workload::MANIFEST_GETS);
                    driver::run(repeat(n), c, t.pid, move |i| {
                        let k = i % manifests.len();
                        let (t, repo, m) = (t2.clone(), repo.clone(), manifests[k].clone());
                        async move { t.get_manifest(&repo, &format!("cache-{k}"), &m).await }
                    })
                    .await
                }
            };
            drop(profiling);
            row.results.push((t.name.clone(), m));
        }
        rows.push(row);
    }
    Ok(rows)
}
