//! One upstream registry: a reqwest client with the proxy's timeouts, a
//! redirect policy that leaves http(s) for nothing else, the upstream's
//! credentials, and bounded reads of metadata.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use crate::config::{ProxyConfig, UpstreamConfig};

/// Redirects followed before a fetch is given up.
const MAX_REDIRECTS: usize = 10;

pub struct Upstream {
    client: reqwest::Client,
    base: String,
    authorization: Option<HeaderValue>,
    max_metadata: u64,
    read_timeout: Duration,
}

/// What an upstream answered that a proxy can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// 404 or 410: the upstream does not have it.
    #[error("the upstream has no such thing ({0})")]
    Missing(u16),
    #[error("the upstream answered {status} for {url}")]
    Status { status: u16, url: String },
    #[error(
        "the upstream did not answer within {0:?} (proxy.read_timeout, proxy.connect_timeout)"
    )]
    Timeout(Duration),
    #[error("the upstream is unreachable: {0}")]
    Unreachable(String),
    #[error(
        "the upstream's metadata is larger than the limit of {0} bytes (proxy.max_metadata_size)"
    )]
    TooLarge(u64),
}

impl UpstreamError {
    /// The status a client gets for it: the upstream's 404/410 as is (Go
    /// reads both as "try the next proxy"), 504 for a timeout, else 502.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Missing(s) => StatusCode::from_u16(*s).unwrap_or(StatusCode::NOT_FOUND),
            UpstreamError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A metadata document as the upstream sent it.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub body: Bytes,
    pub content_type: Option<String>,
    pub etag: Option<String>,
}

impl Upstream {
    pub fn new(c: &UpstreamConfig, limits: &ProxyConfig) -> anyhow::Result<Upstream> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let scheme = attempt.url().scheme().to_owned();
            if scheme != "http" && scheme != "https" {
                attempt.error(format!("redirect to a {scheme}: URL refused"))
            } else if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout.0)
            .read_timeout(limits.read_timeout.0)
            .redirect(policy)
            .user_agent(concat!("larder/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Upstream {
            client,
            base: c.upstream.trim_end_matches('/').to_owned(),
            authorization: super::credentials::authorization(c)?,
            max_metadata: limits.max_metadata_size.bytes(),
            read_timeout: limits.read_timeout.0,
        })
    }

    /// The upstream's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base/path`: `path` must already be validated and escaped by the
    /// ecosystem (no `..`, no query).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// GET with the upstream's credentials; a 304 (only possible when
    /// `etag` is sent as `If-None-Match`) is `Ok(None)`.
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        etag: Option<&str>,
    ) -> Result<Option<reqwest::Response>, UpstreamError> {
        let mut req = self.client.get(url);
        if let Some(tag) = etag {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        if let Some(a) = &self.authorization {
            // reqwest drops it on a redirect to another host.
            req = req.header(header::AUTHORIZATION, a.clone());
        }
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let res = req.send().await.map_err(|e| self.failed(e))?;
        let status = res.status();
        if status == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(None);
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Err(UpstreamError::Missing(status.as_u16()));
        }
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status: status.as_u16(),
                url: url.to_owned(),
            });
        }
        Ok(Some(res))
    }

    fn failed(&self, e: reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            return UpstreamError::Timeout(self.read_timeout);
        }
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why = format!("{why}: {s}");
            source = s.source();
        }
        UpstreamError::Unreachable(why)
    }

    /// A metadata document, read whole but never past `max_metadata_size`.
    pub async fn metadata(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<Fetched, UpstreamError> {
        let fetched = self.metadata_if_changed(url, accept, None).await?;
        fetched.ok_or_else(|| UpstreamError::Status {
            status: StatusCode::NOT_MODIFIED.as_u16(),
            url: url.to_owned(),
        })
    }

    /// `metadata`, revalidating the copy whose `ETag` is `etag`: `Ok(None)`
    /// when the upstream says it has not changed (304, no body sent).
    pub async fn metadata_if_changed(
        &self,
        url: &str,
        accept: Option<&str>,
        etag: Option<&str>,
    ) -> Result<Option<Fetched>, UpstreamError> {
        let Some(mut res) = self.get(url, accept, etag).await? else {
            return Ok(None);
        };
        if res.content_length().is_some_and(|n| n > self.max_metadata) {
            return Err(UpstreamError::TooLarge(self.max_metadata));
        }
        let text = |name| {
            res.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (content_type, etag) = (text(header::CONTENT_TYPE), text(header::ETAG));
        let mut body = BytesMut::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| self.failed(e))? {
            if (body.len() + chunk.len()) as u64 > self.max_metadata {
                return Err(UpstreamError::TooLarge(self.max_metadata));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(Fetched {
            body: body.freeze(),
            content_type,
            etag,
        }))
    }

    /// An artifact's body as a stream (for the CAS to verify while it
    /// stores), with the length the upstream announced.
    pub async fn artifact(
        &self,
        url: &str,
    ) -> Result<
        (
            impl Stream<Item = Result<Bytes, String>> + Send + 'static,
            Option<u64>,
        ),
        UpstreamError,
    > {
        let res = self
            .get(url, None, None)
            .await?
            .ok_or_else(|| UpstreamError::Unreachable("unexpected 304".into()))?;
        let len = res.content_length();
        let body = futures_util::stream::unfold(Some(res), |res| async move {
            let mut res = res?;
            match res.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(res))),
                Ok(None) => None,
                // The error ends the stream; the store refuses what it had.
                Err(e) => Some((Err(format!("reading from the upstream failed: {e}")), None)),
            }
        });
        Ok((body, len))
    }
}
