//! The standard `process_*` metrics (as the Prometheus client libraries
//! export them) and `larder_build_info`, read from `/proc/self` at scrape
//! time: a few small reads, no crate, nothing kept between scrapes. Where
//! `/proc` cannot be read (not Linux), the process series are left out.

pub use super::names::{
    PROCESS_CPU_SECONDS as CPU_SECONDS, PROCESS_MAX_FDS as MAX_FDS, PROCESS_OPEN_FDS as OPEN_FDS,
    PROCESS_RESIDENT_MEMORY as RESIDENT_MEMORY, PROCESS_START_TIME as START_TIME,
    PROCESS_VIRTUAL_MEMORY as VIRTUAL_MEMORY,
};
use std::fmt::Write as _;

use super::{BUILD_INFO, NAMES};

/// What `/proc/self` says about this process.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: Option<f64>,
    start_time: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn sample() -> Sample {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = (ticks > 0).then_some(ticks as f64);
    let stat = read("/proc/self/stat");
    let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
    // Fields are numbered from 1 in proc(5); `stat_fields` starts at 3.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let boot = read("/proc/stat").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
    });
    let status = read("/proc/self/status").unwrap_or_default();
    Sample {
        cpu_seconds: ticks.and_then(|t| Some((field(14)? + field(15)?) as f64 / t)),
        start_time: ticks.and_then(|t| Some(boot? as f64 + field(22)? as f64 / t)),
        resident_bytes: status_kib(&status, "VmRSS:").map(|k| k * 1024),
        virtual_bytes: field(23),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64),
        max_fds: read("/proc/self/limits").and_then(|l| soft_limit(&l, "Max open files")),
    }
}

/// The fields after the command name, whose parentheses may hold spaces
/// and parentheses of their own: split after the last `)`.
fn stat_fields(stat: &str) -> Vec<String> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft limit on a `/proc/self/limits` line ("unlimited": none shown).
fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn help(out: &mut String, name: &str) {
    if let Some((_, kind, text)) = NAMES.iter().find(|(n, _, _)| *n == name) {
        let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
    }
}

/// `larder_build_info` and the process series.
pub fn render(out: &mut String) {
    help(out, BUILD_INFO);
    let mut labels = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    // Set by whoever builds a release (e.g. `LARDER_COMMIT=$(git rev-parse
    // --short HEAD) cargo build`); a plain build does not know it.
    if let Some(commit) = option_env!("LARDER_COMMIT") {
        let _ = write!(labels, ",commit=\"{}\"", super::escape(commit));
    }
    let _ = writeln!(out, "{BUILD_INFO}{{{labels}}} 1");

    let s = sample();
    let floats = [(CPU_SECONDS, s.cpu_seconds), (START_TIME, s.start_time)];
    for (name, value) in floats {
        if let Some(v) = value {
            help(out, name);
            let _ = writeln!(out, "{name} {v}");
        }
    }
    let ints = [
        (RESIDENT_MEMORY, s.resident_bytes),
        (VIRTUAL_MEMORY, s.virtual_bytes),
        (OPEN_FDS, s.open_fds),
        (MAX_FDS, s.max_fds),
    ];
    for (name, value) in ints {
        if let Some(v) = value {
            help(out, name);
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_fields() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    3 0 1000 123456 789 18446744073709551615";
        let f = stat_fields(stat);
        assert_eq!(f[0], "S");
        assert_eq!(f[14 - 3], "250", "utime");
        assert_eq!(f[15 - 3], "50", "stime");
        assert_eq!(f[22 - 3], "1000", "starttime");
        assert_eq!(f[23 - 3], "123456", "vsize");
    }

    #[test]
    fn limits_and_status_lines_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1024));
        assert_eq!(
            soft_limit(
                "Max open files  unlimited unlimited files",
                "Max open files"
            ),
            None
        );
        assert_eq!(
            status_kib("Name:\tx\nVmRSS:\t   2048 kB\n", "VmRSS:"),
            Some(2048)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_plausible_numbers() {
        let s = sample();
        assert!(s.resident_bytes.is_some_and(|b| b > 1 << 20), "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n >= 3), "{s:?}");
        assert!(
            s.max_fds.is_some_and(|n| n >= s.open_fds.unwrap_or(0)),
            "{s:?}"
        );
        let now = crate::auth::token::now_secs() as f64;
        assert!(
            s.start_time
                .is_some_and(|t| t <= now + 1.0 && t > now - 86_400.0),
            "{s:?}"
        );
        assert!(s.cpu_seconds.is_some_and(|c| c >= 0.0), "{s:?}");
    }
}
