//! The registry requests BuildKit sends (the HTTP-cache ones are in
//! `client_http`), each verified the way a client
//! relies on it: status, `Docker-Content-Digest`, length, and (for reads)
//! every byte received, compared with the content the bench pushed. A byte
//! comparison is stronger than re-hashing and costs a tenth of the CPU, which
//! on a 2-core machine shared with the servers would otherwise pace GETs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use crate::workload::{Blob, OCI_MANIFEST};

/// A server under test, reached through one pooled client.
pub struct Target {
    pub name: String,
    pub base: String,
    /// The server process, when local: its CPU time is read per phase.
    pub pid: Option<u32>,
    /// A cluster's replicas (`base` is the first): each OCI operation goes
    /// to the next one in turn, all requests of one operation (a push's
    /// POST and PUT) to the same replica, as behind a load balancer with
    /// per-request balancing and sticky upload sessions.
    bases: Vec<String>,
    turn: AtomicUsize,
    /// Every process charged for this target's CPU (a cluster's replicas,
    /// and PostgreSQL and the S3 server apart).
    cpu: crate::driver::Pids,
    /// Which profiles it can run.
    pub speaks: Speaks,
    client: reqwest::Client,
    pub(crate) token: Option<String>,
}

/// The protocols of a target: Larder speaks both, the reference registry
/// only OCI, nginx only plain HTTP (the HTTP-cache profiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    All,
    Oci,
    HttpCache,
}

impl Speaks {
    pub fn oci(self) -> bool {
        self != Speaks::HttpCache
    }

    pub fn http_cache(self) -> bool {
        self != Speaks::Oci
    }
}

/// What one operation moved, and how long its first request took when it
/// has two (the POST of a push), so that step can be reported alone.
pub struct Sample {
    pub bytes: u64,
    pub first_step: Option<Duration>,
}

impl Target {
    pub fn new(
        name: &str,
        base: &str,
        pid: Option<u32>,
        speaks: Speaks,
        token: Option<String>,
    ) -> Target {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Every phase keeps at most `concurrency` (≤ 32) requests in
            // flight; keeping them all idle-pooled avoids reconnects.
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("http client");
        let base = base.trim_end_matches('/').to_owned();
        Target {
            name: name.to_owned(),
            bases: vec![base.clone()],
            base,
            turn: AtomicUsize::new(0),
            cpu: crate::driver::Pids::one(pid),
            pid,
            speaks,
            client,
            token,
        }
    }

    /// A cluster of replicas at `bases`, measured as one registry (OCI only).
    pub fn cluster(name: &str, bases: Vec<String>, cpu: crate::driver::Pids) -> Target {
        let mut t = Target::new(
            name,
            &bases[0],
            cpu.server.first().copied(),
            Speaks::Oci,
            None,
        );
        t.bases = bases;
        t.cpu = cpu;
        t
    }

    /// The processes a phase on this target is charged for.
    pub fn pids(&self) -> crate::driver::Pids {
        self.cpu.clone()
    }

    /// The replica the next operation goes to.
    fn pick(&self) -> &str {
        &self.bases[self.turn.fetch_add(1, Ordering::Relaxed) % self.bases.len()]
    }

    pub(crate) fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, url);
        match &self.token {
            Some(t) => r.header(AUTHORIZATION, format!("Bearer {t}")),
            None => r,
        }
    }

    /// POST an upload session, then PUT the whole blob to its Location.
    pub async fn push(&self, repo: &str, blob: &Blob) -> anyhow::Result<Sample> {
        let start = Instant::now();
        let base = self.pick();
        let url = format!("{base}/v2/{repo}/blobs/uploads/");
        let res = self.request(Method::POST, &url).send().await?;
        expect_status(&res, StatusCode::ACCEPTED, "POST upload")?;
        let location = res
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .context("POST upload: no Location")?
            .to_owned();
        drain(res).await?;
        let posted = start.elapsed();
        let mut put_url = if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location
        };
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str("digest=");
        put_url.push_str(&blob.digest);
        let res = self
            .request(Method::PUT, &put_url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, blob.data.len())
            .body(blob.data.clone())
            .send()
            .await?;
        expect_status(&res, StatusCode::CREATED, "PUT upload")?;
        expect_digest(res.headers(), &blob.digest, "PUT upload")?;
        drain(res).await?;
        Ok(Sample {
            bytes: blob.data.len() as u64,
            first_step: Some(posted),
        })
    }

    /// HEAD a blob: 200 with its digest and length when `hit`, else 404.
    pub async fn head(&self, repo: &str, blob: &Blob, hit: bool) -> anyhow::Result<Sample> {
        let url = format!("{}/v2/{repo}/blobs/{}", self.pick(), blob.digest);
        let res = self.request(Method::HEAD, &url).send().await?;
        if hit {
            expect_status(&res, StatusCode::OK, "HEAD blob")?;
            expect_digest(res.headers(), &blob.digest, "HEAD blob")?;
            let len = res
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok());
            ensure!(
                len == Some(blob.data.len().to_string().as_str()),
                "HEAD blob: Content-Length {len:?}, want {}",
                blob.data.len()
            );
        } else {
            expect_status(&res, StatusCode::NOT_FOUND, "HEAD missing blob")?;
        }
        drain(res).await?;
        Ok(Sample {
            bytes: 0,
            first_step: None,
        })
    }

    /// GET a blob, checking the body as it streams in.
    pub async fn get_blob(&self, repo: &str, blob: &Blob) -> anyhow::Result<Sample> {
        let url = format!("{}/v2/{repo}/blobs/{}", self.pick(), blob.digest);
        let res = self.request(Method::GET, &url).send().await?;
        expect_status(&res, StatusCode::OK, "GET blob")?;
        expect_digest(res.headers(), &blob.digest, "GET blob")?;
        let bytes = expect_body(res, &blob.data, "GET blob").await?;
        Ok(Sample {
            bytes,
            first_step: None,
        })
    }

    pub async fn put_manifest(&self, repo: &str, tag: &str, m: &Blob) -> anyhow::Result<Sample> {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.pick());
        let res = self
            .request(Method::PUT, &url)
            .header(CONTENT_TYPE, OCI_MANIFEST)
            .body(m.data.clone())
            .send()
            .await?;
        if res.status() != StatusCode::CREATED {
            // The body says why (a cluster's 503 names the database error).
            let status = res.status();
            bail!("PUT manifest {url}: status {status}: {}", res.text().await?);
        }
        expect_digest(res.headers(), &m.digest, "PUT manifest")?;
        drain(res).await?;
        Ok(Sample {
            bytes: m.data.len() as u64,
            first_step: None,
        })
    }

    /// GET a manifest by tag, as BuildKit's importer does after its HEAD.
    pub async fn get_manifest(&self, repo: &str, tag: &str, m: &Blob) -> anyhow::Result<Sample> {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.pick());
        let res = self
            .request(Method::GET, &url)
            .header(ACCEPT, OCI_MANIFEST)
            .send()
            .await?;
        expect_status(&res, StatusCode::OK, "GET manifest")?;
        expect_digest(res.headers(), &m.digest, "GET manifest")?;
        let ct = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        ensure!(
            ct == Some(OCI_MANIFEST),
            "GET manifest: Content-Type {ct:?}, want {OCI_MANIFEST}"
        );
        let bytes = expect_body(res, &m.data, "GET manifest").await?;
        Ok(Sample {
            bytes,
            first_step: None,
        })
    }

    /// Waits until `GET /v2/` answers (any status but a connection error)
    /// on every replica.
    pub async fn ping(&self) -> anyhow::Result<()> {
        for base in &self.bases {
            let res = self
                .request(Method::GET, &format!("{base}/v2/"))
                .send()
                .await
                .with_context(|| format!("{} does not answer at {base}", self.name))?;
            drain(res).await?;
        }
        Ok(())
    }
}

pub(crate) fn expect_status(
    res: &reqwest::Response,
    want: StatusCode,
    what: &str,
) -> anyhow::Result<()> {
    if res.status() != want {
        bail!("{what} {}: status {}, want {want}", res.url(), res.status());
    }
    Ok(())
}

fn expect_digest(h: &HeaderMap, want: &str, what: &str) -> anyhow::Result<()> {
    let got = h.get("docker-content-digest").and_then(|v| v.to_str().ok());
    ensure!(
        got == Some(want),
        "{what}: Docker-Content-Digest {got:?}, want {want}"
    );
    Ok(())
}

pub(crate) async fn expect_body(
    res: reqwest::Response,
    want: &[u8],
    what: &str,
) -> anyhow::Result<u64> {
    let mut n = 0usize;
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let end = n + chunk.len();
        ensure!(
            want.get(n..end) == Some(&chunk[..]),
            "{what}: body differs from the pushed content within bytes {n}..{end}"
        );
        n = end;
    }
    ensure!(
        n == want.len(),
        "{what}: body has {n} bytes, want {}",
        want.len()
    );
    Ok(n as u64)
}

/// Reads a response to its end so the connection returns to the pool.
pub(crate) async fn drain(res: reqwest::Response) -> anyhow::Result<()> {
    res.bytes().await?;
    Ok(())
}
