//! The request line itself, formatted by hand in the shape tracing's
//! formatter gives every other line (same keys, order and level), because
//! formatting it through tracing cost more than the rest of a small GET
//! (see `logging`).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, Uri, Version};
use tracing::Level;

use crate::auth::seen::Seen;
use crate::config::LogFormat;
use crate::logging::{access_sink, AccessSink};

/// The target the lines carry, for filters (`RUST_LOG=larder::request=warn`).
pub const TARGET: &str = "larder::request";

/// Everything the line says but the bytes sent, as the request held it:
/// nothing is formatted unless the line is written.
pub struct Line {
    pub started: Instant,
    pub method: Method,
    pub version: Version,
    pub uri: Uri,
    pub route: Route,
    pub status: u16,
    pub request_id: HeaderValue,
    /// The client a trusted proxy named.
    pub forwarded: Option<IpAddr>,
    pub peer: Option<IpAddr>,
    pub seen: Seen,
    /// What the handler read of the body; `None` when it had none.
    pub received: Option<Arc<AtomicU64>>,
}

/// The route template the request matched.
pub enum Route {
    /// Named by the handler (a wildcard route's precise template).
    Template(&'static str),
    Matched(MatchedPath),
    Unmatched,
}

impl Route {
    pub fn as_str(&self) -> &str {
        match self {
            Route::Template(t) => t,
            Route::Matched(m) => m.as_str(),
            Route::Unmatched => "unmatched",
        }
    }
}

/// What the line says of the client, formatted.
struct Client {
    client: String,
    /// The connection's address when a proxy named the client.
    peer: Option<String>,
}

impl Line {
    pub fn emit(self, sent: u64, complete: bool) {
        let Some(sink) = access_sink() else { return };
        let level = if self.status >= 500 {
            Level::WARN
        } else {
            Level::INFO
        };
        // The subscriber's filter decides, as for any event of this target.
        let enabled = if level == Level::WARN {
            tracing::enabled!(target: TARGET, Level::WARN)
        } else {
            tracing::enabled!(target: TARGET, Level::INFO)
        };
        if !enabled {
            return;
        }
        let fields = Fields {
            latency_ms: (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            bytes_received: (self.received.as_ref()).map_or(0, |r| r.load(Ordering::Relaxed)),
            sent,
            complete,
        };
        let client = Client {
            client: (self.forwarded.or(self.peer))
                .map_or_else(|| "unknown".into(), |a| a.to_string()),
            peer: self.forwarded.and(self.peer).map(|p| p.to_string()),
        };
        let mut out = String::with_capacity(384);
        match sink.format() {
            LogFormat::Json => self.json(&mut out, level, &fields, &client),
            LogFormat::Human => self.human(&mut out, level, &fields, &client, sink),
        }
        out.push('\n');
        sink.write_line(out.as_bytes());
    }

    /// The request id as the response header carries it.
    pub fn request_id(&self) -> &str {
        // Always text: generated ids are hex, client ids were checked.
        self.request_id.to_str().unwrap_or_default()
    }

    fn json(&self, out: &mut String, level: Level, f: &Fields, c: &Client) {
        let ts = humantime::format_rfc3339_micros(SystemTime::now());
        let _ = write!(
            out,
            r#"{{"timestamp":"{ts}","level":"{level}","message":"request","method":"#
        );
        json_str(out, self.method.as_str());
        let _ = write!(out, r#","http":"{:?}","route":"#, self.version);
        json_str(out, self.route.as_str());
        out.push_str(r#","path":"#);
        json_str(out, self.uri.path());
        let _ = write!(
            out,
            r#","status":{},"bytes_sent":{},"bytes_received":{},"latency_ms":{},"complete":{},"request_id":"#,
            self.status, f.sent, f.bytes_received, f.latency_ms, f.complete
        );
        json_str(out, self.request_id());
        out.push_str(r#","client":"#);
        json_str(out, &c.client);
        for (key, value) in self.optional(c) {
            let _ = write!(out, r#","{key}":"#);
            json_str(out, value);
        }
        let _ = write!(out, r#","target":"{TARGET}"}}"#);
    }

    fn human(&self, out: &mut String, level: Level, f: &Fields, c: &Client, sink: &AccessSink) {
        let ts = humantime::format_rfc3339_micros(SystemTime::now());
        let _ = if sink.ansi() {
            let color = if level == Level::WARN { 33 } else { 32 };
            write!(
                out,
                "\x1b[2m{ts}\x1b[0m \x1b[{color}m{level:>5}\x1b[0m \x1b[2m{TARGET}\x1b[0m: "
            )
        } else {
            write!(out, "{ts} {level:>5} {TARGET}: ")
        };
        let _ = write!(
            out,
            "request method={} http={:?} route={} path={} status={} bytes_sent={} bytes_received={} latency_ms={} complete={} request_id={} client={}",
            self.method, self.version, self.route.as_str(), self.uri.path(), self.status, f.sent,
            f.bytes_received, f.latency_ms, f.complete, self.request_id(), c.client
        );
        for (key, value) in self.optional(c) {
            let _ = write!(out, " {key}={value}");
        }
    }

    fn optional<'a>(&'a self, c: &'a Client) -> impl Iterator<Item = (&'static str, &'a str)> {
        [
            ("peer", c.peer.as_deref()),
            ("token", self.seen.token.as_deref()),
            ("namespace", self.seen.namespace.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

struct Fields {
    latency_ms: f64,
    bytes_received: u64,
    sent: u64,
    complete: bool,
}

/// A JSON string literal; every value here is a client-influenced name.
fn json_str(out: &mut String, s: &str) {
    // serde_json's escaper cannot fail on a String.
    if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_str(&mut out, "a\"b\\c\nd");
        assert_eq!(out, r#""a\"b\\c\nd""#);
        let v: String = serde_json::from_str(&out).unwrap();
        assert_eq!(v, "a\"b\\c\nd");
    }
}
