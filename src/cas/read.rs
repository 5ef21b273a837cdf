//! Ranged reads of blob files.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::{Cas, ContentId};

/// Bytes per blocking call, and the most one response frame carries. Each
/// chunk read is a round trip to the blocking pool; 4 MiB keeps a 32 MiB
/// blob at 8. A mapped chunk is page cache, not heap, so a slow client
/// holding one costs no memory of ours.
pub const READ_CHUNK: u64 = 4 << 20;

/// Chunks at least this large are mapped rather than read (see `chunk_at`).
const MAP_AT_LEAST: u64 = 128 << 10;

pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

impl Cas {
    /// Opens `len` bytes of blob `id` from `offset`. The caller has already
    /// checked the range against the blob's size; a file shorter than that
    /// is an error here, before any response starts, never a short body
    /// under a promised Content-Length.
    pub async fn open_range(&self, id: &ContentId, offset: u64, len: u64) -> io::Result<FileRange> {
        let path = self.path(id);
        if let Some(file) = open_cached(&path) {
            return FileRange::new(file, offset, len);
        }
        tokio::task::spawn_blocking(move || FileRange::new(File::open(&path)?, offset, len))
            .await
            .map_err(io::Error::other)?
    }

    /// Streams `len` bytes of blob `id` starting at `offset` (see `open_range`).
    pub async fn read_range(
        &self,
        id: &ContentId,
        offset: u64,
        len: u64,
    ) -> io::Result<BlobStream> {
        Ok(self.open_range(id, offset, len).await?.into_stream())
    }
}

/// An open blob file and the part of it to send. Blob files are immutable
/// and replaced only by rename, so what was checked at open stays true.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
}

impl FileRange {
    fn new(file: File, offset: u64, len: u64) -> io::Result<FileRange> {
        let size = file.metadata()?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("range {offset}+{len} is past the end of a {size}-byte blob"),
            ));
        }
        Ok(FileRange {
            file: Arc::new(file),
            offset,
            len,
        })
    }

    /// The range as chunks read on the blocking pool.
    pub fn into_stream(self) -> BlobStream {
        let at = self.offset;
        Box::pin(futures_util::stream::try_unfold(
            (self, at),
            |(range, at)| async move {
                if at >= range.end() {
                    return Ok(None);
                }
                let chunk = range.read_chunk(at).await?;
                let next = at + chunk.len() as u64;
                Ok(Some((chunk, (range, next))))
            },
        ))
    }

    /// The end of the range in the file.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }

    /// How much of the range a chunk from `at` takes: at most `READ_CHUNK`.
    pub fn chunk_len(&self, at: u64) -> u64 {
        self.end().saturating_sub(at).min(READ_CHUNK)
    }

    /// The chunk from `at` (see `chunk_len`), read on the blocking pool.
    pub async fn read_chunk(&self, at: u64) -> io::Result<Bytes> {
        let (file, want) = (self.file.clone(), self.chunk_len(at));
        tokio::task::spawn_blocking(move || chunk_at(&file, at, want))
            .await
            .map_err(io::Error::other)?
    }

    /// Whether all of `len` bytes from `at` are in the page cache, so that
    /// sending them cannot wait for the disk. False where the kernel cannot
    /// tell (`cachestat` is Linux 6.5 and later): those reads go through
    /// the blocking pool.
    #[cfg(target_os = "linux")]
    pub fn cached(&self, at: u64, len: u64) -> bool {
        use std::os::fd::AsRawFd;
        /// `cachestat(2)`: the same number on every architecture, and not
        /// in the libc crate for all of them.
        const SYS_CACHESTAT: libc::c_long = 451;
        #[repr(C)]
        struct Range {
            off: u64,
            len: u64,
        }
        #[repr(C)]
        #[derive(Default)]
        struct Stat {
            nr_cache: u64,
            nr_dirty: u64,
            nr_writeback: u64,
            nr_evicted: u64,
            nr_recently_evicted: u64,
        }
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as u64,
            _ => return false,
        };
        let first = at / page;
        let pages = (at + len).div_ceil(page) - first;
        let range = Range {
            off: first * page,
            len: pages * page,
        };
        let mut stat = Stat::default();
        // SAFETY: both structs are laid out as the kernel's, live for the
        // call, and the file descriptor is open.
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                self.file.as_raw_fd(),
                &range as *const Range,
                &mut stat as *mut Stat,
                0u32,
            )
        };
        rc == 0 && stat.nr_cache >= pages
    }

    #[cfg(not(target_os = "linux"))]
    pub fn cached(&self, _at: u64, _len: u64) -> bool {
        false
    }
}

/// Opens `path` only if every part of it is in the kernel's lookup cache
/// (`openat2` with `RESOLVE_CACHED`, Linux 5.12 and later), so the open
/// cannot wait for the disk and may run on the runtime thread: a hop to
/// the blocking pool and back cost a 1 MiB GET more CPU than its open.
/// `None` for anything else (not cached, an older kernel, an error): the
/// blocking pool then opens it, or reports why not.
#[cfg(target_os = "linux")]
fn open_cached(path: &std::path::Path) -> Option<File> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    /// The kernel's `struct open_how` (libc's cannot be built outside it).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_CACHED,
    };
    // SAFETY: a NUL-terminated path and an `open_how` of the size passed,
    // both live for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: a descriptor just opened, owned by nothing else.
    Some(unsafe { File::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
fn open_cached(_path: &std::path::Path) -> Option<File> {
    None
}

/// `len` bytes at `offset`, mapped rather than copied where the kernel
/// allows: a read into a fresh heap buffer costs the kernel zeroing its
/// pages, a copy out of the page cache and the allocator's churn, which was
/// most of a large GET's CPU. The socket write then copies straight from the
/// page cache.
///
/// Small chunks are read: mapping costs three syscalls and unmapping a TLB
/// flush on every core, more than copying a few pages (4 KiB GETs ran at
/// two thirds of their rate mapped).
fn chunk_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    if len < MAP_AT_LEAST {
        return read_at(file, offset, len);
    }
    map_at(file, offset, len).or_else(|_| read_at(file, offset, len))
}

/// The mapping is populated here, on the blocking pool, so the runtime
/// thread writing it to the socket never waits for the disk, and a disk
/// error surfaces as this error (then the plain read reports it) instead
/// of a fault later. Blob files are immutable and replaced only by rename,
/// so the mapped bytes cannot change or shrink underneath.
fn map_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: see above: nothing writes or truncates a published blob file.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)?
    };
    map.advise(memmap2::Advice::PopulateRead)?;
    Ok(Bytes::from_owner(map))
}

/// Exactly `len` bytes at `offset`, or an error if the file ends first.
fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    // Not zero-filled first: `read_to_end` reads into the spare capacity.
    let mut buf = Vec::with_capacity(len as usize);
    FileReader { file, at: offset }
        .take(len)
        .read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("blob file ended {} bytes early", len - buf.len() as u64),
        ));
    }
    Ok(Bytes::from(buf))
}

/// Positioned reads through `Read`, so a shared file needs no seek.
struct FileReader<'a> {
    file: &'a File,
    at: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}
