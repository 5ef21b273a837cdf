//! An upstream registry for the proxy tests: a plain directory served over
//! HTTP on 127.0.0.1, as a static file server would (GOPROXY layout, simple
//! pages, tarballs), counting the requests per path, with a gate that can
//! hold responses back (to make concurrent first requests overlap), or
//! only the tail of large ones (to see a download while it is under way),
//! and a stop that refuses every later connection (the upstream is down).
#![allow(dead_code)]

pub mod gomod;
pub mod pypi;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct StaticUpstream {
    pub addr: SocketAddr,
    pub root: PathBuf,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// The `Authorization` header of every request that had one.
    auth: Arc<Mutex<Vec<String>>>,
    open: watch::Sender<bool>,
    /// Bodies longer than this send only this many bytes until `release`.
    tail: watch::Sender<Option<usize>>,
    task: Option<JoinHandle<()>>,
}

impl StaticUpstream {
    pub async fn start(root: &Path) -> StaticUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (open, gate) = watch::channel(true);
        let (tail, tail_gate) = watch::channel(None);
        let auth: Arc<Mutex<Vec<String>>> = Arc::default();
        let (dir, counts, seen) = (root.to_owned(), hits.clone(), auth.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let gates = (gate.clone(), tail_gate.clone());
                tokio::spawn(serve(
                    conn,
                    dir.clone(),
                    counts.clone(),
                    seen.clone(),
                    gates,
                ));
            }
        });
        StaticUpstream {
            addr,
            root: root.to_owned(),
            hits,
            auth,
            open,
            tail,
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen for `path` (e.g. `/example.com/m/@v/v1.0.0.zip`).
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// The `Authorization` headers the upstream received.
    pub fn authorizations(&self) -> Vec<String> {
        self.auth.lock().unwrap().clone()
    }

    /// Requests seen, over every path.
    pub fn total(&self) -> usize {
        let hits = self.hits.lock().unwrap();
        hits.values().sum::<usize>() - hits.get(NOT_MODIFIED).copied().unwrap_or(0)
    }

    /// Revalidations answered 304 Not Modified.
    pub fn not_modified(&self) -> usize {
        self.hits(NOT_MODIFIED)
    }

    /// Holds every response until `release`; requests are still counted.
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    /// Bodies longer than `head` bytes send their first `head` bytes, then
    /// wait for `release` to send the rest.
    pub fn hold_after(&self, head: usize) {
        self.tail.send_replace(Some(head));
    }

    pub fn release(&self) {
        self.open.send_replace(true);
        self.tail.send_replace(None);
    }

    /// Stops listening: later connections are refused.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for StaticUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The key `hits` counts 304 answers under.
const NOT_MODIFIED: &str = "304";

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, value) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

async fn serve(
    mut conn: TcpStream,
    root: PathBuf,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    auth: Arc<Mutex<Vec<String>>>,
    (mut gate, mut tail): (watch::Receiver<bool>, watch::Receiver<Option<usize>>),
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let authorization = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_owned())
    });
    auth.lock().unwrap().extend(authorization);
    let _ = gate.wait_for(|open| *open).await;
    // Only plain relative paths: this is a test fixture, not a web server.
    let file = (!path.contains("..")).then(|| root.join(path.trim_start_matches('/')));
    // A directory's path serves its index.html, as static servers do
    // (simple-index pages are `…/<project>/`).
    let file = file.map(|f| match path.ends_with('/') {
        true => f.join("index.html"),
        false => f,
    });
    let (status, body, etag) = match file.and_then(|f| std::fs::read(f).ok()) {
        Some(body) => {
            // A validator as static file servers make one, from the content.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&body, &mut h);
            let etag = format!("\"{:x}\"", std::hash::Hasher::finish(&h));
            if header(&text, "if-none-match").as_deref() == Some(etag.as_str()) {
                *hits.lock().unwrap().entry(NOT_MODIFIED.into()).or_default() += 1;
                ("304 Not Modified", Vec::new(), etag)
            } else {
                ("200 OK", body, etag)
            }
        }
        None => ("404 Not Found", b"not found\n".to_vec(), String::new()),
    };
    let etag = match etag.is_empty() {
        true => String::new(),
        false => format!("ETag: {etag}\r\n"),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\n{etag}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let split = tail.borrow().filter(|&n| n < body.len());
    let (first, rest) = body.split_at(split.unwrap_or(body.len()));
    let _ = conn.write_all(first).await;
    if !rest.is_empty() {
        let _ = tail.wait_for(Option::is_none).await;
    }
    let _ = conn.write_all(rest).await;
    let _ = conn.shutdown().await;
}

/// The value of one series (`name{labels}` exactly as exposed) in a
/// `/metrics` text, 0 when absent.
pub fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
