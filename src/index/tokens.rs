//! Token bookkeeping: revoked token ids, and metadata of tokens minted
//! through the admin API (never the token itself).

use super::{Index, IndexError};

impl Index {
    /// Revokes a token id. `until` (unix seconds) is when it would have
    /// expired anyway.
    pub fn revoke(&self, jti: &str, until: u64) -> Result<(), IndexError> {
        self.t()
            .revoked
            .insert(jti.as_bytes(), &until.to_be_bytes())?;
        Ok(())
    }

    pub fn is_revoked(&self, jti: &str) -> Result<bool, IndexError> {
        Ok(self.t().revoked.contains_key(jti.as_bytes())?)
    }

    /// Stores a minted token's metadata (JSON) under its id.
    pub fn put_token_meta(&self, jti: &str, meta: &[u8]) -> Result<(), IndexError> {
        self.t().tokens.insert(jti.as_bytes(), meta)?;
        Ok(())
    }

    pub fn token_meta(&self, jti: &str) -> Result<Option<Vec<u8>>, IndexError> {
        Ok(self.t().tokens.get(jti.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Every recorded token's metadata, by id.
    pub fn token_metas(&self) -> Result<Vec<(String, Vec<u8>)>, IndexError> {
        self.t()
            .tokens
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }
}
