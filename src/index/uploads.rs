//! Upload sessions: an in-progress write whose bytes accumulate in a file of
//! the data dir's `uploads/`. The record says which scope (repository) owns
//! the session and when it was last written, for expiry.

use super::codec::{Decoder, Encoder};
use super::{Index, IndexError};

const UPLOAD_RECORD_V1: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    pub scope: String,
    pub created: u64,
    pub updated: u64,
}

impl UploadRecord {
    fn encode(&self) -> Vec<u8> {
        Encoder::new(UPLOAD_RECORD_V1, 24 + self.scope.len())
            .u64(self.created)
            .u64(self.updated)
            .u64(self.scope.len() as u64)
            .bytes(self.scope.as_bytes())
            .finish()
    }

    fn decode(data: &[u8]) -> Result<UploadRecord, IndexError> {
        let mut d = Decoder::new(data, "upload", UPLOAD_RECORD_V1)?;
        let created = d.u64()?;
        let updated = d.u64()?;
        let scope = d.string()?;
        d.end()?;
        Ok(UploadRecord {
            scope,
            created,
            updated,
        })
    }
}

impl Index {
    pub fn put_upload(&self, id: &str, rec: &UploadRecord) -> Result<(), IndexError> {
        self.t().uploads.insert(id.as_bytes(), rec.encode())?;
        Ok(())
    }

    pub fn upload(&self, id: &str) -> Result<Option<UploadRecord>, IndexError> {
        match self.t().uploads.get(id.as_bytes())? {
            Some(v) => UploadRecord::decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn remove_upload(&self, id: &str) -> Result<bool, IndexError> {
        Ok(self.t().uploads.remove(id.as_bytes())?.is_some())
    }

    /// Every upload session (id, record); there are few at any time.
    pub fn uploads(&self) -> Result<Vec<(String, UploadRecord)>, IndexError> {
        self.t()
            .uploads
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    UploadRecord::decode(&v)?,
                ))
            })
            .collect()
    }
}
