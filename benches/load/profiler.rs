//! `--profile-cmd`: a profiler (perf, strace) attached to the Larder process
//! for exactly one measured phase, so each operation gets its own profile.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::args::Args;

pub struct Attached(Child);

/// Starts the profiler for `phase` if one is configured and wanted for it.
pub fn attach(
    args: &Args,
    target: &str,
    pid: Option<u32>,
    phase: &str,
    op: &str,
) -> Option<Attached> {
    let template = args.profile_cmd.as_ref()?;
    let pid = pid?;
    if target != "larder"
        || !(args.profile_ops.is_empty() || args.profile_ops.iter().any(|o| o == op))
    {
        return None;
    }
    let cmd = template
        .replace("{pid}", &pid.to_string())
        .replace("{phase}", phase);
    // `exec` so the SIGINT below reaches the profiler itself, not a shell.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn --profile-cmd");
    // perf and strace need a moment to attach to every thread.
    std::thread::sleep(Duration::from_millis(500));
    Some(Attached(child))
}

impl Drop for Attached {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGINT);
        }
        let _ = self.0.wait();
    }
}
