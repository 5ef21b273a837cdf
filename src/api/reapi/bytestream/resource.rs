//! ByteStream resource names: `[{instance}/]blobs/{hash}/{size}` and
//! `[{instance}/]compressed-blobs/{compressor}/{hash}/{size}` to read,
//! the same after `[{instance}/]uploads/{uuid}/` to write (with optional
//! metadata after the size, which is ignored). REAPI forbids those words as
//! segments of an instance name, so the first one found starts the rest.

use tonic::Status;

use super::super::context::parse_digest;
use super::super::gen::build::bazel::remote::execution::v2::Digest;
use crate::api::httpcache::action_result::Needed;

/// How a resource's bytes travel: as they are, or zstd-compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Zstd,
}

/// The longest upload uuid accepted: REAPI's are 36-character UUIDs; any
/// client string only ever feeds a hash, but need not be unbounded.
const MAX_UUID: usize = 128;

pub struct Resource {
    pub instance: String,
    /// The client's upload name (writes only).
    pub uuid: Option<String>,
    pub encoding: Encoding,
    pub blob: Needed,
}

fn bad(name: &str) -> Status {
    Status::invalid_argument(format!("bad resource name {name:?}"))
}

/// A resource to read.
pub fn read(name: &str) -> Result<Resource, Status> {
    let parts: Vec<&str> = name.split('/').collect();
    let at = parts
        .iter()
        .position(|p| *p == "blobs" || *p == "compressed-blobs")
        .ok_or_else(|| bad(name))?;
    blob(name, &parts, at, None)
}

/// A resource to write.
pub fn write(name: &str) -> Result<Resource, Status> {
    let parts: Vec<&str> = name.split('/').collect();
    let at = parts
        .iter()
        .position(|p| *p == "uploads")
        .ok_or_else(|| bad(name))?;
    let uuid = parts
        .get(at + 1)
        .filter(|u| !u.is_empty() && u.len() <= MAX_UUID)
        .ok_or_else(|| bad(name))?;
    let mut r = blob(name, &parts, at + 2, Some((*uuid).to_owned()))?;
    r.instance = parts[..at].join("/");
    Ok(r)
}

/// `blobs/{hash}/{size}` or `compressed-blobs/{compressor}/{hash}/{size}`
/// at `parts[at..]`.
fn blob(name: &str, parts: &[&str], at: usize, uuid: Option<String>) -> Result<Resource, Status> {
    let (encoding, hash_at) = match parts.get(at) {
        Some(&"blobs") => (Encoding::Identity, at + 1),
        Some(&"compressed-blobs") => {
            let compressor = parts.get(at + 1).ok_or_else(|| bad(name))?;
            if *compressor != "zstd" {
                return Err(Status::invalid_argument(format!(
                    "compressor {compressor:?} is not supported: zstd is"
                )));
            }
            (Encoding::Zstd, at + 2)
        }
        _ => return Err(bad(name)),
    };
    let hash = parts.get(hash_at).ok_or_else(|| bad(name))?;
    let size: i64 = parts
        .get(hash_at + 1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(name))?;
    let d = Digest {
        hash: (*hash).to_owned(),
        size_bytes: size,
    };
    Ok(Resource {
        instance: parts[..at].join("/"),
        uuid,
        encoding,
        blob: parse_digest(Some(&d))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn names_parse_with_and_without_instance_and_compression() {
        let r = read(&format!("a/b/compressed-blobs/zstd/{H}/7")).unwrap();
        assert_eq!((r.instance.as_str(), r.encoding), ("a/b", Encoding::Zstd));
        assert_eq!(r.blob.size, 7);
        let r = read(&format!("blobs/{H}/0")).unwrap();
        assert_eq!((r.instance.as_str(), r.encoding), ("", Encoding::Identity));
        let r = write(&format!("ns/uploads/u-1/compressed-blobs/zstd/{H}/3/meta")).unwrap();
        assert_eq!(r.instance, "ns");
        assert_eq!(r.uuid.as_deref(), Some("u-1"));
        assert_eq!(r.encoding, Encoding::Zstd);
        let r = write(&format!("uploads/u/blobs/{H}/3")).unwrap();
        assert_eq!((r.instance.as_str(), r.encoding), ("", Encoding::Identity));
    }

    #[test]
    fn unsupported_compressors_and_broken_names_are_invalid() {
        for name in [
            format!("ns/compressed-blobs/deflate/{H}/3"),
            format!("ns/compressed-blobs/identity/{H}/3"),
            "ns/compressed-blobs/zstd".to_owned(),
            format!("ns/uploads//blobs/{H}/3"),
            format!("ns/uploads/u/other/{H}/3"),
            format!("ns/uploads/u/blobs/{H}"),
        ] {
            let r = read(&name).err().or_else(|| write(&name).err());
            let e = r.expect(&name);
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{name}");
        }
        assert!(write(&format!("ns/uploads/u/compressed-blobs/br/{H}/3")).is_err());
    }
}
