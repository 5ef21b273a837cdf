//! The `Authorization` header sent to an upstream, from `token_*` (Bearer)
//! or `username` + `password_*` (Basic). Read once, when the proxy starts:
//! a missing file or variable stops the start rather than failing fetches.

use anyhow::{bail, Context};
use axum::http::HeaderValue;
use base64::Engine as _;

use crate::config::UpstreamConfig;

pub fn authorization(c: &UpstreamConfig) -> anyhow::Result<Option<HeaderValue>> {
    let secret = |file: &Option<std::path::PathBuf>,
                  env: &Option<String>|
     -> anyhow::Result<Option<String>> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading upstream credentials from {}", path.display()))?;
            return Ok(Some(text.trim().to_owned()));
        }
        if let Some(var) = env {
            let text = std::env::var(var).with_context(|| {
                format!("upstream credentials: environment variable {var} is not set")
            })?;
            return Ok(Some(text.trim().to_owned()));
        }
        Ok(None)
    };
    let value = if let Some(token) = secret(&c.token_file, &c.token_env)? {
        format!("Bearer {token}")
    } else if let Some(user) = &c.username {
        let Some(password) = secret(&c.password_file, &c.password_env)? else {
            bail!("upstream username {user:?} has no password_file or password_env");
        };
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {pair}")
    } else {
        return Ok(None);
    };
    let mut header = HeaderValue::from_str(&value)
        .context("upstream credentials hold characters a header cannot")?;
    header.set_sensitive(true);
    Ok(Some(header))
}
