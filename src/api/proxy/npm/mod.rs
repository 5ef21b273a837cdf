//! npm pull-through at `/npm/<ns>/`: the registry's packument and tarball
//! paths, answered from the cache or fetched from `[proxy.npm] upstream`.
//! Packuments are metadata (revalidated after `metadata_ttl`, served stale
//! when the upstream is down); tarballs are immutable and verified against
//! their packument's `dist.integrity` before they are stored or served.

pub mod integrity;
pub mod name;
pub mod packument;
pub mod path;
mod routes;

pub use integrity::{Expected, Mismatch, Verifier};
pub use name::{NameError, PackageName};
pub use packument::{Form, Packument, PackumentError, Tarball};
pub use path::{NpmPath, PathError};
pub use routes::routes;
