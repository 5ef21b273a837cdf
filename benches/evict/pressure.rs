//! Writes at 5x the budget within one lease period: BuildKit-shaped cache
//! exports (three 1 MiB layers, a cache config and a manifest each) pushed
//! by 4 writers into a 64 MiB budget with the default 15-minute lease,
//! while 8 tasks HEAD the layers of one hot export pushed first (as an
//! export checks what is already there; those HEADs lease them, as they
//! should). Reports refusals (goal 0), the peak of usage over `max_size`
//! (goal: within `hard_limit`) and HEAD latency while the evictor works.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::config::{Config, Overrides, Size};
use larder::server::Server;
use sha2::{Digest as _, Sha256};

use super::Latencies;

const BUDGET: u64 = 64 << 20;
const WRITERS: usize = 4;
const LAYER: usize = 1 << 20;
const HEADERS: usize = 8;

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Pushes one blob as BuildKit does; returns the HTTP status of the PUT.
async fn push(c: &reqwest::Client, base: &str, repo: &str, b: &[u8]) -> u16 {
    let res = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("POST");
    if res.status() != 202 {
        return res.status().as_u16();
    }
    let loc = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let url = if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    c.put(format!("{url}{sep}digest={}", digest(b)))
        .body(b.to_vec())
        .send()
        .await
        .expect("PUT")
        .status()
        .as_u16()
}

/// One cache export; returns the statuses of its writes and its layers' digests.
async fn export(c: &reqwest::Client, base: &str, repo: &str, seed: u64) -> (Vec<u16>, Vec<String>) {
    let layers: Vec<Vec<u8>> = (0..3).map(|i| bytes(seed * 4 + i, LAYER)).collect();
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let mut statuses = Vec::new();
    for b in layers.iter().chain([&config]) {
        statuses.push(push(c, base, repo, b).await);
    }
    let desc = |mt: &str, b: &[u8]| serde_json::json!({ "mediaType": mt, "digest": digest(b), "size": b.len() });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.buildkit.cacheconfig.v0", &config),
        "layers": layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
    });
    let res = c
        .put(format!("{base}/v2/{repo}/manifests/cache-{seed}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).expect("json"))
        .send()
        .await
        .expect("PUT manifest");
    statuses.push(res.status().as_u16());
    (statuses, layers.iter().map(|l| digest(l)).collect())
}

pub async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::load(None, &Overrides::default()).expect("config");
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    config.storage.data_dir = dir.path().to_owned();
    config.storage.max_size = Size(BUDGET);
    config.log.level = "warn".into();
    let (hard, lease) = (config.storage.hard_limit(), config.gc.lease.0);
    let server = Server::bind(config).await.expect("bind");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let done = Arc::new(AtomicBool::new(false));
    let (statuses, hot) = export(&reqwest::Client::new(), &base, "bench/hot", u64::MAX / 8).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak, base) = (done.clone(), peak.clone(), base.clone());
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            while !done.load(Ordering::Acquire) {
                let text = c
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .expect("metrics")
                    .text()
                    .await
                    .expect("text");
                let used = text
                    .lines()
                    .find_map(|l| l.strip_prefix("larder_storage_used_bytes "))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                peak.fetch_max(used, Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let heads: Vec<_> = (0..HEADERS)
        .map(|t| {
            let (done, hot, base) = (done.clone(), hot.clone(), base.clone());
            tokio::spawn(async move {
                let c = reqwest::Client::new();
                let (mut lat, mut misses) = (Vec::new(), 0u64);
                let mut i = t;
                while !done.load(Ordering::Acquire) {
                    let started = Instant::now();
                    let res = c
                        .head(format!("{base}/v2/bench/hot/blobs/{}", hot[i % hot.len()]))
                        .send()
                        .await
                        .expect("HEAD");
                    lat.push(started.elapsed());
                    misses += u64::from(res.status() == 404);
                    i += HEADERS;
                }
                (lat, misses)
            })
        })
        .collect();

    let exports = (5 * BUDGET as usize).div_ceil(3 * LAYER);
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let base = base.clone();
            tokio::spawn(async move {
                let c = reqwest::Client::new();
                let mut refused = 0u64;
                for i in (w..exports).step_by(WRITERS) {
                    let (statuses, _) = export(&c, &base, "bench/w0", i as u64).await;
                    // A refused blob makes its manifest a 400: one refusal.
                    refused += u64::from(statuses.iter().any(|s| *s != 201));
                }
                refused
            })
        })
        .collect();
    let mut refused = 0;
    for w in writers {
        refused += w.await.expect("writer");
    }
    let took = started.elapsed();
    done.store(true, Ordering::Release);
    sampler.await.expect("sampler");
    let (mut lat, mut misses) = (Vec::new(), 0);
    for h in heads {
        let (l, m) = h.await.expect("head task");
        lat.extend(l);
        misses += m;
    }
    let lat = Latencies(lat);
    let peak = peak.load(Ordering::Acquire);
    let written = exports as u64 * 3 * LAYER as u64;
    println!(
        "\npressure: {} MiB written in {:.1}s into a {} MiB budget (hard limit {:.1} MiB, lease {}s) by {WRITERS} writers",
        written >> 20,
        took.as_secs_f64(),
        BUDGET >> 20,
        hard as f64 / (1 << 20) as f64,
        lease.as_secs()
    );
    println!(
        "exports refused: {refused} of {exports} (goal 0); peak usage {:.1} MiB, {:.1} MiB over max_size (goal: under the hard limit: {})",
        peak as f64 / (1 << 20) as f64,
        peak.saturating_sub(BUDGET) as f64 / (1 << 20) as f64,
        if peak <= hard { "met" } else { "MISSED" }
    );
    println!(
        "HEAD while evicting: {} requests ({misses} misses), p50 {:.3}ms, p99 {:.3}ms, max {:.3}ms",
        lat.0.len(),
        lat.pct(0.5).as_secs_f64() * 1e3,
        lat.pct(0.99).as_secs_f64() * 1e3,
        lat.pct(1.0).as_secs_f64() * 1e3
    );
    let _ = stop.send(());
    let _ = serving.await;
}
