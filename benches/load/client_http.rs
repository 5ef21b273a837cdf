//! The HTTP-cache requests Bazel's remote cache sends (`--remote_cache=
//! http://…`), each verified as Bazel relies on it: a PUT answers 2xx, a hit
//! returns every byte stored, a miss is a 404.

use anyhow::bail;
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, StatusCode};

use crate::client::{drain, expect_body, expect_status, Sample, Target};

/// The namespace (Larder) and top directory (nginx) every key lives under.
pub const NAMESPACE: &str = "bench";

impl Target {
    fn cache_url(&self, key: &str) -> String {
        format!("{}/cache/{NAMESPACE}/{key}", self.base)
    }

    /// PUT a value. Larder answers 201 for a new key and 204 for a replaced
    /// one, as nginx's WebDAV module does.
    pub async fn cache_put(&self, key: &str, data: &bytes::Bytes) -> anyhow::Result<Sample> {
        let url = self.cache_url(key);
        let res = self
            .request(Method::PUT, &url)
            .header(CONTENT_LENGTH, data.len())
            .body(data.clone())
            .send()
            .await?;
        if !matches!(res.status(), StatusCode::CREATED | StatusCode::NO_CONTENT) {
            bail!("PUT {url}: status {}, want 201 or 204", res.status());
        }
        drain(res).await?;
        Ok(Sample {
            bytes: data.len() as u64,
            first_step: None,
        })
    }

    /// GET a stored value and compare it with what was PUT.
    pub async fn cache_get(&self, key: &str, data: &[u8]) -> anyhow::Result<Sample> {
        let res = self
            .request(Method::GET, &self.cache_url(key))
            .send()
            .await?;
        expect_status(&res, StatusCode::OK, "GET hit")?;
        let bytes = expect_body(res, data, "GET hit").await?;
        Ok(Sample {
            bytes,
            first_step: None,
        })
    }

    /// GET a key never stored.
    pub async fn cache_miss(&self, key: &str) -> anyhow::Result<Sample> {
        let res = self
            .request(Method::GET, &self.cache_url(key))
            .send()
            .await?;
        expect_status(&res, StatusCode::NOT_FOUND, "GET miss")?;
        drain(res).await?;
        Ok(Sample {
            bytes: 0,
            first_step: None,
        })
    }
}
