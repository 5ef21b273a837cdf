//! Command line of the load bench: `cargo bench --bench load -- [OPTIONS]`.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Drives Larder and the CNCF reference registry with BuildKit's request mix, \
             and Larder and nginx with Bazel's HTTP remote cache"
)]
pub struct Args {
    /// Benchmark this running registry instead (only it; no servers are started).
    #[arg(long)]
    pub target: Option<String>,
    /// Bearer token sent with every request to --target.
    #[arg(long, requires = "target")]
    pub token: Option<String>,
    /// Where to write the results as JSON (default: target/load-bench.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Profiles to run, comma-separated: 1m, 32m, 4k (OCI); http4k, http1m
    /// (HTTP cache); reapi4k, reapi1m (gRPC beside HTTP) (default: all).
    #[arg(long, value_delimiter = ',')]
    pub profiles: Vec<String>,
    /// Operations to measure (default: all): push, head_hit, head_miss,
    /// get_blob, manifest_put, manifest_get (OCI); put, get_hit, get_miss
    /// (HTTP cache); bs_write, bs_read, find_missing (REAPI). What a
    /// measured one needs is still stored first,
    /// unmeasured.
    #[arg(long, value_delimiter = ',')]
    pub ops: Vec<String>,
    /// Runs every measured phase this many times per target, interleaved,
    /// and reports each target's median: fsync-bound write rates swing
    /// by 2x between identical runs on a shared disk.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Overrides every profile's concurrency (e.g. 1 for unloaded latency).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Multiplies every operation count (e.g. 0.25 for a quick or profiled
    /// run). Default 1, or 0.25 with --cluster: every cluster write is an
    /// S3 PUT to moto, whose Python server spends milliseconds of CPU on
    /// each, and the run should stay within minutes on a 2-core machine.
    #[arg(long)]
    pub scale: Option<f64>,
    /// Also runs the OCI profiles against two `larder serve` replicas on
    /// one PostgreSQL and one S3 server (moto), started here, beside the
    /// single node; and the cold/hot GET phases of `cluster`. Only Larder
    /// and the cluster run (no registry, nginx or HTTP-cache profiles).
    #[arg(long, conflicts_with = "target")]
    pub cluster: bool,
    /// Larder's log filter (LARDER__LOG__LEVEL); default: its config default.
    #[arg(long)]
    pub larder_log: Option<String>,
    /// Another Larder measured beside the default one, in the same run:
    /// `NAME [KEY=VALUE]…`, e.g. 'larder-warn LARDER__LOG__LEVEL=warn' or
    /// 'larder-fix LARDER_BIN=/path/to/larder' (repeatable).
    #[arg(long, value_parser = crate::servers::Variant::parse)]
    pub variant: Vec<crate::servers::Variant>,
    /// Run only one of the local servers: larder, registry or nginx.
    #[arg(long)]
    pub only: Option<String>,
    /// The reference registry's blob descriptor cache: "inmemory" (its stock
    /// config) or "none".
    #[arg(long, default_value = "inmemory")]
    pub registry_cache: String,
    /// Prints the server pids and waits this many seconds before the first
    /// request (time to attach `perf record -p`).
    #[arg(long, default_value_t = 0)]
    pub attach_delay: u64,
    /// A command run alongside each measured Larder phase and stopped with
    /// SIGINT after it, e.g. `perf record -e cpu-clock --call-graph dwarf
    /// -p {pid} -o /tmp/prof/{phase}.data`. {pid} and {phase} are filled in.
    #[arg(long)]
    pub profile_cmd: Option<String>,
    /// Operations to run --profile-cmd for (default: all), e.g. head_hit,push.
    #[arg(long, value_delimiter = ',')]
    pub profile_ops: Vec<String>,
    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl Args {
    pub fn wants(&self, profile: &str) -> bool {
        self.profiles.is_empty() || self.profiles.iter().any(|p| p == profile)
    }

    pub fn wants_op(&self, op: &str) -> bool {
        self.ops.is_empty() || self.ops.iter().any(|o| o == op)
    }

    pub fn scale(&self) -> f64 {
        self.scale.unwrap_or(if self.cluster { 0.25 } else { 1.0 })
    }

    /// An operation count times --scale (at least one).
    pub fn scaled(&self, n: usize) -> usize {
        ((n as f64 * self.scale()).round() as usize).max(1)
    }

    /// How long repeatable operations run at least, times --scale.
    pub fn min_time(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(crate::workload::MIN_SECONDS * self.scale())
    }

    pub fn runs(&self, server: &str) -> bool {
        if self.cluster {
            return server == "larder";
        }
        self.only.as_deref().is_none_or(|o| o == server)
    }
}
