//! The results table (stdout) and the same numbers as JSON.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::args::Args;
use crate::client::Target;
use crate::driver::Measured;
use crate::workload::Profile;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Push,
    HeadHit,
    HeadMiss,
    GetBlob,
    ManifestPut,
    ManifestGet,
    HttpPut,
    HttpGetHit,
    HttpGetMiss,
    GrpcWrite,
    GrpcRead,
    FindMissing,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Push,
        Op::HeadHit,
        Op::HeadMiss,
        Op::GetBlob,
        Op::ManifestPut,
        Op::ManifestGet,
    ];

    /// The HTTP-cache profiles' operations (`http_mix`), in the order run.
    pub const HTTP: [Op; 3] = [Op::HttpPut, Op::HttpGetHit, Op::HttpGetMiss];

    /// The REAPI profiles' operations (`reapi_mix`), in the order run.
    pub const REAPI: [Op; 3] = [Op::GrpcWrite, Op::GrpcRead, Op::FindMissing];

    /// The name used on the command line and in file names.
    pub fn key(self) -> &'static str {
        match self {
            Op::Push => "push",
            Op::HeadHit => "head_hit",
            Op::HeadMiss => "head_miss",
            Op::GetBlob => "get_blob",
            Op::ManifestPut => "manifest_put",
            Op::ManifestGet => "manifest_get",
            Op::HttpPut => "put",
            Op::HttpGetHit => "get_hit",
            Op::HttpGetMiss => "get_miss",
            Op::GrpcWrite => "bs_write",
            Op::GrpcRead => "bs_read",
            Op::FindMissing => "find_missing",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::Push => "blob push (POST+PUT)",
            Op::HeadHit => "HEAD blob hit",
            Op::HeadMiss => "HEAD blob miss",
            Op::GetBlob => "blob GET",
            Op::ManifestPut => "manifest PUT",
            Op::ManifestGet => "manifest GET",
            Op::HttpPut => "PUT",
            Op::HttpGetHit => "GET hit",
            Op::HttpGetMiss => "GET miss",
            Op::GrpcWrite => "ByteStream Write",
            Op::GrpcRead => "ByteStream Read",
            Op::FindMissing => "FindMissing x1000",
        }
    }

    /// Whether this operation reads what `other` stores.
    pub fn needs(self, other: Op) -> bool {
        match self {
            Op::HeadHit | Op::GetBlob | Op::ManifestPut => other == Op::Push,
            Op::ManifestGet => matches!(other, Op::Push | Op::ManifestPut),
            Op::HttpGetHit => other == Op::HttpPut,
            Op::GrpcRead | Op::FindMissing => other == Op::GrpcWrite,
            Op::Push | Op::HeadMiss | Op::HttpPut | Op::HttpGetMiss | Op::GrpcWrite => false,
        }
    }

    /// Bulk transfers are reported in MiB/s, the rest in requests/s. Small
    /// HTTP-cache values are requests, as issue 22 counts them.
    fn is_bulk(self, p: &Profile) -> bool {
        match self {
            Op::Push | Op::GetBlob => true,
            Op::HttpPut | Op::HttpGetHit | Op::GrpcWrite | Op::GrpcRead => p.size >= 1 << 20,
            _ => false,
        }
    }

    /// What the ratio is taken against: the reference registry for OCI,
    /// nginx for plain HTTP, and Larder's own HTTP cache for REAPI.
    fn baseline(self) -> &'static str {
        if Op::HTTP.contains(&self) {
            "nginx"
        } else if Op::REAPI.contains(&self) {
            REAPI_BASELINE
        } else {
            "registry"
        }
    }

    /// The goal for Larder ÷ baseline throughput where an issue sets one:
    /// issue #8 for OCI, issue 22 for HTTP-cache GET hits (its PUT goal is
    /// CPU per request, with fsync, which nginx does not do).
    fn goal(self, p: &Profile) -> Option<f64> {
        match (self, p.key) {
            (Op::HttpGetHit, _) => Some(1.0),
            (Op::HttpPut | Op::HttpGetMiss, _) => None,
            (Op::GrpcWrite | Op::GrpcRead | Op::FindMissing, _) => None,
            (Op::HeadHit | Op::HeadMiss | Op::ManifestGet, _) => Some(10.0),
            (Op::ManifestPut, _) => Some(3.0),
            (Op::Push | Op::GetBlob, "1m") => Some(3.0),
            (Op::Push | Op::GetBlob, "32m") => Some(1.0),
            _ => None,
        }
    }
}

/// The name the REAPI rows give Larder's HTTP side (`reapi_mix`).
pub const REAPI_BASELINE: &str = "larder HTTP";

#[derive(Serialize)]
pub struct Row {
    pub profile: &'static str,
    pub operation: Op,
    pub concurrency: usize,
    pub goal_ratio: Option<f64>,
    /// The target ratios are taken against.
    pub baseline: &'static str,
    /// (target name, its median repetition by rate).
    pub results: Vec<(String, Measured)>,
    /// Every repetition's rate (ops/s) by target, when --repeat > 1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repetitions: Vec<(String, Vec<f64>)>,
    #[serde(skip)]
    label: &'static str,
    #[serde(skip)]
    bulk: bool,
}

impl Row {
    pub fn new(p: &Profile, op: Op) -> Row {
        Row {
            profile: p.label,
            operation: op,
            concurrency: p.concurrency,
            goal_ratio: op.goal(p),
            baseline: op.baseline(),
            results: Vec::new(),
            repetitions: Vec::new(),
            label: p.key,
            bulk: op.is_bulk(p),
        }
    }

    /// Records a target's median repetition (by rate).
    pub fn push_median(&mut self, target: &str, mut reps: Vec<Measured>) {
        reps.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
        if reps.len() > 1 {
            let rates = reps.iter().map(|m| m.ops_per_s).collect();
            self.repetitions.push((target.to_owned(), rates));
        }
        let median = reps.swap_remove(reps.len() / 2);
        self.results.push((target.to_owned(), median));
    }

    fn get(&self, target: &str) -> Option<&Measured> {
        self.results
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, m)| m)
    }

    /// Larder's throughput over the baseline's, when both ran.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.get("larder")?.ops_per_s / self.get(self.baseline)?.ops_per_s)
    }

    /// Larder's server CPU per request over the baseline's (lower is better).
    pub fn cpu_ratio(&self) -> Option<f64> {
        Some(
            self.get("larder")?.server_cpu_us_per_op?
                / self.get(self.baseline)?.server_cpu_us_per_op?,
        )
    }
}

#[derive(Serialize)]
pub struct Context {
    pub nproc: usize,
    pub kernel: String,
    pub larder_log_level: String,
    pub registry_blob_cache: String,
    /// nginx's version, when it ran.
    pub nginx: Option<String>,
    pub targets: Vec<(String, String)>,
    pub scale: f64,
    pub repeat: usize,
    pub elapsed_s: f64,
    pub note: &'static str,
}

const DURABILITY_NOTE: &str =
    "Larder and the registry sync before answering 2xx. Larder fsyncs the \
blob file and its directory and group-commits the sled index, fsyncing its log after \
sled's own sync_file_range (see docs/PERFORMANCE.md). The \
reference registry fsyncs every file it writes (about 11 per 1 MiB push and 8 per \
manifest PUT, measured with strace) but never a directory. nginx (WebDAV PUT) never \
fsyncs: its PUTs are acknowledged from the page cache.";

impl Context {
    pub fn gather(args: &Args, targets: &[Arc<Target>], elapsed: Duration) -> Context {
        Context {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            larder_log_level: match (&args.target, &args.larder_log) {
                (Some(_), _) => "n/a (--target)".into(),
                (None, Some(level)) => level.clone(),
                (None, None) => "default (info)".into(),
            },
            registry_blob_cache: match &args.target {
                Some(_) => "n/a (--target)".into(),
                None if !targets.iter().any(|t| t.name == "registry") => "n/a (not run)".into(),
                None => args.registry_cache.clone(),
            },
            nginx: targets
                .iter()
                .any(|t| t.name == "nginx")
                .then(crate::nginx::version)
                .flatten(),
            targets: targets
                .iter()
                .map(|t| (t.name.clone(), t.base.clone()))
                .collect(),
            scale: args.scale(),
            repeat: args.repeat.max(1),
            elapsed_s: elapsed.as_secs_f64(),
            note: DURABILITY_NOTE,
        }
    }
}

fn cell(bulk: bool, m: Option<&Measured>) -> String {
    let Some(m) = m else {
        return format!("{:>10} {:>7} {:>7} {:>7}", "-", "-", "-", "-");
    };
    let rate = if bulk {
        format!("{:.0} MiB/s", m.mib_per_s)
    } else {
        format!("{:.0}/s", m.ops_per_s)
    };
    let cpu = m
        .server_cpu_us_per_op
        .map_or("-".to_owned(), |us| format!("{us:.0}"));
    format!("{rate:>10} {:>7.2} {:>7.2} {cpu:>7}", m.p50_ms, m.p99_ms)
}

/// One table per baseline (OCI rows against the registry, HTTP-cache rows
/// against nginx, REAPI rows against Larder's HTTP), each with the columns
/// its rows measured.
pub fn print(ctx: &Context, rows: &[Row]) {
    for baseline in ["registry", "nginx", REAPI_BASELINE] {
        let group: Vec<&Row> = rows.iter().filter(|r| r.baseline == baseline).collect();
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in group.iter().flat_map(|r| &r.results) {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        if group.is_empty() {
            continue;
        }
        if names.len() > 2 {
            print_long(&names, &group);
        } else {
            print_wide(&names, &group);
        }
    }
    print_footer(ctx);
}

/// " | cpu 1.23x": Larder's server CPU per request over the baseline's.
fn cpu_cell(r: &Row) -> String {
    r.cpu_ratio()
        .map_or(String::new(), |x| format!(" | cpu {x:.2}x"))
}

/// One line per target under each operation: for runs with --variant.
fn print_long(names: &[&str], rows: &[&Row]) {
    let base = |r: &Row| r.get(r.baseline).map(|m| m.ops_per_s);
    println!();
    println!(
        "{:<20} {:>10} {:>7} {:>7} {:>7}  vs {}",
        "target",
        "rate",
        "p50 ms",
        "p99 ms",
        "srv µs",
        rows.first().map_or("", |r| r.baseline)
    );
    for r in rows {
        println!("-- {} / {}", r.profile, r.operation.label());
        for n in names {
            let m = r.get(n);
            let ratio = match (m, base(r)) {
                (Some(m), Some(base)) if *n != r.baseline => {
                    format!("{:>6.2}x", m.ops_per_s / base)
                }
                _ => String::new(),
            };
            println!("{n:<20} {} {ratio}", cell(r.bulk, m));
        }
    }
}

fn print_wide(names: &[&str], rows: &[&Row]) {
    println!();
    println!(
        "{:<21} {:<21} | {}",
        "profile",
        "operation",
        names
            .iter()
            .map(|n| format!("{:<34}", format!("{n}: rate, p50/p99 ms, srv µs/op")))
            .collect::<Vec<_>>()
            .join(" | ")
            + if names.len() > 1 {
                " | ratio (goal)"
            } else {
                ""
            }
    );
    println!("{}", "-".repeat(45 + 37 * names.len() + 16));
    for r in rows {
        let cells: Vec<String> = names.iter().map(|n| cell(r.bulk, r.get(n))).collect();
        let ratio = match (r.ratio(), r.goal_ratio) {
            (Some(x), Some(g)) => {
                let verdict = if x >= g { "met" } else { "NOT met" };
                format!(" | {x:>5.2}x (≥{g}x {verdict})")
            }
            (Some(x), None) => format!(" | {x:>5.2}x"),
            _ => String::new(),
        };
        println!(
            "{:<21} {:<21} | {}{ratio}{}",
            r.profile,
            r.operation.label(),
            cells.join(" | "),
            cpu_cell(r)
        );
        if r.operation == Op::Push {
            // The session-start half of a push on its own: it is all index
            // and fsync work, no payload.
            let posts: Vec<String> = names
                .iter()
                .map(|n| {
                    match r
                        .get(n)
                        .and_then(|m| Some((m.first_step_p50_ms?, m.first_step_p99_ms?)))
                    {
                        Some((p50, p99)) => format!("{:>10} {p50:>7.2} {p99:>7.2} {:>7}", "", ""),
                        None => format!("{:>34}", ""),
                    }
                })
                .collect();
            println!(
                "{:<21} {:<21} | {}",
                "",
                "  of which POST",
                posts.join(" | ")
            );
        }
    }
}

fn print_footer(ctx: &Context) {
    println!();
    println!(
        "{} cores, kernel {}, Larder log level {}, registry blob descriptor cache {}, \
         scale {}, median of {} repetition(s), {:.0} s",
        ctx.nproc,
        ctx.kernel,
        ctx.larder_log_level,
        ctx.registry_blob_cache,
        ctx.scale,
        ctx.repeat,
        ctx.elapsed_s
    );
    if let Some(v) = &ctx.nginx {
        println!("nginx: {v}, worker_processes auto, access_log off, sendfile on.");
    }
    println!("Durability: {DURABILITY_NOTE}");
    println!(
        "srv µs/op: server CPU time (user+system, all threads, nginx's workers too) per \
         operation; cpu Nx: Larder's over the baseline's."
    );
}

pub fn write_json(path: &Path, ctx: &Context, rows: &[Row]) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Out<'a> {
        context: &'a Context,
        rows: Vec<serde_json::Value>,
    }
    let rows = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r)?;
            v["ratio"] = serde_json::json!(r.ratio());
            v["cpu_ratio"] = serde_json::json!(r.cpu_ratio());
            // Every Larder (variants too) against the baseline.
            let base = r.get(r.baseline);
            let ratios: serde_json::Map<String, serde_json::Value> = r
                .results
                .iter()
                .filter(|(t, _)| t != r.baseline)
                .filter_map(|(t, m)| Some((t.clone(), (m.ops_per_s / base?.ops_per_s).into())))
                .collect();
            v["ratios_vs_baseline"] = ratios.into();
            v["profile_key"] = serde_json::json!(r.label);
            Ok(v)
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&Out { context: ctx, rows })?,
    )?;
    Ok(())
}
