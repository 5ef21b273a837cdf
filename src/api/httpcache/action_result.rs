//! Bazel's action cache values: a REAPI `ActionResult` (protobuf) names the
//! CAS blobs a hit will make Bazel fetch: output files, output directories'
//! `Tree` messages (and the files in them), stdout and stderr. Larder pins
//! them with the `ac/` entry and serves an entry with a missing blob as a
//! miss, as bazel-remote validates its AC for the same reason: a hit whose
//! outputs are gone fails the build or makes Bazel re-run the action.
//!
//! Only the fields that name digests are declared; prost skips the rest.
//! Values that are not ActionResults (ccache's `bazel` layout stores its own
//! bytes under `ac/`) stay opaque: see `digests`.

use prost::Message;

use crate::cas::Digest;

/// The largest `ac/` value (or output `Tree`) read into memory to look for
/// digests. Bazel's are a few KB; larger values are stored opaque.
pub const MAX_PARSED: u64 = 16 << 20;

/// The meta of an `ac/` entry whose value was parsed when it was stored:
/// the blobs it names are pinned with it (or it is no action result), so a
/// hit needs no second look. Entries of older versions carry none.
pub const CHECKED: &[u8] = b"ac-checked";

#[derive(Clone, PartialEq, Message)]
struct ProtoDigest {
    #[prost(string, tag = "1")]
    hash: String,
    #[prost(int64, tag = "2")]
    size_bytes: i64,
}

#[derive(Clone, PartialEq, Message)]
struct OutputFile {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(message, optional, tag = "2")]
    digest: Option<ProtoDigest>,
}

#[derive(Clone, PartialEq, Message)]
struct OutputDirectory {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(message, optional, tag = "3")]
    tree_digest: Option<ProtoDigest>,
}

#[derive(Clone, PartialEq, Message)]
struct ActionResult {
    #[prost(message, repeated, tag = "2")]
    output_files: Vec<OutputFile>,
    #[prost(message, repeated, tag = "3")]
    output_directories: Vec<OutputDirectory>,
    #[prost(int32, tag = "4")]
    exit_code: i32,
    #[prost(message, optional, tag = "6")]
    stdout_digest: Option<ProtoDigest>,
    #[prost(message, optional, tag = "8")]
    stderr_digest: Option<ProtoDigest>,
}

#[derive(Clone, PartialEq, Message)]
struct FileNode {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    digest: Option<ProtoDigest>,
}

#[derive(Clone, PartialEq, Message)]
struct Directory {
    #[prost(message, repeated, tag = "1")]
    files: Vec<FileNode>,
}

#[derive(Clone, PartialEq, Message)]
struct Tree {
    #[prost(message, optional, tag = "1")]
    root: Option<Directory>,
    #[prost(message, repeated, tag = "2")]
    children: Vec<Directory>,
}

/// A blob an action result needs: its SHA-256 and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Needed {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl Needed {
    pub fn digest(&self) -> Digest {
        Digest::Sha256(self.sha256)
    }
}

/// A digest as REAPI writes it: 64 lowercase hex digits and a size. `None`
/// for anything else, which makes the whole value opaque.
fn needed(d: &ProtoDigest) -> Option<Needed> {
    sha256_digest(&d.hash, d.size_bytes)
}

/// A REAPI digest's hash and size, if they are 64 lowercase hex digits and
/// a size that is not negative.
pub fn sha256_digest(hash: &str, size_bytes: i64) -> Option<Needed> {
    let size = u64::try_from(size_bytes).ok()?;
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(hash, &mut sha256).ok()?;
    Some(Needed { sha256, size })
}

/// What an action result names, if `value` is one.
pub struct Parsed {
    /// Output files, stdout and stderr: present in the CAS or the hit is broken.
    pub blobs: Vec<Needed>,
    /// Output directories' `Tree` messages, whose files are needed too.
    pub trees: Vec<Needed>,
}

/// Parses an `ac/` value. `None` when it is not an ActionResult that names
/// at least one blob: such values are stored and served as plain bytes.
/// Empty blobs are left out: Bazel never uploads them and never asks.
pub fn parse(value: &[u8]) -> Option<Parsed> {
    let ar = ActionResult::decode(value).ok()?;
    let files = ar.output_files.iter().map(|f| f.digest.as_ref());
    let std = [ar.stdout_digest.as_ref(), ar.stderr_digest.as_ref()];
    let mut blobs = Vec::new();
    for d in files.chain(std).flatten() {
        blobs.push(needed(d)?);
    }
    let mut trees = Vec::new();
    for d in ar
        .output_directories
        .iter()
        .filter_map(|d| d.tree_digest.as_ref())
    {
        trees.push(needed(d)?);
    }
    if blobs.is_empty() && trees.is_empty() {
        return None;
    }
    // A real result names its outputs by path; random bytes that happen to
    // decode rarely do.
    let named = ar.output_files.iter().all(|f| !f.path.is_empty())
        && ar.output_directories.iter().all(|d| !d.path.is_empty());
    if !named {
        return None;
    }
    blobs.retain(|n| n.size > 0);
    trees.retain(|n| n.size > 0);
    Some(Parsed { blobs, trees })
}

/// The files a `Tree` message names. `None` if it does not parse.
pub fn tree_files(tree: &[u8]) -> Option<Vec<Needed>> {
    let tree = Tree::decode(tree).ok()?;
    let mut out = Vec::new();
    for dir in tree.root.iter().chain(&tree.children) {
        for f in &dir.files {
            if let Some(d) = &f.digest {
                out.push(needed(d)?);
            }
        }
    }
    out.retain(|n| n.size > 0);
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    pub fn digest_of(bytes: &[u8]) -> (String, i64) {
        (hex::encode(Sha256::digest(bytes)), bytes.len() as i64)
    }

    fn proto((hash, size_bytes): (String, i64)) -> Option<ProtoDigest> {
        Some(ProtoDigest { hash, size_bytes })
    }

    #[test]
    fn an_action_result_names_its_outputs_trees_and_streams() {
        let ar = ActionResult {
            output_files: vec![OutputFile {
                path: "out.txt".into(),
                digest: proto(digest_of(b"out")),
            }],
            output_directories: vec![OutputDirectory {
                path: "dir".into(),
                tree_digest: proto(digest_of(b"tree")),
            }],
            exit_code: 0,
            stdout_digest: proto(digest_of(b"stdout")),
            stderr_digest: proto(digest_of(b"")),
        };
        let parsed = parse(&ar.encode_to_vec()).expect("an ActionResult");
        assert_eq!(parsed.blobs.len(), 2, "the empty stderr is left out");
        assert_eq!(parsed.trees.len(), 1);
        assert_eq!(parsed.blobs[0].size, 3);

        let tree = Tree {
            root: Some(Directory {
                files: vec![FileNode {
                    name: "a".into(),
                    digest: proto(digest_of(b"a")),
                }],
            }),
            children: vec![Directory {
                files: vec![FileNode {
                    name: "b".into(),
                    digest: proto(digest_of(b"bb")),
                }],
            }],
        };
        let files = tree_files(&tree.encode_to_vec()).unwrap();
        assert_eq!(files.iter().map(|f| f.size).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn other_bytes_stay_opaque() {
        for value in [
            &b""[..],
            b"not a protobuf at all, just ccache's bytes \x00\x01\xff",
            b"cCrS\x00\x00\x00\x01",
        ] {
            assert!(parse(value).is_none(), "{value:?}");
        }
        let bad_hash = ActionResult {
            output_files: vec![OutputFile {
                path: "x".into(),
                digest: proto(("ABCD".into(), 1)),
            }],
            ..Default::default()
        };
        assert!(parse(&bad_hash.encode_to_vec()).is_none());
        let no_outputs = ActionResult {
            exit_code: 1,
            ..Default::default()
        };
        assert!(parse(&no_outputs.encode_to_vec()).is_none());
    }
}
