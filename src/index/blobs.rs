//! Blob records (BLAKE3 → size, SHA-256, times) and digest aliases
//! (`sha256:`/`sha512:` → BLAKE3).

use crate::cas::{ContentId, Digest};

use super::codec::{Decoder, Encoder};
use super::{Index, IndexError};

const BLOB_RECORD_V1: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRecord {
    pub size: u64,
    pub sha256: [u8; 32],
    /// Unix milliseconds.
    pub created: u64,
    /// Unix milliseconds of the last write, HEAD or GET.
    pub touched: u64,
}

impl BlobRecord {
    fn encode(&self) -> Vec<u8> {
        Encoder::new(BLOB_RECORD_V1, 56)
            .u64(self.size)
            .bytes(&self.sha256)
            .u64(self.created)
            .u64(self.touched)
            .finish()
    }

    fn decode(data: &[u8]) -> Result<BlobRecord, IndexError> {
        let mut d = Decoder::new(data, "blob", BLOB_RECORD_V1)?;
        let rec = BlobRecord {
            size: d.u64()?,
            sha256: d.array()?,
            created: d.u64()?,
            touched: d.u64()?,
        };
        d.end()?;
        Ok(rec)
    }
}

/// Alias key: one algorithm tag byte, then the hash.
fn alias_key(digest: &Digest) -> Vec<u8> {
    let tag = match digest {
        Digest::Sha256(_) => 1u8,
        Digest::Sha512(_) => 2,
        Digest::Blake3(_) => 3,
    };
    let mut k = Vec::with_capacity(1 + digest.hash_bytes().len());
    k.push(tag);
    k.extend_from_slice(digest.hash_bytes());
    k
}

impl Index {
    pub fn blob(&self, id: &ContentId) -> Result<Option<BlobRecord>, IndexError> {
        match self.blobs.get(id.0)? {
            Some(v) => BlobRecord::decode(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Records a blob and its SHA-256 alias. Writing the record before the
    /// alias means a crash in between leaves at most an unreachable record,
    /// never an alias to nothing.
    pub fn put_blob(&self, id: &ContentId, rec: &BlobRecord) -> Result<(), IndexError> {
        if !self.pins.contains_key(id.0)? {
            // Unpinned from birth: GC may take it once the grace has passed.
            self.unpinned.insert(id.0, &rec.created.to_be_bytes())?;
        }
        self.blobs.insert(id.0, rec.encode())?;
        self.put_alias(&Digest::Sha256(rec.sha256), id)
    }

    /// Lets `digest` (e.g. a verified sha512) name blob `id`.
    pub fn put_alias(&self, digest: &Digest, id: &ContentId) -> Result<(), IndexError> {
        self.aliases.insert(alias_key(digest), &id.0)?;
        Ok(())
    }

    /// Resolves a client digest to the blob it names, if stored.
    pub fn resolve(&self, digest: &Digest) -> Result<Option<ContentId>, IndexError> {
        if let Digest::Blake3(h) = digest {
            return Ok(Some(ContentId(*h)));
        }
        Ok(self.aliases.get(alias_key(digest))?.and_then(|v| {
            let arr: [u8; 32] = v.as_ref().try_into().ok()?;
            Some(ContentId(arr))
        }))
    }

    /// Moves a blob's last-touched time forward (never back).
    pub fn touch_blob(&self, id: &ContentId, at: u64) -> Result<(), IndexError> {
        self.blobs.fetch_and_update(id.0, |old| {
            let old = old?;
            match BlobRecord::decode(old) {
                Ok(mut rec) if rec.touched < at => {
                    rec.touched = at;
                    Some(rec.encode())
                }
                _ => Some(old.to_vec()),
            }
        })?;
        Ok(())
    }

    pub fn remove_blob(&self, id: &ContentId) -> Result<Option<BlobRecord>, IndexError> {
        let Some(old) = self.blobs.remove(id.0)? else {
            return Ok(None);
        };
        let rec = BlobRecord::decode(&old)?;
        self.aliases
            .remove(alias_key(&Digest::Sha256(rec.sha256)))?;
        Ok(Some(rec))
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Every blob record, for recounts. Corrupt records are reported by id.
    pub fn all_blobs(
        &self,
    ) -> impl Iterator<Item = Result<(ContentId, BlobRecord), IndexError>> + '_ {
        self.blobs.iter().map(|kv| {
            let (k, v) = kv?;
            let id: [u8; 32] = k
                .as_ref()
                .try_into()
                .map_err(|_| IndexError::Corrupt("blob key is not 32 bytes".into()))?;
            Ok((ContentId(id), BlobRecord::decode(&v)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_records_round_trip_and_refuse_unknown_versions() {
        let rec = BlobRecord {
            size: 42,
            sha256: [7; 32],
            created: 1,
            touched: 2,
        };
        let bytes = rec.encode();
        assert_eq!(BlobRecord::decode(&bytes).unwrap(), rec);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(BlobRecord::decode(&future).is_err());
        assert!(BlobRecord::decode(&bytes[..20]).is_err());
        assert!(BlobRecord::decode(&[]).is_err());
    }
}
