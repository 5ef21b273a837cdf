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
    client: Addr,
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
            latency: Millis(self.started.elapsed().as_nanos().div_ceil(1000) as u64),
            bytes_received: (self.received.as_ref()).map_or(0, |r| r.load(Ordering::Relaxed)),
            sent,
            complete,
        };
        let client = Client {
            client: Addr(self.forwarded.or(self.peer)),
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
            self.status, f.sent, f.bytes_received, f.latency, f.complete
        );
        json_str(out, self.request_id());
        // An address or `unknown`: nothing in it needs escaping.
        let _ = write!(out, r#","client":"{}""#, c.client);
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
            f.bytes_received, f.latency, f.complete, self.request_id(), c.client
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
    latency: Millis,
    bytes_received: u64,
    sent: u64,
    complete: bool,
}

/// A latency in microseconds, written in milliseconds as `{}` writes the
/// f64 (`12.5`, `0.142`, `3`) without formatting a float per request.
struct Millis(u64);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        let mut buf = itoa::Buffer::new();
        f.write_str(buf.format(whole))?;
        if frac == 0 {
            return Ok(());
        }
        let digits = [frac / 100, frac / 10 % 10, frac % 10].map(|d| b'0' + d as u8);
        let shown = 3 - digits.iter().rev().take_while(|d| **d == b'0').count();
        f.write_str(".")?;
        f.write_str(std::str::from_utf8(&digits[..shown]).unwrap_or_default())
    }
}

/// The client's address, or `unknown`; an IPv4 one written by hand, as
/// std's `Display` pads through the formatter octet by octet.
struct Addr(Option<IpAddr>);

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("unknown"),
            Some(IpAddr::V6(ip)) => write!(f, "{ip}"),
            Some(IpAddr::V4(ip)) => {
                let mut out = [0u8; 15];
                let mut len = 0;
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out[len] = b'.';
                        len += 1;
                    }
                    let mut buf = itoa::Buffer::new();
                    let digits = buf.format(octet).as_bytes();
                    out[len..len + digits.len()].copy_from_slice(digits);
                    len += digits.len();
                }
                f.write_str(std::str::from_utf8(&out[..len]).unwrap_or_default())
            }
        }
    }
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
    fn latency_and_client_read_as_before() {
        for (micros, shown) in [
            (0, "0"),
            (3000, "3"),
            (12500, "12.5"),
            (142, "0.142"),
            (1010, "1.01"),
        ] {
            assert_eq!(Millis(micros).to_string(), shown);
            assert_eq!(((micros as f64) / 1e3).to_string(), shown);
        }
        for ip in [
            "0.0.0.0",
            "203.0.113.7",
            "255.255.255.255",
            "10.9.0.100",
            "2001:db8::1",
        ] {
            assert_eq!(Addr(ip.parse().ok()).to_string(), ip);
        }
        assert_eq!(Addr(None).to_string(), "unknown");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_str(&mut out, "a\"b\\c\nd");
        assert_eq!(out, r#""a\"b\\c\nd""#);
        let v: String = serde_json::from_str(&out).unwrap();
        assert_eq!(v, "a\"b\\c\nd");
    }
}
