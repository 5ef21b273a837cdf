//! nginx as the HTTP-cache baseline: Debian's `nginx` with its WebDAV module
//! taking PUTs, configured and started by the bench on a loopback port of
//! its own. It is the reference for what serving a small file over HTTP
//! costs; it never fsyncs what it writes, so its PUTs are not durable.

use std::net::SocketAddr;
use std::path::Path;

pub const NGINX_BIN: &str = "/usr/sbin/nginx";

/// Readiness is polled with `GET /ready`, a file the bench creates in the
/// document root (the root itself has no index and answers 403).
pub const READY_PATH: &str = "/ready";

/// An nginx.conf serving `dir/data` on `addr`, every path nginx would
/// otherwise write under /var kept inside `dir`.
///
/// - `worker_processes auto`: one worker per core, as Debian ships it, so
///   nginx may use both cores as Larder's runtime does.
/// - `access_log off`: Larder logs no line per request at its default level
///   either.
/// - `keepalive_requests`: nginx closes a keep-alive connection after 1000
///   requests by default; Larder never does, and reconnects would be
///   measured as nginx's cost.
/// - `user root` when the bench runs as root: workers otherwise switch to
///   `nobody`, which cannot write into the bench's temp dir.
/// - PUT bodies go to a temp file in `client_body_temp_path` and are
///   renamed into place, so that path shares the data's file system.
pub fn config(dir: &Path, addr: SocketAddr, as_root: bool) -> String {
    let user = if as_root { "user root;\n" } else { "" };
    format!(
        "{user}worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type application/octet-stream;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {addr};
        root {dir}/data;
        location /cache/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw;
            client_max_body_size 0;
        }}
    }}
}}
",
        dir = dir.display()
    )
}

/// "nginx/1.22.1", from `nginx -v` (which prints to stderr).
pub fn version() -> Option<String> {
    let out = std::process::Command::new(NGINX_BIN)
        .arg("-v")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    Some(text.trim().trim_start_matches("nginx version: ").to_owned())
}
