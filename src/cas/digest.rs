//! Content identifiers: the BLAKE3 `ContentId` Larder files blobs under, and the
//! `algorithm:hex` digests clients name content by (OCI, Bazel).

use std::fmt;
use std::str::FromStr;

/// The BLAKE3 hash of a blob's bytes: its identity and its file name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    pub fn to_hex(&self) -> String {
        // `hex::encode` collects chars one by one; this is on every hit.
        let mut buf = [0u8; 64];
        match hex::encode_to_slice(self.0, &mut buf) {
            Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
            Err(_) => hex::encode(self.0),
        }
    }

    pub fn from_hex(s: &str) -> Option<ContentId> {
        decode_lower_hex::<32>(s).map(ContentId)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blake3:{}", self.to_hex())
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A digest as clients write it. Only lowercase hex is accepted, as the OCI
/// spec requires, so one piece of content has exactly one spelling.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Digest {
    Sha256([u8; 32]),
    Sha512(Box<[u8; 64]>),
    Blake3([u8; 32]),
}

impl Digest {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Digest::Sha256(_) => "sha256",
            Digest::Sha512(_) => "sha512",
            Digest::Blake3(_) => "blake3",
        }
    }

    pub fn hash_bytes(&self) -> &[u8] {
        match self {
            Digest::Sha256(h) | Digest::Blake3(h) => h,
            Digest::Sha512(h) => &h[..],
        }
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hash_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} has no `algorithm:` prefix")]
    NoAlgorithm(String),
    #[error("digest algorithm {0:?} is not supported (use sha256, sha512 or blake3)")]
    UnsupportedAlgorithm(String),
    #[error("digest {0:?} is not {1} lowercase hex characters")]
    BadHex(String, usize),
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::NoAlgorithm(s.to_owned()))?;
        let bad = |n| DigestError::BadHex(s.to_owned(), n);
        match algorithm {
            "sha256" => decode_lower_hex::<32>(hex)
                .map(Digest::Sha256)
                .ok_or(bad(64)),
            "blake3" => decode_lower_hex::<32>(hex)
                .map(Digest::Blake3)
                .ok_or(bad(64)),
            "sha512" => decode_lower_hex::<64>(hex)
                .map(|h| Digest::Sha512(Box::new(h)))
                .ok_or(bad(128)),
            other => Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

fn decode_lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_and_print_back() {
        let s = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(s.parse::<Digest>().unwrap().to_string(), s);
        let s = format!("sha512:{}", "0f".repeat(64));
        assert_eq!(s.parse::<Digest>().unwrap().to_string(), s);
    }

    #[test]
    fn malformed_digests_are_refused() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "md5:abcd",
            &format!("sha256:{}", "AB".repeat(32)),
            &format!("sha256:{}", "ab".repeat(31)),
            &format!("sha256:{}", "zz".repeat(32)),
            &format!("sha512:{}", "ab".repeat(32)),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} parsed");
        }
    }
}
