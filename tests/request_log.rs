//! The request log (`larder::request`): the real binary with JSON logs, real
//! HTTP clients, and every field of each line checked — the bytes actually
//! sent (HEAD: 0), latency to the end of the body, the request id (given or
//! generated, echoed), the client (forwarded headers only when trusted), the
//! token name and namespace (never the token), and no field twice.

mod common;
mod oci_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{larder_bin, LarderProcess};
use oci_support::*;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

/// Mints a token named `name` for `namespace` offline, against the signing
/// key of the server that has opened the data dir.
fn mint(dir: &std::path::Path, name: &str, namespace: &str) -> String {
    let out = Command::new(larder_bin())
        .args(["token", "create", "--read", "--write", "--data-dir"])
        .arg(dir)
        .args(["--namespace", namespace, "--name", name])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run larder token create");
    assert!(out.status.success(), "token create: {out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    stdout.lines().last().expect("a token line").to_owned()
}

fn json_server(dir: &std::path::Path, env: &[(&str, &str)]) -> LarderProcess {
    LarderProcess::start_env(dir, &["--log-format", "json"], env)
}

/// Waits for the request line with `request_id`, checks it is one JSON
/// object with no key twice, and returns it.
fn request_line(server: &mut LarderProcess, request_id: &str) -> Value {
    let needle = format!("\"request_id\":\"{request_id}\"");
    let raw = loop {
        let line = server.wait_for_log(&needle, WAIT).unwrap_or_else(|| {
            panic!(
                "no log line for request {request_id}; log:\n{}",
                server.log_lines.join("\n")
            )
        });
        if line.contains("\"target\":\"larder::request\"") {
            break line;
        }
    };
    let value: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    let object = value.as_object().expect("a JSON object");
    for key in object.keys() {
        let quoted = format!("\"{key}\":");
        assert_eq!(raw.matches(&quoted).count(), 1, "{key} repeated in {raw}");
    }
    assert!(value.get("span").is_none(), "no span fields: {raw}");
    value
}

fn with_id(id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-request-id", HeaderValue::from_str(id).unwrap());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_lines_say_who_did_what() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = json_server(dir.path(), &[("LARDER__AUTH__MODE", "token")]);
    let token = mint(dir.path(), "ci-bot", "team");
    let base = format!("http://{}", server.addr);
    let mut auth = HeaderMap::new();
    auth.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let client = Client::builder().default_headers(auth).build().unwrap();

    // An authenticated push: the token's name and the namespace, never the
    // token; the bytes received are those of the body.
    // Larger than what an abandoned download can have taken whole before
    // the cut: the kernel's send buffer (up to 4 MiB here) plus the one
    // 4 MiB chunk hyper holds. At 8 MiB the end of the body was sometimes
    // handed over before the client's reset, and the line said complete.
    let blob = fixed_bytes(7, 32 << 20);
    let digest = sha256_digest(&blob);
    let res = client
        .post(format!("{base}/v2/team/app/blobs/uploads/?digest={digest}"))
        .headers(with_id("push-1"))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let line = request_line(&mut server, "push-1");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["http"], "HTTP/1.1");
    assert_eq!(line["route"], "/v2/{name}/blobs/uploads/");
    assert_eq!(line["path"], "/v2/team/app/blobs/uploads/");
    assert_eq!(line["status"], 201);
    assert_eq!(line["bytes_received"], blob.len() as u64);
    assert_eq!(line["token"], "ci-bot");
    assert_eq!(line["namespace"], "team");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["level"], "INFO");
    let all = server.log_lines.join("\n");
    assert!(!all.contains(&token), "the token itself is never logged");

    // A big GET: every byte counted from the body as it went out, and the
    // latency runs to the end of it.
    let res = client
        .get(format!("{base}/v2/team/app/blobs/{digest}"))
        .headers(with_id("get-big"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(must_header(&res, "x-request-id"), "get-big");
    let got = res.bytes().await.unwrap();
    assert_eq!(got.len(), blob.len());
    let line = request_line(&mut server, "get-big");
    assert_eq!(line["bytes_sent"], blob.len() as u64);
    assert_eq!(line["complete"], true);
    assert_eq!(line["route"], "/v2/{name}/blobs/{digest}");
    assert!(line["latency_ms"].as_f64().unwrap() > 0.0, "{line}");

    // HEAD announces the length and sends nothing.
    let res = client
        .head(format!("{base}/v2/team/app/blobs/{digest}"))
        .headers(with_id("head-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(must_header(&res, "content-length"), blob.len().to_string());
    let line = request_line(&mut server, "head-1");
    assert_eq!(line["method"], "HEAD", "{line}");
    assert_eq!(line["bytes_sent"], 0);
    assert_eq!(line["complete"], true, "{line}");

    // The line waits for the end of the body. The client takes the
    // response headers and holds off reading the body (8 MiB cannot fit in
    // the socket buffers) while another request is logged: the download's
    // line must not come before that one, and its latency must cover the
    // wait.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(16 << 10).unwrap();
    let mut raw = sock.connect(server.addr).await.unwrap();
    let req = format!(
        "GET /v2/team/app/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nX-Request-Id: held-1\r\n\
         Connection: close\r\n\r\n"
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        raw.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let headers_at = std::time::Instant::now();
    client
        .get(format!("{base}/v2/"))
        .headers(with_id("between"))
        .send()
        .await
        .unwrap();
    request_line(&mut server, "between");
    let waited = headers_at.elapsed();
    assert!(
        !server.log_lines.iter().any(|l| l.contains("\"held-1\"")),
        "the download was logged before its body was sent"
    );
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest.len(), blob.len());
    let line = request_line(&mut server, "held-1");
    assert_eq!(line["complete"], true, "{line}");
    assert_eq!(line["bytes_sent"], blob.len() as u64);
    let latency = line["latency_ms"].as_f64().unwrap();
    assert!(
        latency >= waited.as_secs_f64() * 1e3,
        "latency {latency} ms covers the {waited:?} the body waited"
    );

    // A download the client abandons: what was sent, and that it was cut.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(16 << 10).unwrap();
    let mut raw = sock.connect(server.addr).await.unwrap();
    let req = format!(
        "GET /v2/team/app/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nX-Request-Id: cut-1\r\n\r\n"
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut some = vec![0u8; 64 << 10];
    raw.read_exact(&mut some).await.unwrap();
    drop(raw);
    let line = request_line(&mut server, "cut-1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["complete"], false, "{line}");
    let sent = line["bytes_sent"].as_u64().unwrap();
    assert!(sent < blob.len() as u64, "{line}");

    // No id given: one is generated and returned. `/v2/` names its route
    // once (it used to print it twice). Forwarded headers are not trusted
    // by default: the client is the peer.
    let res = Client::new()
        .get(format!("{base}/v2/"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let id = must_header(&res, "x-request-id");
    assert_eq!(id.len(), 32, "generated id: {id}");
    let line = request_line(&mut server, &id);
    assert_eq!(line["route"], "/v2/");
    assert_eq!(line["status"], 401);
    assert_eq!(line["client"], "127.0.0.1");
    assert!(line.get("peer").is_none(), "{line}");
    assert!(line.get("token").is_none(), "anonymous: {line}");

    // A request id that could forge a field is replaced, not echoed.
    let res = Client::new()
        .get(format!("{base}/v2/"))
        .header("x-request-id", "x\",\"status\":200")
        .send()
        .await
        .unwrap();
    let id = must_header(&res, "x-request-id");
    assert_eq!(id.len(), 32, "replaced id: {id}");
    request_line(&mut server, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_client_is_believed_only_when_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = json_server(
        dir.path(),
        &[("LARDER__SERVER__TRUST_FORWARDED_HEADERS", "true")],
    );
    let client = Client::new();
    let res = client
        .get(server.url("/v2/"))
        .headers(with_id("fwd-1"))
        .header("x-forwarded-for", "203.0.113.9, 10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let line = request_line(&mut server, "fwd-1");
    assert_eq!(line["client"], "203.0.113.9");
    assert_eq!(line["peer"], "127.0.0.1");
    // Auth off: the namespace is still the one acted on, no token.
    assert!(line.get("token").is_none(), "{line}");

    let res = client
        .get(server.url("/v2/"))
        .headers(with_id("real-ip"))
        .header("x-real-ip", "2001:db8::7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        request_line(&mut server, "real-ip")["client"],
        "2001:db8::7"
    );

    // A path no route matches is logged too.
    let res = client
        .get(server.url("/no/such/route"))
        .headers(with_id("nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let line = request_line(&mut server, "nowhere");
    assert_eq!(line["route"], "unmatched");
    assert_eq!(line["path"], "/no/such/route");

    // Not an address: ignored, the peer stands.
    client
        .get(server.url("/v2/"))
        .headers(with_id("junk-fwd"))
        .header("x-forwarded-for", "not-an-ip")
        .send()
        .await
        .unwrap();
    let line = request_line(&mut server, "junk-fwd");
    assert_eq!(line["client"], "127.0.0.1");
    assert!(line.get("peer").is_none(), "{line}");
}

/// The human format, as on a terminal: `/v2/` says `route=` once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_lines_name_the_route_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = LarderProcess::start(dir.path(), &["--log-format", "human"]);
    let res = Client::new()
        .get(server.url("/v2/"))
        .headers(with_id("human-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let line = server
        .wait_for_log("request_id=human-1 ", WAIT)
        .expect("a request line");
    let line = server
        .log_lines
        .iter()
        .rev()
        .find(|l| l.contains("larder::request"))
        .cloned()
        .unwrap_or(line);
    assert_eq!(line.matches("route=").count(), 1, "{line}");
    assert!(line.contains("bytes_sent="), "{line}");
}
