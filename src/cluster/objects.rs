//! The cluster's bytes in an S3-compatible object store. A blob is written
//! under `<prefix>/blobs/<blake3>` only after it was verified, and checked
//! again as it is uploaded, so no reader ever sees a wrong byte under its
//! name. Parts of multi-request uploads live under
//! `<prefix>/uploads/<id>/<offset>` until the upload completes, so that any
//! replica can continue an upload another began.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, RetryConfig, WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::cas::ContentId;
use crate::config::S3Config;

/// Blobs up to this size go up in one request; larger ones in parts of it.
const PART_SIZE: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The object is not there (deleted behind our back, or never written).
    #[error("object {0} not found")]
    Missing(String),
    /// The bytes read for upload were not the blob's: the local copy changed
    /// after it was verified. Nothing was made visible.
    #[error("blob {0} changed before it was stored; not stored")]
    Corrupt(ContentId),
    #[error("{0}")]
    Store(object_store::Error),
    #[error("reading the local copy: {0}")]
    Local(#[from] std::io::Error),
}

impl From<object_store::Error> for ObjectsError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => ObjectsError::Missing(path),
            e => ObjectsError::Store(e),
        }
    }
}

#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl Objects {
    /// A client for the configured bucket. Settings the config leaves out
    /// come from the usual `AWS_*` environment variables. Requests that fail
    /// with a 5xx or time out are retried with backoff for up to four times
    /// `request_timeout` before the caller sees the error.
    pub fn open(cfg: &S3Config) -> Result<Objects, ObjectsError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_allow_http(cfg.allow_http)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(cfg.allow_http)
                    .with_timeout(cfg.request_timeout.0)
                    .with_connect_timeout(cfg.request_timeout.0.min(Duration::from_secs(5))),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: 8,
                retry_timeout: cfg.request_timeout.0 * 4,
            });
        if !cfg.endpoint.is_empty() {
            b = b.with_endpoint(&cfg.endpoint);
        }
        if let Some(id) = &cfg.access_key_id {
            b = b.with_access_key_id(id);
        }
        if let Some(secret) = &cfg.secret_access_key {
            b = b.with_secret_access_key(secret);
        }
        Ok(Objects {
            store: Arc::new(b.build()?),
            prefix: Path::parse(cfg.prefix.trim_matches('/'))?,
        })
    }

    fn blob_path(&self, id: &ContentId) -> Path {
        self.prefix.child("blobs").child(id.to_hex())
    }

    fn part_path(&self, upload: &str, offset: u64) -> Path {
        self.upload_dir(upload).child(format!("{offset:020}"))
    }

    /// `object` is a key of ours under the upload's dir ("blocks/<n>"),
    /// never a client's string.
    fn staged_path(&self, upload: &str, object: &str) -> Path {
        object
            .split('/')
            .fold(self.upload_dir(upload), |dir, part| dir.child(part))
    }

    fn upload_dir(&self, upload: &str) -> Path {
        self.prefix.child("uploads").child(upload)
    }

    /// Stores the verified blob `id` from the local file `file`. Its bytes
    /// are hashed again as they are sent; if they are not `id`'s (the file
    /// changed after verification), the upload is abandoned, not completed.
    pub async fn put_blob(&self, id: &ContentId, file: &FsPath) -> Result<u64, ObjectsError> {
        self.put_blob_file(id, tokio::fs::File::open(file).await?)
            .await
    }

    /// `put_blob` from an open file, read from its start.
    pub async fn put_blob_file(
        &self,
        id: &ContentId,
        mut f: tokio::fs::File,
    ) -> Result<u64, ObjectsError> {
        let path = self.blob_path(id);
        f.seek(std::io::SeekFrom::Start(0)).await?;
        let size = f.metadata().await?.len();
        let mut hasher = blake3::Hasher::new();
        if size as usize <= PART_SIZE {
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf).await?;
            hasher.update(&buf);
            if hasher.finalize().as_bytes() != &id.0 {
                return Err(ObjectsError::Corrupt(*id));
            }
            self.store.put(&path, Bytes::from(buf).into()).await?;
            return Ok(size);
        }
        let upload = self.store.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let sent = async {
            let mut buf = vec![0; PART_SIZE];
            let mut total = 0u64;
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                total += n as u64;
                writer.wait_for_capacity(4).await?;
                writer.write(&buf[..n]);
            }
            Ok::<u64, ObjectsError>(total)
        }
        .await;
        match sent {
            Ok(total) if hasher.finalize().as_bytes() == &id.0 => {
                writer.finish().await?;
                Ok(total)
            }
            Ok(_) => {
                let _ = writer.abort().await;
                Err(ObjectsError::Corrupt(*id))
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Whether the bucket answers (one listing request).
    pub async fn check(&self) -> Result<(), ObjectsError> {
        let dir = self.prefix.child("blobs");
        match self.store.list(Some(&dir)).next().await {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Stores blob `id` from bytes this replica just verified in memory.
    pub async fn put_blob_bytes(&self, id: &ContentId, bytes: Bytes) -> Result<(), ObjectsError> {
        self.store.put(&self.blob_path(id), bytes.into()).await?;
        Ok(())
    }

    /// The stored size of blob `id`, or `None` when its object is absent.
    pub async fn blob_size(&self, id: &ContentId) -> Result<Option<u64>, ObjectsError> {
        match self.store.head(&self.blob_path(id)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Blob `id`'s bytes, all or `range`, as they arrive from the store.
    pub async fn read_blob(
        &self,
        id: &ContentId,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectsError>>, ObjectsError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&self.blob_path(id), options).await?;
        Ok(got.into_stream().map_err(ObjectsError::from).boxed())
    }

    /// Deletes blob `id`'s object; deleting an absent one succeeds.
    pub async fn delete_blob(&self, id: &ContentId) -> Result<(), ObjectsError> {
        match self.store.delete(&self.blob_path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every blob in the bucket (for sweeps and for checking the bucket
    /// against the database); objects whose names are not BLAKE3 hex are
    /// skipped.
    pub async fn list_blobs(&self) -> Result<Vec<ContentId>, ObjectsError> {
        Ok(self
            .blob_objects()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Every blob object with when it was last written, for the sweep of
    /// objects no record names.
    pub async fn blob_objects(&self) -> Result<Vec<(ContentId, SystemTime)>, ObjectsError> {
        let dir = self.prefix.child("blobs");
        let metas: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                let id = m.location.filename().and_then(ContentId::from_hex)?;
                Some((id, m.last_modified.into()))
            })
            .collect())
    }

    /// Every upload with staged parts, with when its newest part was
    /// written.
    pub async fn staged_uploads(&self) -> Result<Vec<(String, SystemTime)>, ObjectsError> {
        let dir = self.prefix.child("uploads");
        let metas: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        let mut newest: std::collections::BTreeMap<String, SystemTime> = Default::default();
        for m in &metas {
            let Some(upload) = m
                .location
                .prefix_match(&dir)
                .and_then(|mut parts| parts.next())
            else {
                continue;
            };
            let at: SystemTime = m.last_modified.into();
            let slot = newest.entry(upload.as_ref().to_owned()).or_insert(at);
            *slot = (*slot).max(at);
        }
        Ok(newest.into_iter().collect())
    }

    /// Stages one part of upload `upload`, at byte `offset` of the result.
    pub async fn put_part(
        &self,
        upload: &str,
        offset: u64,
        bytes: Bytes,
    ) -> Result<(), ObjectsError> {
        self.store
            .put(&self.part_path(upload, offset), bytes.into())
            .await?;
        Ok(())
    }

    /// Stages `object` (a key `uploads.rs` chose) of `upload`.
    pub async fn put_staged(
        &self,
        upload: &str,
        object: &str,
        bytes: Bytes,
    ) -> Result<(), ObjectsError> {
        self.store
            .put(&self.staged_path(upload, object), bytes.into())
            .await?;
        Ok(())
    }

    /// The staged `object` of `upload`.
    pub async fn read_staged(
        &self,
        upload: &str,
        object: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectsError>>, ObjectsError> {
        let got = self.store.get(&self.staged_path(upload, object)).await?;
        Ok(got.into_stream().map_err(ObjectsError::from).boxed())
    }

    /// The staged part of `upload` at `offset`.
    pub async fn read_part(
        &self,
        upload: &str,
        offset: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectsError>>, ObjectsError> {
        let got = self.store.get(&self.part_path(upload, offset)).await?;
        Ok(got.into_stream().map_err(ObjectsError::from).boxed())
    }

    /// Removes every staged part of `upload`.
    pub async fn delete_upload(&self, upload: &str) -> Result<(), ObjectsError> {
        let dir = self.upload_dir(upload);
        let parts: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        for part in parts {
            match self.store.delete(&part.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl From<object_store::path::Error> for ObjectsError {
    fn from(e: object_store::path::Error) -> Self {
        ObjectsError::Store(object_store::Error::InvalidPath { source: e })
    }
}
