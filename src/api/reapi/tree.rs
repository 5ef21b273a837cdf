//! `GetTree`: every `Directory` of a tree, breadth-first from its root,
//! streamed in pages. A page token is the walk's position, so a client that
//! lost the stream resumes with a new call instead of a server-side cursor:
//! the walk is deterministic for the same CAS, and a resumed call re-reads
//! the directories before the position without sending them.
//!
//! As the proto says, a subtree missing from the CAS is left out and only a
//! missing root is NOT_FOUND; a blob that does not parse as a `Directory` is
//! treated as missing. Each directory is sent once however often the tree
//! names it, and a tree larger than `MAX_DIRS` directories or `MAX_BYTES` of
//! them ends its stream with RESOURCE_EXHAUSTED: bounded work per call.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;

use futures_util::Stream;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::context::{authorize, check_digest_function, parse_digest, read_blob};
use super::gen::build::bazel::remote::execution::v2::{Directory, GetTreeRequest, GetTreeResponse};
use super::MAX_BATCH;
use crate::api::httpcache::action_result::Needed;
use crate::api::AppState;
use crate::auth::READ;

/// The most distinct directories one call walks (skipped ones included).
/// Bazel's largest output trees hold a few thousand.
pub const MAX_DIRS: u64 = 100_000;

/// The most directory bytes one call reads.
pub const MAX_BYTES: u64 = 256 << 20;

/// Directories per page when the client sets no `page_size`.
const DEFAULT_PAGE: usize = 1_000;

/// Directory bytes per page: with framing, a page stays well under the
/// 4 MiB a gRPC client accepts by default. A larger directory goes alone.
const PAGE_BYTES: u64 = (MAX_BATCH / 2) as u64;

/// A directory larger than one message could carry is no Directory here.
const MAX_DIR: u64 = MAX_BATCH as u64 - (64 << 10);

pub type Pages = Pin<Box<dyn Stream<Item = Result<GetTreeResponse, Status>> + Send>>;

/// Serves one `GetTree` call: checks the caller, the root and the token up
/// front, so that those errors are the call's status, then streams pages.
pub async fn get_tree(
    state: &AppState,
    metadata: &MetadataMap,
    req: GetTreeRequest,
) -> Result<Pages, Status> {
    let (ns, _) = authorize(state, metadata, &req.instance_name, READ)?;
    check_digest_function(req.digest_function)?;
    let root = parse_digest(req.root_digest.as_ref())?;
    let page = match usize::try_from(req.page_size) {
        Ok(0) => DEFAULT_PAGE,
        Ok(n) => n.min(DEFAULT_PAGE),
        Err(_) => return Err(Status::invalid_argument("page_size is negative")),
    };
    let skip = if req.page_token.is_empty() {
        0
    } else {
        token::decode(&req.page_token, &root)?
    };
    let mut walk = Walk {
        state: state.clone(),
        ns,
        root,
        queue: VecDeque::new(),
        seen: HashSet::from([root]),
        first: None,
        position: 0,
        skip,
        page,
        bytes: 0,
        done: false,
    };
    let Some(dir) = walk.read(&root).await? else {
        return Err(Status::not_found("the root directory is not in the CAS"));
    };
    walk.first = Some(dir);
    let pages = futures_util::stream::unfold(walk, |mut walk| async move {
        let page = walk.next_page().await?;
        Some((page, walk))
    });
    Ok(Box::pin(pages))
}

struct Walk {
    state: AppState,
    ns: String,
    root: Needed,
    /// Directories found but not yet read, in breadth-first order.
    queue: VecDeque<Needed>,
    /// Every directory queued so far: a repeated subtree is walked once.
    seen: HashSet<Needed>,
    /// The root, read before the stream starts.
    first: Option<Directory>,
    /// Directories walked so far, the token's unit.
    position: u64,
    /// Directories a resumed call walks without sending.
    skip: u64,
    page: usize,
    bytes: u64,
    done: bool,
}

impl Walk {
    /// The next page, `None` once the walk is over.
    async fn next_page(&mut self) -> Option<Result<GetTreeResponse, Status>> {
        if self.done {
            return None;
        }
        let page = self.fill().await;
        if page.is_err() {
            self.done = true;
        }
        let directories = match page {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        if directories.is_empty() && self.done {
            if self.position < self.skip {
                return Some(Err(Status::invalid_argument(
                    "page_token points past the end of this tree",
                )));
            }
            return None;
        }
        let next_page_token = if self.done {
            String::new()
        } else {
            token::encode(&self.root, self.position)
        };
        Some(Ok(GetTreeResponse {
            directories,
            next_page_token,
        }))
    }

    /// Walks until a page is full or the tree ends (`done`).
    async fn fill(&mut self) -> Result<Vec<Directory>, Status> {
        let mut dirs = Vec::new();
        let mut bytes = 0u64;
        while dirs.len() < self.page {
            let dir = if let Some(root) = self.first.take() {
                root
            } else {
                let Some(next) = self.queue.front().copied() else {
                    break;
                };
                if !dirs.is_empty() && bytes + next.size > PAGE_BYTES {
                    break;
                }
                self.queue.pop_front();
                match self.read(&next).await? {
                    Some(dir) => dir,
                    None => continue,
                }
            };
            self.enqueue(&dir)?;
            self.position += 1;
            if self.position > self.skip {
                bytes += dir.encoded_len() as u64;
                dirs.push(dir);
            }
        }
        self.done = self.first.is_none() && self.queue.is_empty();
        Ok(dirs)
    }

    fn enqueue(&mut self, dir: &Directory) -> Result<(), Status> {
        for child in &dir.directories {
            // A child with a malformed digest is a subtree this CAS cannot
            // hold: left out, as a missing one is.
            let Ok(n) = parse_digest(child.digest.as_ref()) else {
                continue;
            };
            if self.seen.insert(n) {
                if self.seen.len() as u64 > MAX_DIRS {
                    return Err(too_large(format!("more than {MAX_DIRS} directories")));
                }
                self.queue.push_back(n);
            }
        }
        Ok(())
    }

    /// One directory of the tree, `None` when the CAS lacks it or it is no
    /// `Directory`.
    async fn read(&mut self, n: &Needed) -> Result<Option<Directory>, Status> {
        if n.size > MAX_DIR {
            return Ok(None);
        }
        self.bytes += n.size;
        if self.bytes > MAX_BYTES {
            return Err(too_large(format!("more than {MAX_BYTES} bytes")));
        }
        let Some(bytes) = read_blob(&self.state, &self.ns, n).await? else {
            return Ok(None);
        };
        Ok(Directory::decode(bytes).ok())
    }
}

fn too_large(what: String) -> Status {
    Status::resource_exhausted(format!(
        "the tree holds {what}, more than one GetTree call walks"
    ))
}

/// Page tokens: the walk position, bound to the root it belongs to, so that
/// garbage or another tree's token is refused rather than skipping blindly.
/// Not a secret: a forged position only makes the caller skip part of a
/// tree it may read anyway.
mod token {
    use super::{Needed, MAX_DIRS};
    use tonic::Status;

    const VERSION: u8 = 1;
    const LEN: usize = 1 + 8 + 8;

    fn check(root: &Needed, position: u64) -> [u8; 8] {
        let mut h = blake3::Hasher::new();
        h.update(b"larder GetTree page token");
        h.update(&root.sha256);
        h.update(&root.size.to_be_bytes());
        h.update(&position.to_be_bytes());
        let mut out = [0u8; 8];
        out.copy_from_slice(&h.finalize().as_bytes()[..8]);
        out
    }

    pub fn encode(root: &Needed, position: u64) -> String {
        let mut raw = Vec::with_capacity(LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&position.to_be_bytes());
        raw.extend_from_slice(&check(root, position));
        hex::encode(raw)
    }

    pub fn decode(token: &str, root: &Needed) -> Result<u64, Status> {
        let bad = || Status::invalid_argument("page_token is not one this tree's pages gave");
        let mut raw = [0u8; LEN];
        hex::decode_to_slice(token, &mut raw).map_err(|_| bad())?;
        let (version, rest) = raw.split_first().ok_or_else(bad)?;
        let (position, sum) = rest.split_at(8);
        let position = u64::from_be_bytes(position.try_into().map_err(|_| bad())?);
        if *version != VERSION || sum != check(root, position) || position > MAX_DIRS {
            return Err(bad());
        }
        Ok(position)
    }
}
