//! `--cluster`: two `larder serve` replicas on one PostgreSQL and one S3
//! server (moto), measured as one registry beside the single node (the
//! "cluster" target sends each operation to the next replica in turn), and
//! the reads a replica serves from the shared store:
//! - `GET cold`: each replica GETs the blobs the other one pushed, once,
//!   so its tier holds none of them (a PostgreSQL lookup and an S3 GET,
//!   verified into the tier while streamed);
//! - `GET hot`: the same GETs again through the same replica (its tier);
//! - `S3 GET`: the same objects straight from moto with the object store
//!   client Larder uses, the baseline of `GET cold`;
//! - `single GET`: the same blobs from the single node, that of `GET hot`;
//! - `HEAD hot` and `manifest GET hot` (`cluster_lookups.rs`): lookups each
//!   replica has made before, against the single node's.
//!
//! Goals (issue 19): hot ≥ 0.8× single node, HEAD and manifest GET ≥ 0.5×,
//! cold ≥ 0.8× the S3 server's own GET rate.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::Serialize;

use crate::args::Args;
use crate::client::Target;
use crate::cluster_infra::{Moto, Postgres};
use crate::driver::{self, Amount, Measured, Pids};
use crate::report::Row;
use crate::servers::{Server, Variant};
use crate::workload::{self, Blob, Profile};

/// Everything `--cluster` started; dropped (stopped) at the end of the run.
pub struct Cluster {
    pub replicas: Vec<Arc<Target>>,
    pub target: Arc<Target>,
    objects: larder::cluster::objects::Objects,
    moto_pid: u32,
    _servers: Vec<Server>,
    _moto: Moto,
    _db: Postgres,
}

impl Cluster {
    pub async fn start(args: &Args) -> anyhow::Result<Cluster> {
        let db = Postgres::start()?;
        let moto = Moto::start().await?;
        let mut servers = Vec::new();
        for id in ["r0", "r1"] {
            let mut env = moto.replica_env(&db, id);
            if let Some(level) = &args.larder_log {
                env.push(("LARDER__LOG__LEVEL".into(), level.clone()));
            }
            let v = Variant {
                name: format!("cluster {id}"),
                bin: None,
                env,
            };
            // One after the other (each waits for /readyz): the second
            // starts on the schema the first created.
            servers.push(Server::larder(&v));
        }
        let pids = Pids {
            server: servers.iter().map(Server::pid).collect(),
            aux: vec![("postgres".into(), db.pid), ("moto".into(), moto.pid())],
        };
        let target = Arc::new(Target::cluster(
            "cluster",
            servers.iter().map(Server::base).collect(),
            pids.clone(),
        ));
        // Each replica alone, for the cold/hot phases, charged like the
        // cluster: a GET on one may cost the other nothing, but PostgreSQL
        // and moto are shared.
        let replicas = servers
            .iter()
            .map(|s| Arc::new(Target::cluster(&s.name, vec![s.base()], pids.clone())))
            .collect();
        Ok(Cluster {
            replicas,
            target,
            objects: larder::cluster::objects::Objects::open(&moto.config())?,
            moto_pid: moto.pid(),
            _servers: servers,
            _moto: moto,
            _db: db,
        })
    }

    /// The cold/hot GET phases of profile `p`, --repeat times on fresh blobs
    /// (a tier is cold only once); medians by rate.
    pub async fn reads(
        &self,
        p: &Profile,
        single: &Arc<Target>,
        args: &Args,
        nonce: u64,
    ) -> anyhow::Result<Vec<Line>> {
        let repo: Arc<str> = format!("larder-bench/cold-{}-{:08x}", p.key, nonce as u32).into();
        let c = args.concurrency.unwrap_or(p.concurrency);
        let n = args.scaled(p.count);
        let [r0, r1] = [&self.replicas[0], &self.replicas[1]];
        let mut reps: [Vec<Measured>; 8] = Default::default();
        let lookups = Amount {
            ops: 2 * n,
            min_time: args.min_time(),
        };
        for rep in 0..args.repeat.max(1) {
            let seed = nonce ^ 0xc01d ^ (rep as u64) << 40;
            let a = Arc::new(workload::blobs(p, n, seed));
            let b = Arc::new(workload::blobs(p, n, seed ^ 1));
            // Unmeasured: r0 holds a, r1 holds b, the single node both.
            for (t, set) in [(r0, &a), (r1, &b), (single, &a), (single, &b)] {
                push_all(t, &repo, set, c).await;
            }
            // GET i: even from r1 (a's blobs), odd from r0 (b's).
            let cross = |i: usize| {
                if i.is_multiple_of(2) {
                    (r1.clone(), a[i / 2].clone())
                } else {
                    (r0.clone(), b[i / 2].clone())
                }
            };
            let each: Arc<Vec<(Arc<Target>, Blob)>> = Arc::new((0..2 * n).map(cross).collect());
            let pids = self.target.pids();
            reps[0].push(get_all(&each, &repo, c, pids.clone()).await);
            // The tier is filled as the response streams; let the last
            // fills land before reading them back.
            tokio::time::sleep(Duration::from_secs(1)).await;
            reps[1].push(get_all(&each, &repo, c, pids).await);
            reps[2].push(self.s3_gets(&each, c).await);
            let from_single: Arc<Vec<(Arc<Target>, Blob)>> = Arc::new(
                each.iter()
                    .map(|(_, b)| (single.clone(), b.clone()))
                    .collect(),
            );
            reps[3].push(get_all(&from_single, &repo, c, single.pids()).await);
            let l = self
                .lookups(&each, single, &repo, MANIFESTS, lookups, c)
                .await?;
            reps[4].push(l.head);
            reps[5].push(l.head_one);
            reps[6].push(l.manifest);
            reps[7].push(l.manifest_one);
        }
        let [cold, hot, s3, one, head, head_one, manifest, manifest_one] = reps.map(median);
        Ok(vec![
            Line::new(
                p,
                "GET cold (other replica's blobs)",
                "S3 GET",
                &s3,
                &cold,
                0.8,
            ),
            Line::new(
                p,
                "GET hot (same replica again)",
                "single node",
                &one,
                &hot,
                0.8,
            ),
            Line::new(
                p,
                "HEAD hot (looked up before)",
                "single node",
                &head_one,
                &head,
                0.5,
            ),
            Line::new(
                p,
                "manifest GET hot (read before)",
                "single node",
                &manifest_one,
                &manifest,
                0.5,
            ),
        ])
    }

    /// Each blob straight from moto, as Larder's object store client reads
    /// it, charged to moto alone.
    async fn s3_gets(&self, each: &Arc<Vec<(Arc<Target>, Blob)>>, c: usize) -> Measured {
        let pids = Pids {
            server: vec![self.moto_pid],
            aux: Vec::new(),
        };
        let (objects, each) = (self.objects.clone(), each.clone());
        driver::run(once(each.len()), c, pids, move |i| {
            let (objects, blob) = (objects.clone(), each[i].1.clone());
            async move {
                let id = larder::cas::ContentId(*blake3::hash(&blob.data).as_bytes());
                let chunks: Vec<bytes::Bytes> =
                    objects.read_blob(&id, None).await?.try_collect().await?;
                let got: Vec<u8> = chunks.concat();
                anyhow::ensure!(got == blob.data, "S3 GET: body differs");
                Ok(crate::client::Sample {
                    bytes: got.len() as u64,
                    first_step: None,
                })
            }
        })
        .await
    }
}

/// Cache manifests per profile for the hot manifest GETs: tags a fleet
/// imports again and again.
const MANIFESTS: usize = 64;

fn once(ops: usize) -> Amount {
    Amount {
        ops,
        min_time: Duration::ZERO,
    }
}

async fn push_all(t: &Arc<Target>, repo: &Arc<str>, set: &Arc<Vec<Blob>>, c: usize) {
    let (t, repo, set) = (t.clone(), repo.clone(), set.clone());
    driver::run(once(set.len()), c, Pids::default(), move |i| {
        let (t, repo, b) = (t.clone(), repo.clone(), set[i].clone());
        async move { t.push(&repo, &b).await }
    })
    .await;
}

async fn get_all(
    each: &Arc<Vec<(Arc<Target>, Blob)>>,
    repo: &Arc<str>,
    c: usize,
    pids: Pids,
) -> Measured {
    let (each, repo) = (each.clone(), repo.clone());
    driver::run(once(each.len()), c, pids, move |i| {
        let ((t, b), repo) = (each[i].clone(), repo.clone());
        async move { t.get_blob(&repo, &b).await }
    })
    .await
}

fn median(mut reps: Vec<Measured>) -> Measured {
    reps.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    reps.swap_remove(reps.len() / 2)
}

/// One line of the cluster table: the cluster's rate against its baseline's.
#[derive(Serialize)]
pub struct Line {
    profile: &'static str,
    phase: String,
    baseline: &'static str,
    base: Measured,
    cluster: Measured,
    goal: Option<f64>,
}

impl Line {
    fn new(
        p: &Profile,
        phase: &str,
        baseline: &'static str,
        base: &Measured,
        cluster: &Measured,
        goal: f64,
    ) -> Line {
        Line {
            profile: p.label,
            phase: phase.to_owned(),
            baseline,
            base: base.clone(),
            cluster: cluster.clone(),
            goal: Some(goal),
        }
    }

    /// The OCI mix's rows, cluster against the single node.
    pub fn from_rows(rows: &[Row]) -> Vec<Line> {
        rows.iter()
            .filter_map(|r| {
                let get = |name| r.results.iter().find(|(n, _)| n == name).map(|(_, m)| m);
                let goal = match r.operation.key() {
                    "head_hit" | "head_miss" | "manifest_get" => Some(0.5),
                    "get_blob" => Some(0.8),
                    _ => None,
                };
                Some(Line {
                    profile: r.profile,
                    phase: r.operation.key().to_owned(),
                    baseline: "single node",
                    base: get("larder")?.clone(),
                    cluster: get("cluster")?.clone(),
                    goal,
                })
            })
            .collect()
    }
}

/// The table docs/PERFORMANCE.md records, as Markdown.
pub fn print(lines: &[Line]) {
    println!("\n## Cluster (2 replicas, PostgreSQL, moto) against its baseline\n");
    println!(
        "| profile | phase | baseline | baseline ops/s | cluster ops/s | ratio | goal | \
         server CPU/op, baseline | replicas CPU/op | PostgreSQL CPU/op | moto CPU/op |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // Against "S3 GET", the baseline's server CPU is moto's own.
    let us = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0} µs"));
    for l in lines {
        let ratio = l.cluster.ops_per_s / l.base.ops_per_s;
        let goal = match l.goal {
            Some(g) if ratio >= g => format!("≥ {g} met"),
            Some(g) => format!("≥ {g} **not met**"),
            None => "–".into(),
        };
        let aux = |name: &str| {
            let of = |m: &Measured| {
                m.aux_cpu_us_per_op
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| *v)
            };
            us(of(&l.cluster))
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {ratio:.2} | {goal} | {} | {} | {} | {} |",
            l.profile,
            l.phase,
            l.baseline,
            l.base.ops_per_s,
            l.cluster.ops_per_s,
            us(l.base.server_cpu_us_per_op),
            us(l.cluster.server_cpu_us_per_op),
            aux("postgres"),
            aux("moto"),
        );
    }
}

pub fn write_json(lines: &[Line]) -> anyhow::Result<()> {
    let path = crate::common::target_dir().join("load-bench-cluster.json");
    std::fs::write(&path, serde_json::to_vec_pretty(lines)?)?;
    eprintln!("cluster table written to {}", path.display());
    Ok(())
}
