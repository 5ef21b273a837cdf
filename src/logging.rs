//! Tracing setup: human-readable logs by default, JSON lines for shippers.
//! Logs go to stderr so stdout stays for command output (tokens, config).
//! Writing happens on a logging thread, so a slow log consumer never stalls
//! request handling.
//!
//! The per-request line (`api::request_log`) does not go through tracing's
//! formatter: formatting it field by field through `dyn Visit` and waking
//! the logging thread for every line was a quarter of a small GET's CPU
//! (docs/PERFORMANCE.md). It is formatted directly into an `AccessSink`
//! buffer that reaches the same writer in batches.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// How long a request line may wait in the batch before it is written.
const BATCH_DELAY: Duration = Duration::from_millis(100);
/// A batch this large is written at once.
const BATCH_BYTES: usize = 32 << 10;

static ACCESS: OnceLock<Arc<AccessSink>> = OnceLock::new();

/// Keep alive until exit: dropping it writes the lines still batched or queued.
pub struct LogGuard {
    _worker: WorkerGuard,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        // Before the worker guard (a field, dropped after this) flushes.
        if let Some(sink) = ACCESS.get() {
            sink.flush();
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the
/// config.
pub fn init(format: LogFormat, level: &str) -> Option<LogGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Never drop a line to keep up: back-pressure beats a silent gap.
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    let result = match format {
        LogFormat::Human => builder.with_ansi(ansi).try_init(),
        // Only the innermost span: the span list would repeat its fields.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .try_init(),
    };
    // A second init (servers started in-process by tests) keeps the first.
    result.ok()?;
    let sink = Arc::new(AccessSink {
        format,
        ansi,
        batch: Mutex::new((Vec::with_capacity(BATCH_BYTES), writer)),
    });
    if ACCESS.set(sink.clone()).is_ok() {
        let flusher = std::thread::Builder::new().name("larder-log-batch".into());
        // Without the thread lines would still be written, only in larger
        // batches; a server that cannot spawn one has bigger problems.
        let _ = flusher.spawn(move || loop {
            std::thread::sleep(BATCH_DELAY);
            sink.flush();
        });
    }
    Some(LogGuard { _worker: guard })
}

/// Where request lines go, when logging is set up (never in unit tests or
/// servers started in-process by integration tests).
pub fn access_sink() -> Option<&'static AccessSink> {
    ACCESS.get().map(|s| &**s)
}

pub struct AccessSink {
    format: LogFormat,
    ansi: bool,
    batch: Mutex<(Vec<u8>, NonBlocking)>,
}

impl AccessSink {
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Whether the human format should color the level, as tracing does.
    pub fn ansi(&self) -> bool {
        self.ansi
    }

    /// Queues one complete line (ending in `\n`).
    pub fn write_line(&self, line: &[u8]) {
        let mut batch = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        batch.0.extend_from_slice(line);
        if batch.0.len() >= BATCH_BYTES {
            write_out(&mut batch);
        }
    }

    fn flush(&self) {
        let mut batch = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        if !batch.0.is_empty() {
            write_out(&mut batch);
        }
    }
}

fn write_out(batch: &mut (Vec<u8>, NonBlocking)) {
    let (buf, writer) = batch;
    // The writer only queues for the logging thread; it fails only once
    // that thread is gone, when there is nowhere left to report it.
    let _ = writer.write_all(buf);
    buf.clear();
}
