//! The records of the entries tree and its key tree: what an entry is, and
//! its stored form.

use super::blob_record::BlobRecord;
use super::codec::{Decoder, Encoder};
use super::IndexError;
use crate::cas::{ContentId, Digest};

const ENTRY_RECORD_V1: u8 = 1;

/// Which protocol owns an entry; stored as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Protocol {
    Oci = 1,
    Gha = 2,
    Http = 3,
    Turbo = 4,
    Nx = 5,
    /// Pull-through proxies: packages and metadata fetched from upstream.
    Npm = 6,
    Pypi = 7,
    Go = 8,
}

impl Protocol {
    pub const ALL: [Protocol; 8] = [
        Protocol::Oci,
        Protocol::Gha,
        Protocol::Http,
        Protocol::Turbo,
        Protocol::Nx,
        Protocol::Npm,
        Protocol::Pypi,
        Protocol::Go,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Oci => "oci",
            Protocol::Gha => "gha",
            Protocol::Http => "http",
            Protocol::Turbo => "turbo",
            Protocol::Nx => "nx",
            Protocol::Npm => "npm",
            Protocol::Pypi => "pypi",
            Protocol::Go => "go",
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }

    pub(super) fn from_byte(b: u8) -> Result<Protocol, IndexError> {
        Protocol::ALL
            .into_iter()
            .find(|p| *p as u8 == b)
            .ok_or_else(|| IndexError::Corrupt(format!("unknown protocol byte {b}")))
    }
}

/// The lookup key of an entry: unique per protocol and namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntryKey {
    pub protocol: Protocol,
    pub namespace: String,
    pub name: String,
}

impl EntryKey {
    pub(super) fn decode(raw: &[u8]) -> Result<EntryKey, IndexError> {
        let bad = || IndexError::Corrupt("malformed entry key".into());
        let (&proto, rest) = raw.split_first().ok_or_else(bad)?;
        let split = rest.iter().position(|b| *b == 0).ok_or_else(bad)?;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad());
        Ok(EntryKey {
            protocol: Protocol::from_byte(proto)?,
            namespace: text(&rest[..split])?,
            name: text(&rest[split + 1..])?,
        })
    }

    /// Prefix under which the `parents` tree lists who needs this entry.
    pub(super) fn parents_prefix(&self) -> Vec<u8> {
        let k = self.encode();
        let mut p = Vec::with_capacity(k.len() + 16);
        p.extend_from_slice(&(k.len() as u64).to_be_bytes());
        p.extend_from_slice(&k);
        p
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(2 + self.namespace.len() + self.name.len());
        k.push(self.protocol as u8);
        k.extend_from_slice(self.namespace.as_bytes());
        k.push(0);
        k.extend_from_slice(self.name.as_bytes());
        k
    }
}

/// What a write stores in the same transaction as its entry.
#[derive(Clone, Debug, Default)]
pub struct EntryWith<'a> {
    /// A record for the entry's content blob, stored unless it has one.
    pub content: Option<BlobRecord>,
    /// Another digest naming the content (a verified sha512).
    pub alias: Option<&'a Digest>,
    /// A name (scope, name) to point at the entry, as `set_name` does.
    pub name: Option<(&'a str, &'a str)>,
    /// A scope the content becomes readable in, as `link` does.
    pub link: Option<&'a str>,
}

/// What a protocol asks to store.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub key: EntryKey,
    /// The entry's own bytes (a manifest, an archive, a cached value).
    pub content: ContentId,
    /// Bytes of everything pinned, for listings.
    pub size: u64,
    /// Every blob the entry needs, including `content`.
    pub pins: Vec<ContentId>,
    /// Protocol-owned data (media type, headers, …), opaque here.
    pub meta: Vec<u8>,
    /// Entries this one needs (an index's child manifests). A child is not
    /// evicted while a parent exists; removing a child removes its parents.
    pub children: Vec<EntryKey>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    pub id: u64,
    pub key: EntryKey,
    pub content: ContentId,
    pub size: u64,
    pub created: u64,
    pub last_used: u64,
    pub pins: Vec<ContentId>,
    pub meta: Vec<u8>,
    pub children: Vec<EntryKey>,
}

impl EntryRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        let ns = self.key.namespace.as_bytes();
        let name = self.key.name.as_bytes();
        let mut e = Encoder::new(
            ENTRY_RECORD_V1,
            64 + ns.len() + name.len() + 32 * self.pins.len(),
        )
        .bytes(&[self.key.protocol as u8])
        .u64(self.created)
        .u64(self.last_used)
        .u64(self.size)
        .bytes(&self.content.0)
        .u64(ns.len() as u64)
        .bytes(ns)
        .u64(name.len() as u64)
        .bytes(name)
        .u64(self.pins.len() as u64);
        for p in &self.pins {
            e = e.bytes(&p.0);
        }
        e = e.u64(self.meta.len() as u64).bytes(&self.meta);
        e = e.u64(self.children.len() as u64);
        for c in &self.children {
            let k = c.encode();
            e = e.u64(k.len() as u64).bytes(&k);
        }
        e.finish()
    }

    pub(super) fn decode(id: u64, data: &[u8]) -> Result<EntryRecord, IndexError> {
        let mut d = Decoder::new(data, "entry", ENTRY_RECORD_V1)?;
        let protocol = Protocol::from_byte(d.array::<1>()?[0])?;
        let created = d.u64()?;
        let last_used = d.u64()?;
        let size = d.u64()?;
        let content = ContentId(d.array()?);
        let namespace = d.string()?;
        let name = d.string()?;
        let n = d.u64()?;
        let mut pins = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            pins.push(ContentId(d.array()?));
        }
        let meta = d.bytes()?.to_vec();
        let n = d.u64()?;
        let mut children = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            children.push(EntryKey::decode(d.bytes()?)?);
        }
        d.end()?;
        Ok(EntryRecord {
            id,
            key: EntryKey {
                protocol,
                namespace,
                name,
            },
            content,
            size,
            created,
            last_used,
            pins,
            meta,
            children,
        })
    }
}
