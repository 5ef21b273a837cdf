//! Readings from /proc: CPU time and resident memory of a process.

use std::time::Duration;

/// User + system CPU time of a whole process (all threads, including
/// threads that already exited), from /proc/<pid>/stat.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line (11, 12 here).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// CPU time of this process.
pub fn own_cpu_time() -> Duration {
    cpu_time(std::process::id()).unwrap_or_default()
}

/// A `Vm*:` line of /proc/<pid>/status in bytes (VmRSS, VmHWM, …).
pub fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// CPU time of a process and its direct children. nginx serves from worker
/// processes its master forks, so the master's own time would leave out
/// nearly all of it; Larder and the registry have no children and read the
/// same as with `cpu_time`. A child that exits mid-phase takes its time
/// with it, which no server here does while it is being measured.
pub fn tree_cpu_time(pid: u32) -> Option<Duration> {
    let own = cpu_time(pid)?;
    let children = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| parent(p) == Some(pid))
        .filter_map(cpu_time)
        .sum::<Duration>();
    Some(own + children)
}

/// The parent pid of a process (field 4 of /proc/<pid>/stat).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
