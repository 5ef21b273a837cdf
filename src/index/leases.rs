//! Leases taken by reading an entry: blob → the Unix millisecond its lease
//! ends. The cache keeps them in memory and writes them here in batches, so a
//! restart does not forget that a client is still fetching what it resolved.

use super::codec::decode_u64;
use super::{Index, IndexError};
use crate::cas::ContentId;

impl Index {
    /// Records leases (blob, until) and drops the ones in `ended`, in one batch.
    pub fn store_leases(
        &self,
        held: &[(ContentId, u64)],
        ended: &[ContentId],
    ) -> Result<(), IndexError> {
        if held.is_empty() && ended.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (id, until) in held {
            batch.insert(&id.0, &until.to_be_bytes());
        }
        for id in ended {
            batch.remove(&id.0);
        }
        self.t().leases.apply_batch(batch)?;
        Ok(())
    }

    /// Every recorded lease, ended or not.
    pub fn leases(&self) -> Result<Vec<(ContentId, u64)>, IndexError> {
        self.t()
            .leases
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let id = <[u8; 32]>::try_from(k.as_ref())
                    .map_err(|_| IndexError::Corrupt("lease key is not 32 bytes".into()))?;
                Ok((ContentId(id), decode_u64(&v)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_stored_replaced_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let (a, b) = (ContentId([1; 32]), ContentId([2; 32]));
        index.store_leases(&[(a, 10), (b, 20)], &[]).unwrap();
        index.store_leases(&[(a, 30)], &[b]).unwrap();
        assert_eq!(index.leases().unwrap(), vec![(a, 30)]);
    }
}
