//! The request mix of one profile, run against every target.

use std::sync::Arc;
use std::time::Duration;

use crate::args::Args;
use crate::client::Target;
use crate::driver::{self, Measured};
use crate::phases;
use crate::report::{Op, Row};
use crate::workload::{self, Blob, Profile};

/// What every operation of a profile works on.
struct Mix {
    repo: Arc<str>,
    /// Blobs of the first push; reads and manifests use these.
    blobs: Arc<Vec<Blob>>,
    config: Blob,
    misses: Arc<Vec<Blob>>,
    manifest_count: usize,
    small_ops: usize,
    gets: usize,
    manifest_gets: usize,
    concurrency: usize,
    min_time: Duration,
}

/// One profile's mix, in the order `phases::run` gives.
pub async fn run_profile(
    p: &Profile,
    targets: &[Arc<Target>],
    args: &Args,
    nonce: u64,
) -> anyhow::Result<Vec<Row>> {
    let scaled = |n| args.scaled(n);
    let count = scaled(p.count);
    let mix = Mix {
        repo: format!("larder-bench/{}-{:08x}", p.key, nonce as u32).into(),
        blobs: Arc::new(workload::blobs(p, count, nonce)),
        config: Blob::new(workload::random_bytes(700, nonce ^ 0xc0f1)),
        misses: Arc::new(
            (0..64)
                .map(|i| Blob {
                    data: bytes::Bytes::new(),
                    digest: workload::sha256_digest(format!("miss-{nonce}-{i}").as_bytes()),
                })
                .collect(),
        ),
        manifest_count: scaled(workload::MANIFEST_PUTS),
        small_ops: scaled(p.small_ops()),
        gets: scaled(p.reads()),
        manifest_gets: scaled(workload::MANIFEST_GETS),
        concurrency: args.concurrency.unwrap_or(p.concurrency),
        min_time: args.min_time(),
    };

    phases::run(
        p,
        &Op::ALL,
        targets,
        args,
        async |op, rep, t: Arc<Target>| {
            // Later pushes need content never pushed before.
            let fresh = (op == Op::Push && rep > 0)
                .then(|| Arc::new(workload::blobs(p, count, nonce ^ (rep as u64) << 40)));
            if op == Op::ManifestPut && rep == 0 {
                t.push(&mix.repo, &mix.config).await?; // every manifest names it
            }
            let name = t.name.clone();
            Ok(vec![(name, run_op(&mix, op, rep, fresh, t).await)])
        },
    )
    .await
}

async fn run_op(
    mix: &Mix,
    op: Op,
    rep: usize,
    fresh: Option<Arc<Vec<Blob>>>,
    t: Arc<Target>,
) -> Measured {
    let (c, pid, repo) = (mix.concurrency, t.pids(), mix.repo.clone());
    let once = |ops| driver::Amount {
        ops,
        min_time: Duration::ZERO,
    };
    let repeat = |ops| driver::Amount {
        ops,
        min_time: mix.min_time,
    };
    match op {
        Op::Push => {
            let blobs = fresh.unwrap_or_else(|| mix.blobs.clone());
            driver::run(once(blobs.len()), c, pid, move |i| {
                let (t, repo, b) = (t.clone(), repo.clone(), blobs[i].clone());
                async move { t.push(&repo, &b).await }
            })
            .await
        }
        Op::HeadHit | Op::HeadMiss => {
            let hit = op == Op::HeadHit;
            let set = if hit {
                mix.blobs.clone()
            } else {
                mix.misses.clone()
            };
            driver::run(repeat(mix.small_ops), c, pid, move |i| {
                let (t, repo, b) = (t.clone(), repo.clone(), set[i % set.len()].clone());
                async move { t.head(&repo, &b, hit).await }
            })
            .await
        }
        Op::GetBlob => {
            let blobs = mix.blobs.clone();
            driver::run(repeat(mix.gets), c, pid, move |i| {
                let (t, repo, b) = (t.clone(), repo.clone(), blobs[i % blobs.len()].clone());
                async move { t.get_blob(&repo, &b).await }
            })
            .await
        }
        Op::ManifestPut => {
            // Each repetition writes manifests (and tags) of its own.
            let first = rep * mix.manifest_count;
            let manifests: Arc<Vec<Blob>> = Arc::new(
                (first..first + mix.manifest_count)
                    .map(|seq| workload::cache_manifest(seq, &mix.config, &mix.blobs))
                    .collect(),
            );
            driver::run(once(manifests.len()), c, pid, move |i| {
                let (t, repo, m) = (t.clone(), repo.clone(), manifests[i].clone());
                async move {
                    t.put_manifest(&repo, &format!("cache-{}", first + i), &m)
                        .await
                }
            })
            .await
        }
        Op::ManifestGet => {
            // The first repetition's manifests, under tags cache-0 … cache-N.
            let manifests: Arc<Vec<Blob>> = Arc::new(
                (0..mix.manifest_count)
                    .map(|seq| workload::cache_manifest(seq, &mix.config, &mix.blobs))
                    .collect(),
            );
            driver::run(repeat(mix.manifest_gets), c, pid, move |i| {
                let k = i % manifests.len();
                let (t, repo, m) = (t.clone(), repo.clone(), manifests[k].clone());
                async move { t.get_manifest(&repo, &format!("cache-{k}"), &m).await }
            })
            .await
        }
        other => unreachable!("{other:?} belongs to the HTTP-cache or REAPI profiles"),
    }
}
