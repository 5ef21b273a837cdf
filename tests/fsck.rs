//! `larder fsck`: finds what is wrong with a data dir, repairs it so that
//! the invariants hold again (a miss, never wrong content), and exits
//! non-zero while problems remain.

mod common;
mod oci_support;

use std::path::Path;
use std::process::Command;

use common::process::{larder_bin, LarderProcess};
use oci_support::*;

fn fsck(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(larder_bin())
        .args(["fsck", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .expect("run larder fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A data dir holding one tagged image (config + 2 layers), server stopped.
async fn data_dir_with_image() -> (tempfile::TempDir, PushedImage) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = LarderProcess::start(dir.path(), &[]);
    let image = push_image(
        &common::client(),
        &format!("http://{}", server.addr),
        "team/app",
        Some("v1"),
        7,
        2,
    )
    .await;
    server.sigterm();
    assert!(server.wait(std::time::Duration::from_secs(30)).success());
    (dir, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_data_dir_checks_clean_with_and_without_content_verification() {
    let (dir, _) = data_dir_with_image().await;
    for args in [&[][..], &["--verify-content"][..]] {
        let (code, out) = fsck(dir.path(), args);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("no problems found"), "{out}");
        assert!(
            out.contains("checked 4 blobs") && out.contains("1 entries"),
            "{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_content_is_found_and_repair_turns_it_into_a_clean_miss() {
    let (dir, image) = data_dir_with_image().await;
    // Same size, different bytes: only --verify-content can tell.
    let layer = blob_path(dir.path(), &image.layers[0]);
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&layer, &bytes).unwrap();

    let (code, out) = fsck(dir.path(), &[]);
    assert_eq!(
        code, 0,
        "without re-hashing the corruption is invisible: {out}"
    );
    let (code, out) = fsck(dir.path(), &["--verify-content"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("content does not match its hash"), "{out}");
    assert!(
        out.contains("needs blob"),
        "the manifest using it is reported: {out}"
    );

    let (code, out) = fsck(dir.path(), &["--verify-content", "--repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all problems repaired"), "{out}");
    let (code, out) = fsck(dir.path(), &["--verify-content"]);
    assert_eq!(code, 0, "{out}");

    // The server now answers a clean miss for the image, and nothing broken.
    let server = LarderProcess::start(dir.path(), &[]);
    let base = format!("http://{}", server.addr);
    let c = common::client();
    let res = c
        .get(format!("{base}/v2/team/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let refs = check_manifest_refs(&c, &base, "team/app", &[]).await;
    assert!(refs.broken.is_empty(), "{:?}", refs.broken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_orphans_and_upload_debris_are_reported_then_repaired() {
    let (dir, image) = data_dir_with_image().await;
    std::fs::remove_file(blob_path(dir.path(), &image.config)).unwrap();
    let orphan = blob_path(dir.path(), b"nobody indexed me");
    std::fs::write(&orphan, b"nobody indexed me").unwrap();
    std::fs::write(
        dir.path()
            .join("uploads")
            .join("0123456789abcdef0123456789abcdef"),
        b"half",
    )
    .unwrap();

    let (code, out) = fsck(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    for needle in [
        "its file is missing",
        "file without an index record",
        "no session owns it",
        "needs blob",
        "2 problem(s) remain",
        "2 leftover(s) of interrupted writes",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
    let (code, out) = fsck(dir.path(), &["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(!orphan.exists());
    let (code, out) = fsck(dir.path(), &[]);
    assert_eq!(
        (code, out.contains("no problems found")),
        (0, true),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_refuses_a_data_dir_a_running_server_holds() {
    let dir = tempfile::tempdir().unwrap();
    let _server = LarderProcess::start(dir.path(), &[]);
    let (code, out) = fsck(dir.path(), &[]);
    assert_ne!(code, 0);
    assert!(out.contains("in use by another larder process"), "{out}");
}
