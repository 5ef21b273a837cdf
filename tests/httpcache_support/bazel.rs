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
    let run = tokio::process::Command::new(bazel)
        .arg("--batch")
        // The system rc stays: Debian's bazel finds its install base there.
        .args(["--nohome_rc", "--noworkspace_rc"])
        .arg(format!("--output_user_root={}", output_root.display()))
        .args(["build", "//:shout", "--spawn_strategy=local"])
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
