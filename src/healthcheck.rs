//! `larder healthcheck`: probe a running server and exit 0 only when it
//! answers 200.
//!
//! It exists for images without a shell or curl (the `scratch` image in
//! deploy/Dockerfile), where `HEALTHCHECK CMD ["larder", "healthcheck"]` is the
//! only way to ask the server whether it is ready. Hence one HTTP/1.1 GET on a
//! blocking `TcpStream` — no async runtime, no HTTP client crate — under one
//! deadline covering resolve, connect, send and answer, so a wedged server
//! fails the check instead of hanging it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The readiness probe of a server on the default listen address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:5000/readyz";

/// Enough of a response for its status line, headers and a short reason.
const MAX_RESPONSE: usize = 8 << 10;

/// Where to send the probe, taken apart from an `http://` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeUrl {
    /// As written in the URL (brackets kept for IPv6); also the Host header.
    pub authority: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Parses `http://host[:port][/path]`. Only plain HTTP: the probe runs next to
/// the server on its own port; TLS, when there is any, ends at a proxy.
pub fn parse_url(url: &str) -> Result<ProbeUrl, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed '[' in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{url:?}: {p:?} is not a port"))?,
        None => 80,
    };
    Ok(ProbeUrl {
        authority: authority.to_owned(),
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The status line's reason and the body's first line, for the message.
    pub detail: String,
}

/// GETs `url` and returns the status, or why there is none, within `timeout`.
pub fn probe(url: &str, timeout: Duration) -> Result<Answer, String> {
    let target = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let mut stream = connect(&target, deadline, timeout)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: larder-healthcheck\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .set_write_timeout(Some(left(deadline, timeout)?))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| describe(&e, &target, timeout))?;
    let response = read_response(&mut stream, deadline, timeout, &target)?;
    parse_response(&response)
}

fn connect(target: &ProbeUrl, deadline: Instant, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    let mut last = format!("{} resolves to no address", target.host);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left(deadline, timeout)?) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = describe(&e, target, timeout),
        }
    }
    Err(last)
}

/// Reads until the server closes (we asked it to) or enough has arrived; a
/// deadline hit after the status line still yields that status.
fn read_response(
    stream: &mut TcpStream,
    deadline: Instant,
    timeout: Duration,
    target: &ProbeUrl,
) -> Result<Vec<u8>, String> {
    let mut response = Vec::new();
    let mut buf = [0u8; 2048];
    while response.len() < MAX_RESPONSE {
        let read = left(deadline, timeout)
            .and_then(|t| stream.set_read_timeout(Some(t)).map_err(|e| e.to_string()))
            .and_then(|()| {
                stream
                    .read(&mut buf)
                    .map_err(|e| describe(&e, target, timeout))
            });
        match read {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(_) if response.windows(2).any(|w| w == b"\r\n") => break,
            Err(e) => return Err(e),
        }
    }
    Ok(response)
}

fn parse_response(response: &[u8]) -> Result<Answer, String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code, reason) = (parts.next(), parts.next(), parts.next());
    let status = match (version, code.and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code,
        _ => return Err(format!("not an HTTP response: {status_line:?}")),
    };
    let first_body_line = body.lines().next().unwrap_or_default().trim();
    let detail = [reason.unwrap_or_default().trim(), first_body_line]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    Ok(Answer { status, detail })
}

/// Time left before the deadline; running out is the timeout error itself.
fn left(deadline: Instant, timeout: Duration) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))
    } else {
        Ok(left)
    }
}

fn describe(e: &std::io::Error, target: &ProbeUrl, timeout: Duration) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => format!(
            "connection refused by {} (is larder running and listening there?)",
            target.authority
        ),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => {
            format!("no answer within {}", humantime::format_duration(timeout))
        }
        _ => format!("{}: {e}", target.authority),
    }
}

/// The subcommand: one line on stdout when healthy, on stderr otherwise.
pub fn run(url: &str, timeout: Duration) -> ExitCode {
    match probe(url, timeout) {
        Ok(answer) if answer.status == 200 => {
            println!("{url}: 200 {}", answer.detail);
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            eprintln!(
                "larder healthcheck: {url} answered {} {}",
                answer.status, answer.detail
            );
            ExitCode::FAILURE
        }
        Err(why) => {
            eprintln!("larder healthcheck: {url}: {why}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_apart() {
        let u = parse_url("http://127.0.0.1:5000/readyz").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 5000, "/readyz")
        );
        let u = parse_url("http://[::1]:8080/healthz?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 8080, "[::1]:8080")
        );
        let u = parse_url("http://larder").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert!(parse_url("https://larder/readyz").is_err());
        assert!(parse_url("http://:5000/").is_err());
        assert!(parse_url("http://larder:http/").is_err());
    }

    #[test]
    fn responses_give_status_and_reason() {
        let a =
            parse_response(b"HTTP/1.1 503 Service Unavailable\r\nx: y\r\n\r\nnot ready: disk\n")
                .unwrap();
        assert_eq!(a.status, 503);
        assert_eq!(a.detail, "Service Unavailable: not ready: disk");
        assert!(parse_response(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
    }
}
