//! Eviction at scale: how long the evictor takes to remove 100 000 entries,
//! and what HEAD latency clients see while it runs compared with idle.
//!
//! Setup writes the index and blob files directly (no fsync, no HTTP), then a
//! real server is started on that data dir. HEADs go to blobs of the newest
//! entries (which eviction keeps) at fixed concurrency, first idle, then while
//! `POST /admin/v1/evict` removes 90 % of the entries.
//!
//! Then `pressure`: writes at 5x the budget within one lease period.
//!
//! `cargo bench --bench evict [-- --entries N] [--pressure-only]`

use std::time::{Duration, Instant};

use larder::cas::{Cas, ContentId};
use larder::config::{Config, Overrides, Size, Span};
use larder::datadir::DataDir;
use larder::index::{BlobRecord, EntryKey, Index, NewEntry, Protocol};
use larder::server::Server;
use sha2::{Digest as _, Sha256};

mod pressure;

const CONCURRENCY: usize = 8;
const HOT: usize = 256;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `n` one-blob entries (and their files) straight into a data dir.
/// Returns the sha256 digests, oldest entry first.
fn build(dir: &std::path::Path, n: usize) -> Vec<String> {
    let data_dir = DataDir::open(dir).expect("data dir");
    let cas = Cas::open(&data_dir.blobs_dir(), &data_dir.tmp_dir()).expect("cas");
    let index = Index::open(&data_dir.index_dir()).expect("index");
    let start = larder::cache::now_ms().saturating_sub(3_600_000);
    let mut digests = Vec::with_capacity(n);
    for i in 0..n {
        let bytes = format!(
            "blob {i:08} of the eviction benchmark, padded to a realistic small size ........"
        );
        let id = ContentId(*blake3::hash(bytes.as_bytes()).as_bytes());
        let sha: [u8; 32] = Sha256::digest(bytes.as_bytes()).into();
        std::fs::write(cas.path(&id), bytes.as_bytes()).expect("blob file");
        let at = start + i as u64;
        let rec = BlobRecord {
            size: bytes.len() as u64,
            sha256: sha,
            created: at,
            touched: at,
        };
        index
            .put_blob(&id, &rec, Some("oci:bench/app"))
            .expect("blob record");
        let digest = format!("sha256:{}", hex::encode(sha));
        let entry = NewEntry {
            key: EntryKey {
                protocol: Protocol::Oci,
                namespace: "bench".into(),
                name: format!("bench/app@{digest}"),
            },
            content: id,
            size: rec.size,
            pins: vec![id],
            meta: br#"{"media_type":"application/vnd.oci.image.manifest.v1+json","len":0}"#
                .to_vec(),
            children: vec![],
        };
        index.put_entry(&entry, at).expect("entry");
        digests.push(digest);
    }
    index.flush().expect("flush");
    digests
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }
}

/// HEADs hot blobs from `CONCURRENCY` tasks until `until` resolves.
async fn head_load(
    base: &str,
    hot: &[String],
    until: tokio::sync::watch::Receiver<bool>,
) -> Latencies {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let (client, base, hot, until) =
            (client.clone(), base.to_owned(), hot.to_vec(), until.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t;
            while !*until.borrow() {
                let url = format!("{base}/v2/bench/app/blobs/{}", hot[i % hot.len()]);
                let started = Instant::now();
                let res = client.head(url).send().await.expect("HEAD");
                assert_eq!(res.status(), 200, "a hot blob must stay");
                lat.push(started.elapsed());
                i += CONCURRENCY;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    Latencies(all)
}

fn main() {
    if std::env::args().any(|a| a == "--pressure-only") {
        runtime().block_on(pressure::run());
        return;
    }
    let entries = arg("--entries", 100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let digests = build(dir.path(), entries);
    println!(
        "built {entries} entries in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let hot: Vec<String> = digests[digests.len() - HOT.min(entries)..].to_vec();

    let runtime = runtime();
    runtime.block_on(async {
        let mut config = Config::load(None, &Overrides::default()).expect("config");
        config.server.listen = "127.0.0.1:0".parse().expect("addr");
        config.storage.data_dir = dir.path().to_owned();
        config.storage.max_size = Size(64 << 30);
        config.gc.lease = Span(Duration::from_millis(1));
        config.gc.interval = Span::secs(3600);
        config.log.level = "warn".into();
        let _log = larder::logging::init(config.log.format, "warn");
        let server = Server::bind(config).await.expect("bind");
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));

        let (idle_done, idle_rx) = tokio::sync::watch::channel(false);
        let idle = tokio::spawn({
            let (base, hot) = (base.clone(), hot.clone());
            async move { head_load(&base, &hot, idle_rx).await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = idle_done.send(true);
        let idle = idle.await.expect("idle load");

        let client = reqwest::Client::new();
        let evict = |target: u64| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let started = Instant::now();
                let report: serde_json::Value = client
                    .post(format!("{base}/admin/v1/evict"))
                    .json(&serde_json::json!({ "target_bytes": target }))
                    .send()
                    .await
                    .expect("evict")
                    .json()
                    .await
                    .expect("report");
                (report, started.elapsed())
            }
        };
        let stats: serde_json::Value = client
            .get(format!("{base}/admin/v1/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        let used = stats["used_bytes"].as_u64().unwrap_or(0);

        // Half the eviction with no other load, half under the HEAD load.
        let (alone, alone_time) = evict(used * 55 / 100).await;
        let (busy_done, busy_rx) = tokio::sync::watch::channel(false);
        let busy = tokio::spawn({
            let (base, hot) = (base.clone(), hot.clone());
            async move { head_load(&base, &hot, busy_rx).await }
        });
        let (loaded, loaded_time) = evict(used / 10).await;
        let _ = busy_done.send(true);
        let busy = busy.await.expect("busy load");

        for (name, report, took) in [
            ("alone", &alone, alone_time),
            ("under HEAD load", &loaded, loaded_time),
        ] {
            let n = report["entries_removed"].as_f64().unwrap_or(0.0);
            println!(
                "eviction {name}: {n} entries ({} blobs) in {:.2}s = {:.0} entries/s",
                report["blobs_removed"],
                took.as_secs_f64(),
                n / took.as_secs_f64()
            );
        }
        println!(
            "\n{:<22} {:>10} {:>10} {:>10} {:>10}",
            "HEAD (hot blobs)", "requests", "p50", "p99", "max"
        );
        for (name, l) in [("idle", &idle), ("while evicting", &busy)] {
            println!(
                "{:<22} {:>10} {:>9.3}ms {:>9.3}ms {:>9.3}ms",
                name,
                l.0.len(),
                l.pct(0.5).as_secs_f64() * 1e3,
                l.pct(0.99).as_secs_f64() * 1e3,
                l.pct(1.0).as_secs_f64() * 1e3
            );
        }
        let _ = stop.send(());
        let _ = serving.await;
    });
    runtime.block_on(pressure::run());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
