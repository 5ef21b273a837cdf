//! The real binary's life: it starts, answers its probes, and on SIGTERM lets
//! in-flight uploads finish — up to `server.shutdown_timeout`, after which it
//! cuts them and exits cleanly without leaving half a blob behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::process::LarderProcess;
use futures_util::stream;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

const REPO: &str = "lifecycle/app";
const CHUNK: usize = 64 << 10;
const WAIT: Duration = Duration::from_secs(30);

fn blob(len: usize) -> (Vec<u8>, String) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    (bytes, digest)
}

/// Regular files anywhere under `dir` (none if it does not exist).
fn files_under(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.map(Result::unwrap) {
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.path().display().to_string());
        }
    }
    out
}

fn write_files(data_dir: &Path) -> Vec<String> {
    let mut files = files_under(&data_dir.join("tmp"));
    files.extend(files_under(&data_dir.join("uploads")));
    files
}

/// Files the server holds open for writing blobs and sessions. Temp files
/// may be anonymous (`O_TMPFILE`), so they are found through the process's
/// descriptors rather than in the directory.
fn open_write_files(server: &LarderProcess) -> Vec<PathBuf> {
    let dirs = [server.data_dir.join("tmp"), server.data_dir.join("uploads")];
    let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", server.pid())) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        // Files in those dirs, not the dirs themselves (workers list them).
        .filter(|target| dirs.iter().any(|d| target.starts_with(d) && target != d))
        .collect()
}

/// The server signals nothing when a handler starts reading a body, but the
/// write's temp file being opened is that moment (the first write of a
/// server also starts its pool of ready temp files); SIGTERM before it would
/// race the connection's accept rather than test draining.
fn wait_for_write_file(server: &LarderProcess, upload: &Upload) {
    let deadline = Instant::now() + WAIT;
    while open_write_files(server).is_empty() {
        assert!(
            !upload.is_finished(),
            "the upload was answered before its body was sent"
        );
        assert!(
            Instant::now() < deadline,
            "the upload never started writing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

type Upload = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;
type BodySender = mpsc::Sender<std::io::Result<Bytes>>;

/// Starts a monolithic upload whose body the test feeds through the sender.
fn start_upload(server: &LarderProcess, digest: &str, len: usize) -> (BodySender, Upload) {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let body = reqwest::Body::wrap_stream(stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let request = common::client()
        .post(server.url(&format!("/v2/{REPO}/blobs/uploads/?digest={digest}")))
        .header(CONTENT_LENGTH, len)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .send();
    (tx, tokio::spawn(request))
}

async fn feed(tx: &BodySender, bytes: &[u8]) {
    for chunk in bytes.chunks(CHUNK) {
        let sent = tx.send(Ok(Bytes::copy_from_slice(chunk))).await;
        assert!(sent.is_ok(), "the server stopped reading the upload body");
    }
}

fn expect_log(server: &mut LarderProcess, needle: &str) {
    if server.wait_for_log(needle, WAIT).is_none() {
        panic!("no {needle:?} in the log:\n{}", server.log_lines.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_answers_probes_and_stops_cleanly_on_sigterm_and_sigint() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = LarderProcess::start(dir.path(), &[]);
        assert!(server.addr.ip().is_loopback() && server.addr.port() != 0);
        let client = common::client();
        for path in ["/healthz", "/readyz"] {
            let res = client.get(server.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }
        server.signal(signal);
        expect_log(&mut server, "shutdown requested");
        expect_log(&mut server, "stopped");
        let status = server.wait(WAIT);
        assert!(status.success(), "signal {signal}: exited {status:?}");
    }
}

// The test body blocks on log lines; the upload runs on the runtime's workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_flight_at_sigterm_completes_and_survives_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, digest) = blob(4 << 20);
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    let mut server = LarderProcess::start(dir.path(), &[]);

    let (tx, upload) = start_upload(&server, &digest, bytes.len());
    feed(&tx, first).await;
    wait_for_write_file(&server, &upload);
    server.sigterm();
    expect_log(&mut server, "shutdown requested");
    feed(&tx, rest).await;
    drop(tx);

    let res = upload
        .await
        .unwrap()
        .expect("upload completes during the drain");
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    expect_log(&mut server, "stopped");
    let status = server.wait(WAIT);
    assert!(status.success(), "exited {status:?}");

    // It was acknowledged, so it must be there after the restart.
    let server = LarderProcess::start(dir.path(), &[]);
    let url = server.url(&format!("/v2/{REPO}/blobs/{digest}"));
    let res = common::client().get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap() == bytes, "blob bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_cut_at_the_shutdown_deadline_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("larder.toml");
    std::fs::write(&config, "[server]\nshutdown_timeout = \"1s\"\n").unwrap();
    let (bytes, digest) = blob(4 << 20);
    let mut server = LarderProcess::start(dir.path(), &["--config", config.to_str().unwrap()]);

    let (tx, upload) = start_upload(&server, &digest, bytes.len());
    feed(&tx, &bytes[..bytes.len() / 2]).await;
    wait_for_write_file(&server, &upload);
    let signalled = Instant::now();
    server.sigterm();
    expect_log(&mut server, "shutdown requested");
    expect_log(&mut server, "did not finish in time");
    expect_log(&mut server, "stopped");
    let status = server.wait(WAIT);
    assert!(status.success(), "exited {status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "cut before the deadline"
    );

    // The client sees its connection die, never a success.
    let outcome = tokio::time::timeout(WAIT, upload).await.unwrap().unwrap();
    if let Ok(res) = &outcome {
        assert!(
            !res.status().is_success(),
            "a cut upload answered {}",
            res.status()
        );
    }
    drop(tx); // held until here so the body never completed

    let server = LarderProcess::start(dir.path(), &[]);
    // A monolithic upload has no session a client could resume, so neither
    // tmp/ nor uploads/ may keep anything of it.
    assert_eq!(write_files(dir.path()), Vec::<String>::new());
    assert_eq!(files_under(&dir.path().join("blobs")), Vec::<String>::new());
    let url = server.url(&format!("/v2/{REPO}/blobs/{digest}"));
    let res = common::client().get(url).send().await.unwrap();
    assert_eq!(res.status(), 404);
}
