//! A skipped real-client test is visible: the test binary ends with a
//! SKIPPED line naming it and why, and under CI=true it fails instead.
//! The test runs its own binary again with only the probe test selected.

mod common;

use std::process::{Command, Output};

const PROBE_ENV: &str = "LARDER_SKIP_PROBE";

/// Does nothing unless the outer test asks; then behaves as a real-client
/// test whose client is missing.
#[test]
fn probe_with_a_missing_client() {
    if std::env::var_os(PROBE_ENV).is_none() {
        return;
    }
    if common::require_tool("larder-test-no-such-client").is_none() {
        return;
    }
    panic!("a client that does not exist was found");
}

fn run_probe(ci: Option<&str>) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
    cmd.args(["--exact", "probe_with_a_missing_client", "--test-threads=1"])
        .env(PROBE_ENV, "1")
        .env_remove("CI");
    if let Some(ci) = ci {
        cmd.env("CI", ci);
    }
    cmd.output().expect("run the test binary")
}

#[test]
fn a_skip_passes_locally_and_is_reported_once_at_exit() {
    let out = run_probe(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("SKIPPED"))
        .collect();
    assert_eq!(
        lines,
        [
            "SKIPPED 1 real-client test(s) in skip_report, which CI=true fails instead: \
             probe_with_a_missing_client (larder-test-no-such-client is not installed)"
        ],
        "{stderr}"
    );
}

#[test]
fn under_ci_a_skip_is_a_failure() {
    let out = run_probe(Some("true"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout
            .contains("larder-test-no-such-client is not installed, and CI=true forbids skipping"),
        "{stdout}"
    );
}
