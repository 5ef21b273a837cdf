//! A blob's record as the `blobs` tree keeps it: size, SHA-256, times, the
//! pins entries hold on it and the first scopes that may read it.

use super::codec::{Decoder, Encoder};
use super::pins::Pins;
use super::IndexError;

const BLOB_RECORD_V1: u8 = 1;
/// V2 appends the pins entries hold on the blob and the first scopes that
/// may read it (format-1 data dirs kept both in trees of their own).
const BLOB_RECORD_V2: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRecord {
    pub size: u64,
    pub sha256: [u8; 32],
    /// Unix milliseconds.
    pub created: u64,
    /// Unix milliseconds of the last write, HEAD or GET.
    pub touched: u64,
}

/// A blob record as the `blobs` tree keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StoredBlob {
    pub rec: BlobRecord,
    pub pins: Pins,
    /// Scopes that may read the blob, up to `names::INLINE_SCOPES`; any
    /// more are keys of the `links` tree.
    pub scopes: Vec<String>,
}

impl StoredBlob {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(BLOB_RECORD_V2, 64 + 48 * self.pins.0.len())
            .u64(self.rec.size)
            .bytes(&self.rec.sha256)
            .u64(self.rec.created)
            .u64(self.rec.touched)
            .u64(self.pins.0.len() as u64);
        for (ns, n) in &self.pins.0 {
            e = e.prefixed(ns.as_bytes()).u64(*n);
        }
        e = e.u64(self.scopes.len() as u64);
        for scope in &self.scopes {
            e = e.prefixed(scope.as_bytes());
        }
        e.finish()
    }

    pub fn decode(data: &[u8]) -> Result<StoredBlob, IndexError> {
        let (version, mut d) = Decoder::any_of(data, "blob", BLOB_RECORD_V1..=BLOB_RECORD_V2)?;
        let rec = BlobRecord {
            size: d.u64()?,
            sha256: d.array()?,
            created: d.u64()?,
            touched: d.u64()?,
        };
        let mut pins = Pins::default();
        let mut scopes = Vec::new();
        if version >= BLOB_RECORD_V2 {
            for _ in 0..d.u64()? {
                pins.0.push((d.string()?, d.u64()?));
            }
            for _ in 0..d.u64()? {
                scopes.push(d.string()?);
            }
        }
        d.end()?;
        Ok(StoredBlob { rec, pins, scopes })
    }

    /// The record as format-1 data dirs kept it, for upgrade tests.
    #[cfg(test)]
    pub fn encode_format_1(&self) -> Vec<u8> {
        Encoder::new(BLOB_RECORD_V1, 56)
            .u64(self.rec.size)
            .bytes(&self.rec.sha256)
            .u64(self.rec.created)
            .u64(self.rec.touched)
            .finish()
    }
}

/// A record with pins and scopes, for tests.
#[cfg(test)]
pub(super) fn sample() -> StoredBlob {
    StoredBlob {
        rec: BlobRecord {
            size: 42,
            sha256: [7; 32],
            created: 1,
            touched: 2,
        },
        pins: Pins(vec![("team-a".into(), 2), ("b".into(), 1)]),
        scopes: vec!["oci:team-a/app".into(), "gha:team-a".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_records_round_trip_and_refuse_unknown_versions() {
        let stored = sample();
        let bytes = stored.encode();
        assert_eq!(StoredBlob::decode(&bytes).unwrap(), stored);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(StoredBlob::decode(&future).is_err());
        assert!(StoredBlob::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(StoredBlob::decode(&bytes[..20]).is_err());
        assert!(StoredBlob::decode(&[]).is_err());
    }

    #[test]
    fn format_1_records_read_without_pins() {
        let stored = sample();
        let read = StoredBlob::decode(&stored.encode_format_1()).unwrap();
        assert_eq!(read.rec, stored.rec);
        assert_eq!(read.pins, Pins::default());
        assert!(read.scopes.is_empty());
    }
}
