//! Startup at scale: time from spawning `larder serve` to `/readyz` 200 on a
//! data dir holding many blobs and entries, and resident memory at rest.
//!
//!   cargo bench --bench startup                      # 1M blobs, 100k entries
//!   cargo bench --bench startup -- --blobs 100000 --entries 10000 --cold
//!
//! The data dir is generated once and cached under target/startup-bench/.
//! `--cold` drops the data dir's pages from the page cache before every start
//! (posix_fadvise DONTNEED per file, which touches nothing else on a shared
//! machine), approximating a start after a reboot.

#[path = "../common/mod.rs"]
mod common;
mod dataset;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use common::procfs;
use serde::Serialize;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    blobs: usize,
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Also create the blob files (startup never reads them).
    #[arg(long)]
    with_files: bool,
    /// Starts to measure.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds to wait after ready before reading memory "at rest" (covers
    /// the first GC pass and recency flush, which run right after start).
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// Evict the data dir from the page cache before each start.
    #[arg(long)]
    cold: bool,
    /// Rebuild the cached data dir.
    #[arg(long)]
    regenerate: bool,
    /// Index writes made (by a separate process) before each start, since
    /// sled replays everything written after its last start: e.g. 1000000
    /// for a server that flushed a million recency updates since it started.
    #[arg(long, default_value_t = 0)]
    writes_before: usize,
    /// After the --writes-before writes, reopen the index as a quiet server
    /// does every `storage.index_snapshot_interval`, and print how long that
    /// took (the wait of a request arriving meanwhile).
    #[arg(long)]
    snapshot: bool,
    /// Internal: make --writes-before writes on the data dir at this path
    /// and exit (run as a child so sled is fully closed when it exits).
    #[arg(long, hide = true)]
    write_into: Option<std::path::PathBuf>,
    /// Larder's log filter (LARDER__LOG__LEVEL).
    #[arg(long)]
    larder_log: Option<String>,
    /// Where to write the results (default: target/startup-bench.json).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Serialize)]
struct Run {
    ready_ms: f64,
    rss_ready_mib: f64,
    rss_rest_mib: f64,
    hwm_mib: f64,
    cpu_to_ready_ms: f64,
    stop_ms: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.write_into {
        return dataset::write_since_start(dir, args.blobs, args.writes_before, args.snapshot);
    }
    let params = dataset::Params {
        blobs: args.blobs,
        entries: args.entries,
        with_files: args.with_files,
    };
    let cache = common::target_dir().join("startup-bench");
    let data = dataset::ensure(&cache, &params, args.regenerate)?;
    let index_mib = dir_bytes(&data.join("index")) as f64 / (1 << 20) as f64;
    eprintln!("index on disk: {index_mib:.0} MiB");

    let mut runs = Vec::new();
    for n in 0..args.runs {
        if args.writes_before > 0 {
            let t = Instant::now();
            let status = Command::new(std::env::current_exe()?)
                .args(["--blobs", &args.blobs.to_string()])
                .args(["--writes-before", &args.writes_before.to_string()])
                .args(args.snapshot.then_some("--snapshot"))
                .arg("--write-into")
                .arg(&data)
                .status()?;
            anyhow::ensure!(status.success(), "the index writer failed: {status}");
            eprintln!(
                "{} index writes made in {:.1}s",
                args.writes_before,
                t.elapsed().as_secs_f64()
            );
        }
        if args.cold {
            evict_from_page_cache(&data);
        }
        let r = start_once(&data, &args)?;
        eprintln!(
            "run {}: ready in {:.0} ms, RSS {:.0} MiB at ready, {:.0} MiB at rest, peak {:.0} MiB",
            n + 1,
            r.ready_ms,
            r.rss_ready_mib,
            r.rss_rest_mib,
            r.hwm_mib
        );
        runs.push(r);
    }

    let median = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
    };
    let ready = median(|r| r.ready_ms);
    let rest = median(|r| r.rss_rest_mib);
    println!();
    println!(
        "startup, {} blobs / {} entries ({}), {} index writes since the last start, \
         index {index_mib:.0} MiB, {} runs (median):",
        args.blobs,
        args.entries,
        if args.cold {
            "cold page cache"
        } else {
            "warm page cache"
        },
        args.writes_before,
        runs.len()
    );
    if args.snapshot {
        println!("  (the index was reopened after those writes, as on a quiet server)");
    }
    println!(
        "  spawn → /readyz 200   {ready:>8.0} ms   (goal < 1000 ms: {})",
        verdict(ready < 1000.0)
    );
    println!(
        "  CPU until ready       {:>8.0} ms",
        median(|r| r.cpu_to_ready_ms)
    );
    println!(
        "  RSS at ready          {:>8.0} MiB",
        median(|r| r.rss_ready_mib)
    );
    println!(
        "  RSS at rest ({}s)      {rest:>8.0} MiB   (goal < 150 MiB: {})",
        args.settle,
        verdict(rest < 150.0)
    );
    println!("  peak RSS (VmHWM)      {:>8.0} MiB", median(|r| r.hwm_mib));
    println!("  SIGTERM → exit        {:>8.0} ms", median(|r| r.stop_ms));

    let path = args
        .json
        .clone()
        .unwrap_or_else(|| common::target_dir().join("startup-bench.json"));
    let out = serde_json::json!({
        "blobs": args.blobs, "entries": args.entries, "cold": args.cold,
        "writes_before": args.writes_before, "snapshot": args.snapshot,
        "index_mib": index_mib, "settle_s": args.settle,
        "median_ready_ms": ready, "median_rss_rest_mib": rest, "runs": runs,
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&out)?)?;
    eprintln!("results written to {}", path.display());
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn start_once(data: &Path, args: &Args) -> anyhow::Result<Run> {
    let addr = common::free_port();
    let log = File::create(data.parent().unwrap_or(data).join("larder.log"))?;
    let mut cmd = Command::new(common::larder_bin());
    cmd.args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(level) = &args.larder_log {
        cmd.env("LARDER__LOG__LEVEL", level);
    }
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    common::wait_http_200(addr, "/readyz", &mut child, Duration::from_secs(300));
    let ready = started.elapsed();
    let pid = child.id();
    let mib = |key| procfs::status_bytes(pid, key).unwrap_or(0) as f64 / (1 << 20) as f64;
    let cpu_to_ready = procfs::cpu_time(pid).unwrap_or_default();
    let rss_ready = mib("VmRSS");
    std::thread::sleep(Duration::from_secs(args.settle));
    let rss_rest = mib("VmRSS");
    let hwm = mib("VmHWM");
    let stopping = Instant::now();
    common::stop_child(&mut child);
    Ok(Run {
        ready_ms: ready.as_secs_f64() * 1e3,
        rss_ready_mib: rss_ready,
        rss_rest_mib: rss_rest,
        hwm_mib: hwm,
        cpu_to_ready_ms: cpu_to_ready.as_secs_f64() * 1e3,
        stop_ms: stopping.elapsed().as_secs_f64() * 1e3,
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Drops this data dir's cached pages (index and blob shards), file by file.
fn evict_from_page_cache(dir: &Path) {
    use std::os::fd::AsRawFd;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => evict_from_page_cache(&path),
            Ok(_) => {
                if let Ok(f) = File::open(&path) {
                    unsafe {
                        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
                    }
                }
            }
            Err(_) => {}
        }
    }
}
