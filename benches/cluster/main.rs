//! Reads through a replica's store layer against the S3 server's own GETs,
//! in one run: `cargo bench --bench cluster [-- --repeat N]`.
//!
//! moto's S3 server (`moto_server`, from PyPI's moto[server]) holds the
//! objects. Each profile (4 KiB × 1,000 and 1 MiB × 100, 16 readers) runs
//! four phases over the same blobs:
//! - `s3 GET`: the object store client alone, straight from the server;
//! - `tier cold`: `Tier::read` with an empty tier (the GET streamed to the
//!   reader while it is verified into the tier);
//! - `tier hot`: `Tier::read` again, every blob held locally;
//! - `single node`: `Cas::read_range` of the same blobs, as one node serves.
//!
//! It prints ops/s and MiB/s, and CPU per read of this process (client and
//! tier) and of the S3 server. Goals (issue 19): cold ≥ 80 % of the S3 GET
//! rate, hot ≥ 80 % of the single node's.

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use larder::cas::{Cas, ContentId};
use larder::cluster::objects::Objects;
use larder::cluster::tier::Tier;
use larder::config::{S3Config, Span};

const READERS: usize = 16;

struct Phase {
    name: &'static str,
    wall: Duration,
    own_cpu: Duration,
    server_cpu: Duration,
}

async fn run<F, Fut>(ids: &Arc<Vec<ContentId>>, read: F) -> Duration
where
    F: Fn(ContentId) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..READERS)
        .map(|_| {
            let (ids, next, read) = (ids.clone(), next.clone(), read.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    assert!(read(*id).await > 0);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("reader");
    }
    started.elapsed()
}

async fn drain(
    s: futures_util::stream::BoxStream<
        'static,
        Result<Bytes, larder::cluster::objects::ObjectsError>,
    >,
) -> usize {
    let chunks: Vec<Bytes> = s.try_collect().await.expect("read");
    chunks.iter().map(Bytes::len).sum()
}

async fn profile(objects: &Objects, moto: u32, size: usize, count: usize) -> Vec<Phase> {
    let dir = tempfile::tempdir().expect("temp dir");
    let cas = Cas::open(&dir.path().join("node/blobs"), &dir.path().join("node/tmp")).expect("cas");
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let mut data = vec![0u8; size];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        data[8..16].copy_from_slice(&(size as u64).to_le_bytes());
        let bytes = Bytes::from(data);
        let v = larder::cas::ingest_bytes(&cas, &bytes, None, u64::MAX).expect("ingest");
        let id = v.publish(&cas).expect("publish").id;
        objects.put_blob_bytes(&id, bytes).await.expect("put");
        ids.push(id);
    }
    let ids = Arc::new(ids);
    let tier = Tier::open(&dir.path().join("tier"), u64::MAX, objects.clone()).expect("tier");
    let mut phases = Vec::new();
    let mut measure = |name, wall, before: (Duration, Duration)| {
        phases.push(Phase {
            name,
            wall,
            own_cpu: common::procfs::own_cpu_time() - before.0,
            server_cpu: common::procfs::cpu_time(moto).unwrap_or_default() - before.1,
        });
    };
    let cpu = || {
        (
            common::procfs::own_cpu_time(),
            common::procfs::cpu_time(moto).unwrap_or_default(),
        )
    };

    let before = cpu();
    let o = objects.clone();
    let wall = run(&ids, move |id| {
        let o = o.clone();
        async move { drain(o.read_blob(&id, None).await.expect("get")).await }
    })
    .await;
    measure("s3 GET", wall, before);

    let before = cpu();
    let mut fills = tier.fills();
    let t = tier.clone();
    let wall = run(&ids, move |id| {
        let t = t.clone();
        async move { drain(t.read(&id, None).await.expect("cold")).await }
    })
    .await;
    // The cold phase ends when every blob is in the tier.
    while *fills.borrow_and_update() < count as u64 {
        fills.changed().await.expect("fills");
    }
    measure("tier cold", wall, before);

    let before = cpu();
    let t = tier.clone();
    let wall = run(&ids, move |id| {
        let t = t.clone();
        async move { drain(t.read(&id, None).await.expect("hot")).await }
    })
    .await;
    measure("tier hot", wall, before);

    let before = cpu();
    let c = cas.clone();
    let len = size as u64;
    let wall = run(&ids, move |id| {
        let c = c.clone();
        async move {
            let s = c.read_range(&id, 0, len).await.expect("node");
            let chunks: Vec<Bytes> = s.try_collect().await.expect("node read");
            chunks.iter().map(Bytes::len).sum()
        }
    })
    .await;
    measure("single node", wall, before);
    phases
}

fn main() {
    let repeat: usize = std::env::args()
        .skip_while(|a| a != "--repeat")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let Ok(moto_bin) = which("moto_server") else {
        eprintln!("SKIP cluster bench: moto_server is not installed (pip install 'moto[server]')");
        return;
    };
    let addr = common::free_port();
    let mut moto = std::process::Command::new(moto_bin)
        .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let endpoint = format!("http://{addr}");
        reqwest::Client::new()
            .put(format!("{endpoint}/bench"))
            .send()
            .await
            .expect("create bucket");
        let objects = Objects::open(&S3Config {
            endpoint,
            bucket: "bench".into(),
            access_key_id: Some("bench".into()),
            secret_access_key: Some("bench".into()),
            allow_http: true,
            request_timeout: Span::secs(30),
            ..S3Config::default()
        })
        .expect("objects");
        println!("| profile | phase | reads/s | MiB/s | CPU/read, this process | CPU/read, S3 server | vs |");
        println!("|---|---|---|---|---|---|---|");
        for (label, size, count) in [("4 KiB × 1000", 4 << 10, 1000), ("1 MiB × 100", 1 << 20, 100)] {
            let mut runs: Vec<Vec<Phase>> = Vec::new();
            for _ in 0..repeat {
                runs.push(profile(&objects, moto.id(), size, count).await);
            }
            report(label, size, count, &runs);
        }
    });
    let _ = moto.kill();
    let _ = moto.wait();
}

/// Medians over the runs; "vs" is cold against the S3 GET and hot against
/// the single node, each within the same run.
fn report(label: &str, size: usize, count: usize, runs: &[Vec<Phase>]) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let rate = |p: &Phase| count as f64 / p.wall.as_secs_f64();
    for (i, phase) in runs[0].iter().enumerate() {
        let name = phase.name;
        let reads = median(runs.iter().map(|r| rate(&r[i])).collect());
        let own = median(
            runs.iter()
                .map(|r| r[i].own_cpu.as_secs_f64() * 1e6 / count as f64)
                .collect(),
        );
        let server = median(
            runs.iter()
                .map(|r| r[i].server_cpu.as_secs_f64() * 1e6 / count as f64)
                .collect(),
        );
        let vs = match i {
            1 => format!(
                "{:.2}× S3 GET",
                median(runs.iter().map(|r| rate(&r[1]) / rate(&r[0])).collect())
            ),
            2 => format!(
                "{:.2}× single node",
                median(runs.iter().map(|r| rate(&r[2]) / rate(&r[3])).collect())
            ),
            _ => String::new(),
        };
        println!(
            "| {label} | {name} | {reads:.0} | {:.1} | {own:.0} µs | {server:.0} µs | {vs} |",
            reads * size as f64 / (1 << 20) as f64
        );
    }
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}
