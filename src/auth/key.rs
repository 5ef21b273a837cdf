//! The server's signing key: a file of 32 random bytes (hex), generated with
//! mode 0600 on first use. `larder token create` reads the same file, so
//! tokens can be minted offline.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

pub const KEY_FILE: &str = "signing.key";

/// Where the key lives: `auth.signing_key_file`, or `signing.key` in the data dir.
pub fn key_path(config: &Config) -> PathBuf {
    match &config.auth.signing_key_file {
        Some(p) => p.clone(),
        None => config.storage.data_dir.join(KEY_FILE),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key {0} is not at least 32 bytes of hex")]
    Invalid(PathBuf),
}

/// Reads the key, generating it first if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = hex::decode(text.trim()).map_err(|_| KeyError::Invalid(path.to_owned()))?;
            if key.len() < 32 {
                return Err(KeyError::Invalid(path.to_owned()));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let key: [u8; 32] = rand::random();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            writeln!(f, "{}", hex::encode(key)).map_err(io)?;
            f.sync_all().map_err(io)?;
            tracing::info!(path = %path.display(), "generated a new signing key");
            Ok(key.to_vec())
        }
        Err(e) => Err(io(e)),
    }
}
