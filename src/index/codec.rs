//! Explicit, versioned byte encodings of index records. Every value starts with
//! a one-byte record version; a record this build does not know decodes as an
//! error, never as a guess.

use super::IndexError;

/// Little-endian writer for fixed-layout records.
pub(crate) struct Encoder(Vec<u8>);

impl Encoder {
    pub fn new(version: u8, capacity: usize) -> Encoder {
        let mut v = Vec::with_capacity(capacity + 1);
        v.push(version);
        Encoder(v)
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }

    /// A length-prefixed byte string (u64 length), as `Decoder::bytes` reads it.
    pub fn prefixed(self, v: &[u8]) -> Self {
        self.u64(v.len() as u64).bytes(v)
    }

    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reader matching `Encoder`; every read is bounds-checked.
pub(crate) struct Decoder<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8], what: &'static str, version: u8) -> Result<Self, IndexError> {
        Self::any_of(data, what, version..=version).map(|(_, d)| d)
    }

    /// A decoder for a record kept in several versions; returns which one.
    pub fn any_of(
        data: &'a [u8],
        what: &'static str,
        versions: std::ops::RangeInclusive<u8>,
    ) -> Result<(u8, Self), IndexError> {
        match data.split_first() {
            Some((&v, rest)) if versions.contains(&v) => Ok((v, Decoder { rest, what })),
            Some((&v, _)) => Err(IndexError::Corrupt(format!(
                "{what} record has version {v}, this build reads {}",
                versions.end()
            ))),
            None => Err(IndexError::Corrupt(format!("{what} record is empty"))),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if self.rest.len() < n {
            return Err(IndexError::Corrupt(format!(
                "{} record is truncated",
                self.what
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u64(&mut self) -> Result<u64, IndexError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], IndexError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    /// A length-prefixed byte string (u64 length).
    pub fn bytes(&mut self) -> Result<&'a [u8], IndexError> {
        let n = self.u64()?;
        let n = usize::try_from(n)
            .map_err(|_| IndexError::Corrupt(format!("{} record length overflows", self.what)))?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, IndexError> {
        let what = self.what;
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| IndexError::Corrupt(format!("{what} record has a non-UTF-8 string")))
    }

    pub fn end(self) -> Result<(), IndexError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(IndexError::Corrupt(format!(
                "{} record has trailing bytes",
                self.what
            )))
        }
    }
}

/// A u64 stored big-endian (counters, times); malformed values read as 0.
pub(crate) fn decode_u64(v: &[u8]) -> u64 {
    <[u8; 8]>::try_from(v).map(u64::from_be_bytes).unwrap_or(0)
}
