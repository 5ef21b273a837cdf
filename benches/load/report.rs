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

    /// The name used on the command line and in file names.
    pub fn key(self) -> &'static str {
        match self {
            Op::Push => "push",
            Op::HeadHit => "head_hit",
            Op::HeadMiss => "head_miss",
            Op::GetBlob => "get_blob",
            Op::ManifestPut => "manifest_put",
            Op::ManifestGet => "manifest_get",
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
        }
    }

    /// Whether this operation reads what `other` stores.
    pub fn needs(self, other: Op) -> bool {
        match self {
            Op::HeadHit | Op::GetBlob | Op::ManifestPut => other == Op::Push,
            Op::ManifestGet => matches!(other, Op::Push | Op::ManifestPut),
            Op::Push | Op::HeadMiss => false,
        }
    }

    /// Bulk transfers are reported in MiB/s, the rest in requests/s.
    fn is_bulk(self) -> bool {
        matches!(self, Op::Push | Op::GetBlob)
    }

    /// Issue #8's goal for Larder ÷ registry, where it sets one.
    fn goal(self, p: &Profile) -> Option<f64> {
        match (self, p.key) {
            (Op::HeadHit | Op::HeadMiss | Op::ManifestGet, _) => Some(10.0),
            (Op::ManifestPut, _) => Some(3.0),
            (Op::Push | Op::GetBlob, "1m") => Some(3.0),
            (Op::Push | Op::GetBlob, "32m") => Some(1.0),
            _ => None,
        }
    }
}

#[derive(Serialize)]
pub struct Row {
    pub profile: &'static str,
    pub operation: Op,
    pub concurrency: usize,
    pub goal_ratio: Option<f64>,
    /// (target name, its median repetition by rate).
    pub results: Vec<(String, Measured)>,
    /// Every repetition's rate (ops/s) by target, when --repeat > 1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repetitions: Vec<(String, Vec<f64>)>,
    #[serde(skip)]
    label: &'static str,
}

impl Row {
    pub fn new(p: &Profile, op: Op) -> Row {
        Row {
            profile: p.label,
            operation: op,
            concurrency: p.concurrency,
            goal_ratio: op.goal(p),
            results: Vec::new(),
            repetitions: Vec::new(),
            label: p.key,
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

    /// Larder's throughput over the registry's, when both ran.
    pub fn ratio(&self) -> Option<f64> {
        let get = |n: &str| self.results.iter().find(|(t, _)| t == n).map(|(_, m)| m);
        Some(get("larder")?.ops_per_s / get("registry")?.ops_per_s)
    }
}

#[derive(Serialize)]
pub struct Context {
    pub nproc: usize,
    pub kernel: String,
    pub larder_log_level: String,
    pub registry_blob_cache: String,
    pub targets: Vec<(String, String)>,
    pub scale: f64,
    pub repeat: usize,
    pub elapsed_s: f64,
    pub note: &'static str,
}

const DURABILITY_NOTE: &str = "both servers sync before answering 2xx. Larder fsyncs the \
blob file and its directory and group-commits the sled index, fsyncing its log after \
sled's own sync_file_range (see docs/PERFORMANCE.md). The \
reference registry fsyncs every file it writes (about 11 per 1 MiB push and 8 per \
manifest PUT, measured with strace) but never a directory.";

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
                None => args.registry_cache.clone(),
            },
            targets: targets
                .iter()
                .map(|t| (t.name.clone(), t.base.clone()))
                .collect(),
            scale: args.scale,
            repeat: args.repeat.max(1),
            elapsed_s: elapsed.as_secs_f64(),
            note: DURABILITY_NOTE,
        }
    }
}

fn cell(op: Op, m: Option<&Measured>) -> String {
    let Some(m) = m else {
        return format!("{:>10} {:>7} {:>7} {:>7}", "-", "-", "-", "-");
    };
    let rate = if op.is_bulk() {
        format!("{:.0} MiB/s", m.mib_per_s)
    } else {
        format!("{:.0}/s", m.ops_per_s)
    };
    let cpu = m
        .server_cpu_us_per_op
        .map_or("-".to_owned(), |us| format!("{us:.0}"));
    format!("{rate:>10} {:>7.2} {:>7.2} {cpu:>7}", m.p50_ms, m.p99_ms)
}

pub fn print(ctx: &Context, rows: &[Row]) {
    let names: Vec<&str> = ctx.targets.iter().map(|(n, _)| n.as_str()).collect();
    if names.len() > 2 {
        print_long(&names, rows);
    } else {
        print_wide(&names, rows);
    }
    print_footer(ctx);
}

/// One line per target under each operation: for runs with --variant.
fn print_long(names: &[&str], rows: &[Row]) {
    let reg = |r: &Row| {
        r.results
            .iter()
            .find(|(t, _)| t == "registry")
            .map(|(_, m)| m.ops_per_s)
    };
    println!();
    println!(
        "{:<20} {:>10} {:>7} {:>7} {:>7}  vs registry",
        "target", "rate", "p50 ms", "p99 ms", "srv µs"
    );
    for r in rows {
        println!("-- {} / {}", r.profile, r.operation.label());
        for n in names {
            let m = r.results.iter().find(|(t, _)| t == n).map(|(_, m)| m);
            let ratio = match (m, reg(r)) {
                (Some(m), Some(base)) if *n != "registry" => {
                    format!("{:>6.2}x", m.ops_per_s / base)
                }
                _ => String::new(),
            };
            println!("{n:<20} {} {ratio}", cell(r.operation, m));
        }
    }
}

fn print_wide(names: &[&str], rows: &[Row]) {
    println!();
    println!(
        "{:<16} {:<21} | {}",
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
    println!("{}", "-".repeat(40 + 37 * names.len() + 16));
    for r in rows {
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                let m = r.results.iter().find(|(t, _)| t == n).map(|(_, m)| m);
                cell(r.operation, m)
            })
            .collect();
        let ratio = match (r.ratio(), r.goal_ratio) {
            (Some(x), Some(g)) => {
                let verdict = if x >= g { "met" } else { "NOT met" };
                format!(" | {x:>5.2}x (≥{g}x {verdict})")
            }
            (Some(x), None) => format!(" | {x:>5.2}x"),
            _ => String::new(),
        };
        println!(
            "{:<16} {:<21} | {}{ratio}",
            r.profile,
            r.operation.label(),
            cells.join(" | ")
        );
        if r.operation == Op::Push {
            // The session-start half of a push on its own: it is all index
            // and fsync work, no payload.
            let posts: Vec<String> = names
                .iter()
                .map(|n| {
                    let m = r.results.iter().find(|(t, _)| t == n).map(|(_, m)| m);
                    match m.and_then(|m| Some((m.first_step_p50_ms?, m.first_step_p99_ms?))) {
                        Some((p50, p99)) => format!("{:>10} {p50:>7.2} {p99:>7.2} {:>7}", "", ""),
                        None => format!("{:>34}", ""),
                    }
                })
                .collect();
            println!(
                "{:<16} {:<21} | {}",
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
    println!("Durability: {DURABILITY_NOTE}");
    println!("srv µs/op: server CPU time (user+system, all threads) per operation.");
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
            // Every Larder (variants too) against the registry.
            let reg = r
                .results
                .iter()
                .find(|(t, _)| t == "registry")
                .map(|(_, m)| m);
            let ratios: serde_json::Map<String, serde_json::Value> = r
                .results
                .iter()
                .filter(|(t, _)| t != "registry")
                .filter_map(|(t, m)| Some((t.clone(), (m.ops_per_s / reg?.ops_per_s).into())))
                .collect();
            v["ratios_vs_registry"] = ratios.into();
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
