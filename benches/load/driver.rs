//! Runs one operation `n` times at fixed concurrency and measures it: wall
//! time, latency percentiles, and the CPU time the server and this client
//! spent (CPU per request is far less noisy than throughput on a shared box).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Sample;
use crate::common::procfs;

#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    pub ops: usize,
    pub bytes: u64,
    pub wall_s: f64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Server CPU (user + system, all threads and worker processes) per
    /// operation, summed over every process of the target (both replicas
    /// of a cluster).
    pub server_cpu_us_per_op: Option<f64>,
    /// CPU per operation of what a cluster runs on (PostgreSQL, the S3
    /// server), apart from the replicas' own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aux_cpu_us_per_op: Vec<(String, f64)>,
    pub client_cpu_us_per_op: f64,
    /// Latency of the first request of two-step operations (a push's POST).
    pub first_step_p50_ms: Option<f64>,
    pub first_step_p99_ms: Option<f64>,
}

/// The processes whose CPU time a phase is charged: the server's (one, or
/// each replica of a cluster) and, apart, those it depends on.
#[derive(Clone, Debug, Default)]
pub struct Pids {
    pub server: Vec<u32>,
    pub aux: Vec<(String, u32)>,
}

impl Pids {
    pub fn one(pid: Option<u32>) -> Pids {
        Pids {
            server: pid.into_iter().collect(),
            aux: Vec::new(),
        }
    }

    fn server_cpu(&self) -> Option<Duration> {
        if self.server.is_empty() {
            return None;
        }
        self.server.iter().map(|&p| procfs::tree_cpu_time(p)).sum()
    }

    fn aux_cpu(&self) -> Vec<Duration> {
        self.aux
            .iter()
            .map(|(_, p)| procfs::tree_cpu_time(*p).unwrap_or_default())
            .collect()
    }
}

/// How long to keep an operation going.
#[derive(Clone, Copy)]
pub struct Amount {
    /// At least this many operations (exactly this many when `min_time` is
    /// zero: pushes cannot repeat without deduplicating).
    pub ops: usize,
    /// Repeatable operations also run at least this long, so fast servers
    /// are measured over a window long enough for /proc's 10 ms CPU ticks.
    pub min_time: Duration,
}

/// Runs `op(i)` for i = 0, 1, … (see `Amount`) with `concurrency` workers,
/// each on its own task so the client side spreads over the runtime's threads.
pub async fn run<F, Fut>(amount: Amount, concurrency: usize, pids: Pids, op: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Sample>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let server_cpu0 = pids.server_cpu();
    let aux_cpu0 = pids.aux_cpu();
    let client_cpu0 = procfs::own_cpu_time();
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency.min(amount.ops).max(1))
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= amount.ops && start.elapsed() >= amount.min_time {
                        return out;
                    }
                    let t = Instant::now();
                    match op(i).await {
                        Ok(s) => out.push((t.elapsed(), s)),
                        // A wrong answer invalidates the run: stop loudly.
                        Err(e) => panic!("operation {i} failed: {e:#}"),
                    }
                }
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(amount.ops);
    for w in workers {
        samples.extend(w.await.expect("bench worker"));
    }
    let wall = start.elapsed();
    let n = samples.len();
    let server_cpu = match (server_cpu0, pids.server_cpu()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let aux_cpu: Vec<Duration> = pids
        .aux_cpu()
        .iter()
        .zip(&aux_cpu0)
        .map(|(b, a)| b.saturating_sub(*a))
        .collect();
    let client_cpu = procfs::own_cpu_time().saturating_sub(client_cpu0);

    let bytes: u64 = samples.iter().map(|(_, s)| s.bytes).sum();
    let mut lat: Vec<Duration> = samples.iter().map(|(d, _)| *d).collect();
    let mut first: Vec<Duration> = samples.iter().filter_map(|(_, s)| s.first_step).collect();
    let per_op = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    Measured {
        ops: n,
        bytes,
        wall_s: wall.as_secs_f64(),
        ops_per_s: n as f64 / wall.as_secs_f64(),
        mib_per_s: bytes as f64 / (1 << 20) as f64 / wall.as_secs_f64(),
        p50_ms: percentile_ms(&mut lat, 0.50).unwrap_or(0.0),
        p99_ms: percentile_ms(&mut lat, 0.99).unwrap_or(0.0),
        server_cpu_us_per_op: server_cpu.map(per_op),
        aux_cpu_us_per_op: pids
            .aux
            .iter()
            .zip(aux_cpu)
            .map(|((name, _), d)| (name.clone(), per_op(d)))
            .collect(),
        client_cpu_us_per_op: per_op(client_cpu),
        first_step_p50_ms: percentile_ms(&mut first, 0.50),
        first_step_p99_ms: percentile_ms(&mut first, 0.99),
    }
}

/// Nearest-rank percentile.
fn percentile_ms(v: &mut [Duration], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1].as_secs_f64() * 1e3)
}
