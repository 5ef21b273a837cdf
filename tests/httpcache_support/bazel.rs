//! Real Bazel for the Bazel cache tests (HTTP and gRPC): a one-genrule
//! workspace and a batch-mode build in a fresh output root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::require_tool;

/// A workspace with one genrule.
pub fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| std::fs::write(dir.path().join(rel), text).unwrap();
    write("WORKSPACE", "");
    write(
        "BUILD",
        "genrule(\n    name = \"shout\",\n    srcs = [\"in.txt\"],\n    outs = [\"out.txt\"],\n    \
         cmd = \"tr a-z A-Z < $< > $@\",\n)\n",
    );
    write("in.txt", "larder keeps bazel outputs\n");
    dir
}

/// `bazel build //:shout` in batch mode (no lingering server) with its own
/// output root, so nothing local carries over between runs.
pub async fn build(bazel: &Path, ws: &Path, output_root: &Path, flags: &[String]) -> String {
    let mut cmd = tokio::process::Command::new(bazel);
    cmd.arg("--batch");
    run_build(cmd, ws, output_root, "//:shout", flags).await
}

/// A Bazel server kept running between builds in one output root, as on a
/// developer's machine: what it learned of remote outputs ("build without
/// the bytes") stays in its memory from one build to the next. Shut down
/// when dropped.
pub struct Resident {
    bazel: PathBuf,
    ws: PathBuf,
    root: PathBuf,
}

impl Resident {
    pub fn new(bazel: &Path, ws: &Path, output_root: &Path) -> Resident {
        Resident {
            bazel: bazel.to_owned(),
            ws: ws.to_owned(),
            root: output_root.to_owned(),
        }
    }

    pub async fn build(&self, target: &str, flags: &[String]) -> String {
        let cmd = tokio::process::Command::new(&self.bazel);
        run_build(cmd, &self.ws, &self.root, target, flags).await
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.bazel)
            .args(["--nohome_rc", "--noworkspace_rc"])
            .arg(format!("--output_user_root={}", self.root.display()))
            .arg("shutdown")
            .current_dir(&self.ws)
            .status();
    }
}

async fn run_build(
    mut cmd: tokio::process::Command,
    ws: &Path,
    output_root: &Path,
    target: &str,
    flags: &[String],
) -> String {
    let run = cmd
        // The system rc stays: Debian's bazel finds its install base there.
        .args(["--nohome_rc", "--noworkspace_rc"])
        .arg(format!("--output_user_root={}", output_root.display()))
        .args(["build", target, "--spawn_strategy=local"])
        .args(flags)
        .current_dir(ws)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("bazel finishes")
        .expect("bazel runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "bazel failed:\n{text}");
    text
}

/// Bazel, or `None` after `common::skip` (a failure under CI).
pub fn bazel() -> Option<PathBuf> {
    require_tool("bazel")
}
