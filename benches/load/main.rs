//! Load benchmark: Larder against the CNCF reference registry under the
//! request mix BuildKit sends (blob push as POST + PUT, HEAD hit and miss,
//! blob GET, manifest PUT and GET), at fixed concurrency, for three blob
//! profiles; and against nginx (WebDAV PUT) under Bazel's HTTP remote cache
//! (PUT, GET hit, GET miss of `cas/` and `ac/` keys) for two more; and
//! Bazel's gRPC cache (ByteStream Write and Read, FindMissingBlobs) beside
//! Larder's own HTTP cache on blobs of the same sizes for two more. Every
//! response is verified; results print as tables, with the server CPU per
//! request of every phase, and are written as JSON.
//!
//!   cargo bench --bench load
//!   cargo bench --bench load -- --profiles 4k --scale 0.5 --larder-log warn
//!   cargo bench --bench load -- --profiles http4k,http1m --scale 0.1 --repeat 1   # quick
//!   cargo bench --bench load -- --profiles reapi4k,reapi1m --only larder
//!   cargo bench --bench load -- --target https://cache.example.com --token T
//!   cargo bench --bench load -- --cluster --profiles 4k,1m   # see cluster.rs
//!
//! Every server runs as a child process (not in-process) so each is measured
//! as deployed: Larder's own logging setup, its own runtime, and a pid whose
//! CPU time (with its children's: nginx's workers) and `perf record -p`
//! cover the server alone.

#[path = "../common/mod.rs"]
mod common;

mod args;
mod client;
mod client_http;
mod client_reapi;
mod cluster;
mod cluster_infra;
mod cluster_lookups;
mod driver;
mod http_mix;
mod mix;
mod nginx;
mod phases;
mod profiler;
mod reapi_mix;
mod report;
mod servers;
mod workload;

use std::sync::Arc;

use clap::Parser;

use args::Args;
use client::{Speaks, Target};
use workload::{HTTP_PROFILES, PROFILES, REAPI_PROFILES};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    // Servers live on this thread; the runtime only drives the client.
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    match &args.target {
        Some(url) => targets.push(Arc::new(Target::new(
            "target",
            url,
            None,
            Speaks::All,
            args.token.clone(),
        ))),
        None => {
            if args.runs("larder") {
                let mut default = servers::Variant {
                    name: "larder".into(),
                    bin: None,
                    env: Vec::new(),
                };
                if let Some(level) = &args.larder_log {
                    default
                        .env
                        .push(("LARDER__LOG__LEVEL".into(), level.clone()));
                }
                for v in std::iter::once(&default).chain(&args.variant) {
                    servers.push(servers::Server::larder(v));
                }
            }
            // Each baseline only when a profile it serves runs.
            let wants_oci = PROFILES.iter().any(|p| args.wants(p.key));
            if args.runs("registry") && wants_oci {
                match servers::Server::registry(&args.registry_cache) {
                    Some(s) => servers.push(s),
                    None => eprintln!(
                        "NOTE: {} is not installed (apt-get install docker-registry); \
                         benchmarking Larder alone",
                        servers::REGISTRY_BIN
                    ),
                }
            }
            let wants_http = HTTP_PROFILES.iter().any(|p| args.wants(p.key));
            if args.runs("nginx") && wants_http {
                match servers::Server::nginx() {
                    Some(s) => servers.push(s),
                    None => eprintln!(
                        "NOTE: {} is not installed (apt-get install nginx); \
                         the HTTP-cache profiles run against Larder alone",
                        nginx::NGINX_BIN
                    ),
                }
            }
            for s in &servers {
                targets.push(Arc::new(Target::new(
                    &s.name,
                    &s.base(),
                    Some(s.pid()),
                    s.speaks,
                    None,
                )));
            }
        }
    }
    let cluster = match args.cluster {
        true => {
            let c = runtime.block_on(cluster::Cluster::start(&args))?;
            targets.push(c.target.clone());
            Some(c)
        }
        false => None,
    };
    for t in &targets {
        runtime.block_on(t.ping())?;
        eprintln!("{}: {} (pid {:?})", t.name, t.base, t.pid);
    }
    if args.attach_delay > 0 {
        eprintln!("waiting {}s before the first request", args.attach_delay);
        std::thread::sleep(std::time::Duration::from_secs(args.attach_delay));
    }

    let nonce: u64 = rand::random();
    let mut rows = Vec::new();
    let started = std::time::Instant::now();
    let oci: Vec<_> = targets.iter().filter(|t| t.speaks.oci()).cloned().collect();
    let http: Vec<_> = targets
        .iter()
        .filter(|t| t.speaks.http_cache())
        .cloned()
        .collect();
    for p in PROFILES
        .iter()
        .filter(|p| args.wants(p.key) && !oci.is_empty())
    {
        eprintln!("profile {} …", p.label);
        rows.extend(runtime.block_on(mix::run_profile(p, &oci, &args, nonce))?);
    }
    let mut cluster_lines = cluster::Line::from_rows(&rows);
    if let Some(c) = &cluster {
        for p in PROFILES.iter().filter(|p| args.wants(p.key)) {
            eprintln!("profile {}: cluster cold/hot GETs …", p.label);
            cluster_lines.extend(runtime.block_on(c.reads(p, &targets[0], &args, nonce))?);
        }
    }
    for p in HTTP_PROFILES
        .iter()
        .filter(|p| args.wants(p.key) && !http.is_empty())
    {
        eprintln!("profile {} …", p.label);
        rows.extend(runtime.block_on(http_mix::run_profile(p, &http, &args, nonce))?);
    }
    // REAPI only on Larder (the others do not speak it).
    let reapi: Vec<_> = targets
        .iter()
        .filter(|t| t.speaks == Speaks::All)
        .cloned()
        .collect();
    for p in REAPI_PROFILES
        .iter()
        .filter(|p| args.wants(p.key) && !reapi.is_empty())
    {
        eprintln!("profile {} …", p.label);
        rows.extend(runtime.block_on(reapi_mix::run_profile(p, &reapi, &args, nonce))?);
    }
    let elapsed = started.elapsed();
    // Memory after the load, beside the speed: a faster allocator setting
    // must not buy its speed with heap kept forever.
    for t in &targets {
        if let Some(pid) = t.pid {
            let mib = |key| common::procfs::status_bytes(pid, key).unwrap_or(0) >> 20;
            eprintln!(
                "{}: RSS after the run {} MiB, peak {} MiB",
                t.name,
                mib("VmRSS"),
                mib("VmHWM")
            );
        }
    }

    let ctx = report::Context::gather(&args, &targets, elapsed);
    report::print(&ctx, &rows);
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| common::target_dir().join("load-bench.json"));
    report::write_json(&json_path, &ctx, &rows)?;
    eprintln!("results written to {}", json_path.display());
    if cluster.is_some() {
        cluster::print(&cluster_lines);
        cluster::write_json(&cluster_lines)?;
    }
    drop(cluster);
    drop(servers);
    Ok(())
}
