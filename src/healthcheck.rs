//! `larder healthcheck`: probe a running server and exit 0 only when it
//! answers 200.
//!
//! It exists for images without a shell or curl (the `scratch` image in
//! deploy/Dockerfile), where `HEALTHCHECK CMD ["larder", "healthcheck"]` is the
//! only way to ask the server whether it is ready. Hence one HTTP/1.1 GET on a
//! blocking `TcpStream` — no async runtime, no HTTP client crate — under one
//! deadline covering resolve, connect, TLS handshake, send and answer, so a
//! wedged server fails the check instead of hanging it.

mod tls;
mod url;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::{Config, Overrides, ServerConfig};
pub use url::{parse_url, ProbeUrl};

/// The URL probed when none is given: the configured listen address's
/// `/readyz`, over https:// when TLS is on (the port then refuses plain
/// HTTP). A wildcard address is reached on loopback. The image sets no URL,
/// so its HEALTHCHECK follows the port and TLS of its config and LARDER__*.
pub fn default_url(server: &ServerConfig) -> String {
    let scheme = if server.tls() { "https" } else { "http" };
    let host = match server.listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("{scheme}://{host}:{}/readyz", server.listen.port())
}

/// Enough of a response for its status line, headers and a short reason.
const MAX_RESPONSE: usize = 8 << 10;

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The status line's reason and the body's first line, for the message.
    pub detail: String,
}

/// The socket under the one deadline: each read and write may block only
/// for the time left, and none starts once it has passed.
pub struct Deadlined {
    tcp: TcpStream,
    deadline: Instant,
}

impl Deadlined {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.left()?))?;
        self.tcp.read(buf)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.left()?))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// GETs `url` and returns the status, or why there is none, within `timeout`;
/// an https:// URL's certificate is verified only against `ca_cert`, if given.
pub fn probe(url: &str, ca_cert: Option<&Path>, timeout: Duration) -> Result<Answer, String> {
    let target = parse_url(url)?;
    let client = if target.tls {
        Some(tls::Client::new(ca_cert)?)
    } else {
        None
    };
    let deadline = Instant::now() + timeout;
    let sock = Deadlined {
        tcp: connect(&target, deadline, timeout)?,
        deadline,
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: larder-healthcheck\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        target.path, target.authority
    );
    let response = match client {
        Some(client) => exchange(
            client.handshake(&target, sock, timeout)?,
            &request,
            &target,
            timeout,
        ),
        None => exchange(sock, &request, &target, timeout),
    }?;
    parse_response(&response)
}

fn exchange(
    mut stream: impl Read + Write,
    request: &str,
    target: &ProbeUrl,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| describe(&e, target, timeout))?;
    read_response(&mut stream, target, timeout)
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
/// deadline hit (or a TLS close without close_notify) after the status line
/// still yields that status.
fn read_response(
    stream: &mut impl Read,
    target: &ProbeUrl,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let mut response = Vec::new();
    let mut buf = [0u8; 2048];
    while response.len() < MAX_RESPONSE {
        let read = stream
            .read(&mut buf)
            .map_err(|e| describe(&e, target, timeout));
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
pub fn run(args: &crate::cli::HealthcheckArgs) -> ExitCode {
    let url = match &args.url {
        Some(url) => url.clone(),
        // The config as `serve` reads it from its file and LARDER__* (the
        // serve's own flags are another process's): only whether TLS is on,
        // and on which port, matters here, so it is not validated.
        None => match Config::load_unchecked(args.config.as_deref(), &Overrides::default()) {
            Ok(config) => default_url(&config.server),
            Err(e) => {
                eprintln!(
                    "larder healthcheck: no --url given, and the config that chooses it does not \
                     load: {e}"
                );
                return ExitCode::FAILURE;
            }
        },
    };
    let url = url.as_str();
    match probe(url, args.ca_cert.as_deref(), args.timeout.0) {
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
    fn the_default_follows_tls_the_port_and_the_address() {
        let mut server = ServerConfig {
            listen: "0.0.0.0:8443".parse().unwrap(),
            ..ServerConfig::default()
        };
        assert_eq!(default_url(&server), "http://127.0.0.1:8443/readyz");
        server.tls_cert = Some("/tls.crt".into());
        server.tls_key = Some("/tls.key".into());
        assert_eq!(default_url(&server), "https://127.0.0.1:8443/readyz");
        server.listen = "10.1.2.3:5000".parse().unwrap();
        assert_eq!(default_url(&server), "https://10.1.2.3:5000/readyz");
        server.listen = "[::]:5000".parse().unwrap();
        assert_eq!(default_url(&server), "https://[::1]:5000/readyz");
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
