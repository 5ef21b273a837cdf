//! The changes the database announces on `larder_reads` (the payloads of
//! migrations 0002 and 0004), as the memo (`memo.rs`) forgets by them.

use crate::cas::{ContentId, Digest};
use crate::index::{EntryKey, Protocol};

/// A change the database announced, read from a notification's payload
/// (the format is in migration 0002).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A blob was recorded or stopped being live.
    Blob(ContentId),
    /// A blob was recorded under another digest.
    Alias(Digest),
    /// A scope started or stopped seeing a blob.
    Link(ContentId, String),
    /// A name in a scope was set, moved or went.
    Name(String, String),
    /// An entry was written or removed.
    Entry(EntryKey),
}

impl Change {
    pub fn parse(payload: &str) -> Option<Change> {
        let kind = payload.get(..1)?;
        let rest = &payload[1..];
        match kind {
            "b" => Some(Change::Blob(blob_id(rest)?)),
            "a" => Some(Change::Alias(rest.parse().ok()?)),
            "l" => {
                let (id, scope) = (rest.get(..64)?, rest.get(64..)?);
                Some(Change::Link(blob_id(id)?, scope.to_string()))
            }
            "n" => {
                let (scope, name) = counted(rest)?;
                Some(Change::Name(scope.to_string(), name.to_string()))
            }
            "e" => {
                let (protocol, rest) = rest.split_once(':')?;
                let (namespace, name) = counted(rest)?;
                Some(Change::Entry(EntryKey {
                    protocol: Protocol::from_name(protocol)?,
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                }))
            }
            _ => None,
        }
    }
}

fn blob_id(hex_id: &str) -> Option<ContentId> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(ContentId(id))
}

/// `<n>:<first n bytes><rest>` split in two.
fn counted(s: &str) -> Option<(&str, &str)> {
    let (n, rest) = s.split_once(':')?;
    let n: usize = n.parse().ok()?;
    Some((rest.get(..n)?, rest.get(n..)?))
}
