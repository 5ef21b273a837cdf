//! Skipped real-client tests, made visible. libtest has no runtime "skip"
//! and captures a passing test's output, so a skip that only printed would
//! vanish into "ok". Each skip is recorded here instead, and when the test
//! binary exits one summary goes straight to the process's stderr.

use std::io::Write;
use std::sync::{Mutex, Once};

static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static REPORT_AT_EXIT: Once = Once::new();

/// Records that the running test did nothing because of `why`.
pub fn record(why: &str) {
    // libtest runs each test on a thread named after it.
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    lock().push(format!("{test} ({why})"));
    REPORT_AT_EXIT.call_once(|| {
        // SAFETY: `report` is a plain function that never unwinds.
        unsafe { libc::atexit(report) };
    });
}

fn lock() -> std::sync::MutexGuard<'static, Vec<String>> {
    SKIPPED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

extern "C" fn report() {
    let skipped = lock();
    let binary = std::env::args()
        .next()
        .and_then(|path| {
            let stem = std::path::Path::new(&path)
                .file_stem()?
                .to_str()?
                .to_owned();
            // Cargo names test binaries `<target>-<hash>`.
            Some(
                stem.rsplit_once('-')
                    .map_or(stem.clone(), |(name, _)| name.to_owned()),
            )
        })
        .unwrap_or_default();
    // io::stderr() is not captured by the harness, unlike eprintln!.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {} real-client test(s) in {binary}, which CI=true fails instead: {}",
        skipped.len(),
        skipped.join("; ")
    );
}
