//! A crash (SIGKILL) while the evictor works: after a restart, accounting is
//! exact (a fresh `larder fsck` recount finds nothing to fix) and no
//! remaining manifest references anything missing.

mod common;
mod oci_support;

use std::process::Command;
use std::time::Duration;

use common::process::{larder_bin, LarderProcess};
use oci_support::*;

const ENTRIES: u32 = 120;

fn env() -> [(&'static str, &'static str); 3] {
    [
        ("LARDER__STORAGE__MAX_SIZE", "2MiB"),
        ("LARDER__GC__LEASE", "300ms"),
        ("LARDER__GC__INTERVAL", "1h"),
    ]
}

fn fsck(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(larder_bin())
        .args(["fsck", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run larder fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_eviction_leaves_exact_accounting_and_no_dangling_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::client();
    {
        let server = LarderProcess::start_env(dir.path(), &[], &env());
        let base = format!("http://{}", server.addr);
        // Many small entries, so an eviction pass takes many steps.
        for i in 0..ENTRIES {
            let layer = fixed_bytes(i, 12 << 10);
            let config = format!("{{\"i\":{i}}}").into_bytes();
            push_blob(&c, &base, "team/app", &config).await;
            push_blob(&c, &base, "team/app", &layer).await;
            let m = image_manifest(
                &descriptor(OCI_CONFIG, &config),
                &[descriptor(OCI_LAYER_GZIP, &layer)],
            );
            put_manifest(&c, &base, "team/app", &format!("t{i}"), OCI_MANIFEST, &m).await;
        }
        // Let every lease end, then force a large eviction and kill
        // the process while it runs.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before = blob_files(dir.path()).len();
        let big = fixed_bytes(999, 1 << 20);
        let url = format!(
            "{base}/v2/team/app/blobs/uploads/?digest={}",
            sha256_digest(&big)
        );
        let push = tokio::spawn({
            let c = c.clone();
            async move { c.post(url).body(big).send().await }
        });
        // Kill as soon as the first blob file disappears: eviction is under way.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while blob_files(dir.path()).len() >= before {
            assert!(
                std::time::Instant::now() < deadline,
                "eviction never started"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.kill();
        let _ = push.await;
    }

    // Restart (finishing any interrupted deletion), stop cleanly, then recount.
    let mut server = LarderProcess::start_env(dir.path(), &[], &env());
    server.sigterm();
    assert!(server.wait(Duration::from_secs(30)).success());
    let (ok, report) = fsck(dir.path());
    assert!(ok, "fsck after the crash found problems:\n{report}");
    assert!(report.contains("no problems found"), "{report}");

    // Every tag still listed is either served with all its references or a
    // clean miss; nothing is broken.
    let server = LarderProcess::start_env(dir.path(), &[], &env());
    let base = format!("http://{}", server.addr);
    let refs = check_manifest_refs(&c, &base, "team/app", &[]).await;
    assert!(
        refs.broken.is_empty(),
        "broken references after the crash: {:?}",
        refs.broken
    );
}
