//! Tracing setup: human-readable logs by default, JSON lines for shippers.
//! Logs go to stderr so stdout stays for command output (tokens, config).
//! A request logs one line; writing it happens on a logging thread, so a
//! slow log consumer never stalls request handling.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the
/// config. Keep the returned guard alive until exit: dropping it flushes
/// the lines still queued.
pub fn init(format: LogFormat, level: &str) -> Option<WorkerGuard> {
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
        .with_writer(writer);
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
    result.ok().map(|_| guard)
}
