//! The HTTP-cache profiles: Bazel's remote cache over plain HTTP, PUT, GET
//! hit and GET miss of `/cache/<namespace>/cas/<sha256>` and `ac/<sha256>`
//! keys, against Larder and nginx (WebDAV PUT) side by side.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::args::Args;
use crate::client::Target;
use crate::driver::{self, Measured};
use crate::phases;
use crate::report::{Op, Row};
use crate::workload::{self, Profile};

/// One key in four is an action result, as in a build whose actions have a
/// few outputs each. Their values are random bytes, not ActionResult
/// protobufs, so Larder stores them as plain values (and, on a hit, parses
/// them once more to check that nothing they name is missing).
const AC_EVERY: usize = 4;

/// A key (relative to the namespace) and the value stored under it.
#[derive(Clone)]
pub struct Key {
    pub path: String,
    pub data: Bytes,
}

/// `count` keys of `size` random bytes: `cas/<sha256 of the value>` (which
/// Larder verifies), or `ac/<sha256 of an action name>`; seeded by `seed`
/// so each repetition's PUTs create keys never stored before.
fn keys(p: &Profile, count: usize, seed: u64) -> Vec<Key> {
    (0..count)
        .map(|i| {
            let data = workload::random_bytes(p.size, seed ^ ((i as u64) << 20) ^ p.size as u64);
            let path = if i % AC_EVERY == AC_EVERY - 1 {
                format!("ac/{}", sha256_hex(format!("action-{seed}-{i}").as_bytes()))
            } else {
                format!("cas/{}", sha256_hex(&data))
            };
            Key { path, data }
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Runs PUT, GET hit and GET miss of one profile on every target that
/// speaks plain HTTP, in the order `phases::run` gives.
pub async fn run_profile(
    p: &Profile,
    targets: &[Arc<Target>],
    args: &Args,
    nonce: u64,
) -> anyhow::Result<Vec<Row>> {
    let count = args.scaled(p.count);
    let stored = Arc::new(keys(p, count, nonce));
    let misses: Arc<Vec<String>> = Arc::new(
        (0..count.min(1000))
            .map(|i| {
                let kind = if i % AC_EVERY == AC_EVERY - 1 {
                    "ac"
                } else {
                    "cas"
                };
                format!(
                    "{kind}/{}",
                    sha256_hex(format!("miss-{nonce}-{i}").as_bytes())
                )
            })
            .collect(),
    );
    let small_ops = args.scaled(p.small_ops());
    let gets = args.scaled(p.reads());
    let min_time = args.min_time();
    let mix = Mix {
        stored,
        misses,
        small_ops,
        gets,
        min_time,
        concurrency: args.concurrency.unwrap_or(p.concurrency),
    };

    phases::run(
        p,
        &Op::HTTP,
        targets,
        args,
        async |op, rep, t: Arc<Target>| {
            // Each repetition's PUTs create keys never stored before.
            let fresh = (op == Op::HttpPut && rep > 0)
                .then(|| Arc::new(keys(p, count, nonce ^ (rep as u64) << 40)));
            let name = t.name.clone();
            Ok(vec![(name, mix.run_op(op, fresh, t).await)])
        },
    )
    .await
}

/// What the operations of one profile work on.
struct Mix {
    /// The keys of the first PUT; GET hits read these.
    stored: Arc<Vec<Key>>,
    misses: Arc<Vec<String>>,
    small_ops: usize,
    gets: usize,
    min_time: Duration,
    concurrency: usize,
}

impl Mix {
    async fn run_op(&self, op: Op, fresh: Option<Arc<Vec<Key>>>, t: Arc<Target>) -> Measured {
        let (c, pid) = (self.concurrency, t.pids());
        match op {
            Op::HttpPut => {
                // Each key once: a repeated PUT would replace, not create.
                let set = fresh.unwrap_or_else(|| self.stored.clone());
                let once = driver::Amount {
                    ops: set.len(),
                    min_time: Duration::ZERO,
                };
                driver::run(once, c, pid, move |i| {
                    let (t, key) = (t.clone(), set[i].clone());
                    async move { t.cache_put(&key.path, &key.data).await }
                })
                .await
            }
            Op::HttpGetHit => {
                let set = self.stored.clone();
                let amount = driver::Amount {
                    ops: self.gets,
                    min_time: self.min_time,
                };
                driver::run(amount, c, pid, move |i| {
                    let (t, key) = (t.clone(), set[i % set.len()].clone());
                    async move { t.cache_get(&key.path, &key.data).await }
                })
                .await
            }
            Op::HttpGetMiss => {
                let set = self.misses.clone();
                let amount = driver::Amount {
                    ops: self.small_ops,
                    min_time: self.min_time,
                };
                driver::run(amount, c, pid, move |i| {
                    let (t, key) = (t.clone(), set[i % set.len()].clone());
                    async move { t.cache_miss(&key).await }
                })
                .await
            }
            other => unreachable!("{other:?} is not an HTTP-cache operation"),
        }
    }
}
