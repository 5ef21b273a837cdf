//! Upload sessions: an in-progress write whose bytes accumulate in a file of
//! the data dir's `uploads/`. The record says which scope (repository) owns
//! the session and when it was last written, for expiry.

use super::codec::{Decoder, Encoder};
use super::{Index, IndexError};

const UPLOAD_RECORD_V1: u8 = 1;
/// V1 and the size its client declared up front.
const UPLOAD_RECORD_V2: u8 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    pub scope: String,
    pub created: u64,
    pub updated: u64,
    /// The size the client declared the finished upload will have (an
    /// Actions cache reservation's `cacheSize`): no chunk may end past it.
    pub size: Option<u64>,
}

impl UploadRecord {
    fn encode(&self) -> Vec<u8> {
        // V1 when there is no size, so that a build reading only V1 still
        // reads every session but those with a declared size.
        let version = match self.size {
            Some(_) => UPLOAD_RECORD_V2,
            None => UPLOAD_RECORD_V1,
        };
        let e = Encoder::new(version, 32 + self.scope.len())
            .u64(self.created)
            .u64(self.updated)
            .u64(self.scope.len() as u64)
            .bytes(self.scope.as_bytes());
        match self.size {
            Some(size) => e.u64(size).finish(),
            None => e.finish(),
        }
    }

    fn decode(data: &[u8]) -> Result<UploadRecord, IndexError> {
        let (version, mut d) =
            Decoder::any_of(data, "upload", UPLOAD_RECORD_V1..=UPLOAD_RECORD_V2)?;
        let created = d.u64()?;
        let updated = d.u64()?;
        let scope = d.string()?;
        let size = match version {
            UPLOAD_RECORD_V2 => Some(d.u64()?),
            _ => None,
        };
        d.end()?;
        Ok(UploadRecord {
            scope,
            created,
            updated,
            size,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_and_without_a_declared_size() {
        for size in [None, Some(0), Some(1 << 40)] {
            let rec = UploadRecord {
                scope: "gha:[\"team\",\"v\",\"k\"]".into(),
                created: 1,
                updated: 2,
                size,
            };
            let bytes = rec.encode();
            let want = if size.is_some() { 2 } else { 1 };
            assert_eq!(bytes[0], want, "{size:?}");
            assert_eq!(UploadRecord::decode(&bytes).unwrap(), rec);
        }
        let mut bytes = UploadRecord {
            scope: "s".into(),
            created: 1,
            updated: 2,
            size: Some(3),
        }
        .encode();
        bytes.pop();
        assert!(UploadRecord::decode(&bytes).is_err(), "truncated size");
    }
}
