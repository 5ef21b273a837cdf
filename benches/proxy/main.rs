//! Issue 21's benchmark: `npm ci` of a lockfile of generated packages
//! straight from Verdaccio vs through a warm Larder fronting that same
//! Verdaccio, wall time side by side in one run; then warm tarball GETs
//! per second from each. Skips with a note when node, npm or the pinned
//! Verdaccio (`npm ci --prefix tests/node`) is missing.
//!
//!   cargo bench --bench proxy
//!   cargo bench --bench proxy -- --packages 200 --runs 5 --seconds 5 --clients 16

#[path = "../common/mod.rs"]
mod common;
mod npm;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    /// Packages published and installed.
    #[arg(long, default_value_t = 200)]
    packages: usize,
    /// Timed `npm ci` runs per registry (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Length of each GETs-per-second measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients of the GETs-per-second measurement.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    // `cargo bench` passes --bench to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

/// `larder serve` (the bench build) with the npm proxy fronting `upstream`.
struct Larder {
    url: String,
    child: Child,
}

impl Larder {
    fn start(dir: &std::path::Path, upstream: &str) -> Larder {
        let addr = common::free_port();
        let mut child = Command::new(common::larder_bin())
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(dir.join("larder-data"))
            .env_remove("RUST_LOG")
            .env("LARDER__PROXY__NPM__ENABLED", "true")
            .env("LARDER__PROXY__NPM__UPSTREAM", upstream)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn larder");
        common::wait_http_200(addr, "/readyz", &mut child, Duration::from_secs(30));
        Larder {
            url: format!("http://{addr}"),
            child,
        }
    }
}

impl Drop for Larder {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// GETs of `urls` (round robin, each body read) by `clients` concurrent
/// keep-alive clients for `seconds`: completed GETs per second.
async fn gets_per_second(urls: Vec<String>, clients: usize, seconds: u64) -> f64 {
    let urls = Arc::new(urls);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (urls, done) = (urls.clone(), done.clone());
            tokio::spawn(async move {
                let c = reqwest::Client::new();
                let mut n = i;
                while Instant::now() < deadline {
                    let res = c.get(&urls[n % urls.len()]).send().await.expect("GET");
                    assert!(res.status().is_success(), "GET: {}", res.status());
                    res.bytes().await.expect("body");
                    done.fetch_add(1, Ordering::Relaxed);
                    n += clients;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args = Args::parse();
    let tools = match npm::Tools::find() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("proxy bench skipped: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let verdaccio = npm::Verdaccio::start(&tools, &dir.path().join("verdaccio"));
    let c = reqwest::Client::new();
    let token = rt.block_on(verdaccio.token(&c));
    let pkgs: Vec<_> = (0..args.packages)
        .map(|i| npm::Package::make(&dir.path().join("packages"), i))
        .collect();
    rt.block_on(async {
        for p in &pkgs {
            p.publish(&c, &verdaccio.url, &token).await;
        }
    });
    let larder = Larder::start(dir.path(), &verdaccio.url);
    let through = format!("{}/npm/bench", larder.url);
    let project = npm::project(&dir.path().join("project"), &pkgs, &verdaccio.url);
    eprintln!("{} packages published; npm ci runs…", pkgs.len());

    let (upstream, larder_registry) = (format!("{}/", verdaccio.url), format!("{through}/"));
    let homes = dir.path().join("homes");
    std::fs::create_dir_all(&homes).unwrap();
    common::spread_subdirs(&homes);
    common::spread_subdirs(dir.path());
    let home = || tempfile::tempdir_in(&homes).unwrap().keep();
    let cold = npm::npm_ci(&tools, &project, &home(), &larder_registry, false);
    let (mut direct, mut warm, mut offline) = (Vec::new(), Vec::new(), Vec::new());
    // Alternated, so that a slow moment of the shared machine hits each.
    for _ in 0..args.runs {
        direct.push(npm::npm_ci(&tools, &project, &home(), &upstream, false));
        let h = home();
        warm.push(npm::npm_ci(&tools, &project, &h, &larder_registry, false));
        offline.push(npm::npm_ci(&tools, &project, &h, &larder_registry, true));
    }
    let (direct, warm, offline) = (median(direct), median(warm), median(offline));

    let files = |base: &str| -> Vec<String> {
        pkgs.iter()
            .map(|p| format!("{base}/{}", p.file()))
            .collect()
    };
    let (n, s) = (args.clients, args.seconds);
    let up_rps = rt.block_on(gets_per_second(files(&verdaccio.url), n, s));
    let larder_rps = rt.block_on(gets_per_second(files(&through), n, s));

    let ms = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "\n| {} packages | Verdaccio | Larder (warm) | speed-up |",
        pkgs.len()
    );
    println!("|---|---|---|---|");
    println!(
        "| `npm ci`, empty npm cache (median of {}) | {} | {} | {:.1}× |",
        args.runs,
        ms(direct),
        ms(warm),
        direct.as_secs_f64() / warm.as_secs_f64()
    );
    println!(
        "| tarball GETs/s, {n} clients, {s} s | {up_rps:.0} | {larder_rps:.0} | {:.1}× |",
        larder_rps / up_rps
    );
    // `npm ci --offline` from a full npm cache is npm's unpacking and
    // linking alone; what an install from the network takes beyond it is
    // the download: the registry's answers, and npm's own HTTP, integrity
    // and cache writes, which no registry can make faster.
    let (d, w) = (direct.saturating_sub(offline), warm.saturating_sub(offline));
    println!(
        "| … less `npm ci --offline` from a full npm cache ({}) | {} | {} | {:.1}× |",
        ms(offline),
        ms(d),
        ms(w),
        d.as_secs_f64() / w.as_secs_f64()
    );
    println!(
        "\n`npm ci` through a cold Larder (every tarball fetched from Verdaccio): {}",
        ms(cold)
    );
}
