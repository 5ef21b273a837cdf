//! The gRPC requests Bazel's remote cache sends (`--remote_cache=grpc://…`,
//! REAPI v2), each verified as Bazel relies on it: a ByteStream write
//! commits the whole blob, a read returns every byte stored, and
//! FindMissingBlobs names exactly the digests that were never stored.

use std::collections::HashSet;

use anyhow::{ensure, Context};
use futures_util::StreamExt;
use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;
use larder::api::reapi::gen::google::bytestream as bs;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use tonic::transport::Channel;

use crate::client::{Sample, Target};
use crate::workload::Blob;

/// The instance name (Larder's namespace) every blob lives under.
pub const INSTANCE: &str = "bench-reapi";

/// Bazel's ByteStream chunk size (its `Chunker` default), so a 1 MiB write
/// is 64 messages as it is from Bazel.
const CHUNK: usize = 16 << 10;

/// Bazel spreads its calls over a few HTTP/2 connections (each carrying
/// many streams); one connection would serialise all framing on one task.
const CONNECTIONS: usize = 4;

const WINDOW: u32 = 1 << 20;

/// gRPC clients of one target.
pub struct Reapi {
    channels: Vec<Channel>,
    token: Option<String>,
}

impl Reapi {
    pub async fn connect(t: &Target) -> anyhow::Result<Reapi> {
        ensure!(
            t.base.starts_with("http://"),
            "{}: the REAPI profiles speak h2c only (got {})",
            t.name,
            t.base
        );
        let mut channels = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            // grpc-java's (Bazel's) flow-control window, not h2's 64 KiB.
            let ch = Channel::from_shared(t.base.clone())?
                .initial_stream_window_size(WINDOW)
                .initial_connection_window_size(WINDOW)
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("gRPC connection to {}", t.base))?;
            channels.push(ch);
        }
        Ok(Reapi {
            channels,
            token: t.token.clone(),
        })
    }

    fn channel(&self, i: usize) -> Channel {
        self.channels[i % self.channels.len()].clone()
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = &self.token {
            if let Ok(v) = format!("Bearer {t}").parse() {
                req.metadata_mut().insert("authorization", v);
            }
        }
        req
    }

    /// A ByteStream write of `blob` in Bazel's 16 KiB pieces.
    pub async fn write(&self, i: usize, blob: &Blob) -> anyhow::Result<Sample> {
        let name = format!(
            "{INSTANCE}/uploads/{}/blobs/{}/{}",
            upload_id(i),
            hex(blob),
            blob.data.len()
        );
        let size = blob.data.len();
        let data = blob.data.clone();
        let pieces = (size.max(1)).div_ceil(CHUNK);
        let messages = futures_util::stream::iter((0..pieces).map(move |k| {
            let start = k * CHUNK;
            let end = (start + CHUNK).min(size);
            bs::WriteRequest {
                resource_name: if k == 0 { name.clone() } else { String::new() },
                write_offset: start as i64,
                finish_write: k + 1 == pieces,
                data: data.slice(start..end).to_vec(),
            }
        }));
        let mut client = bs::byte_stream_client::ByteStreamClient::new(self.channel(i));
        let res = client
            .write(self.request(messages))
            .await
            .context("ByteStream Write")?
            .into_inner();
        ensure!(
            res.committed_size == size as i64,
            "ByteStream Write: committed {}, want {size}",
            res.committed_size
        );
        Ok(Sample {
            bytes: size as u64,
            first_step: None,
        })
    }

    /// A ByteStream read of `blob`, compared with what was written.
    pub async fn read(&self, i: usize, blob: &Blob) -> anyhow::Result<Sample> {
        let req = bs::ReadRequest {
            resource_name: format!("{INSTANCE}/blobs/{}/{}", hex(blob), blob.data.len()),
            read_offset: 0,
            read_limit: 0,
        };
        let mut client = bs::byte_stream_client::ByteStreamClient::new(self.channel(i));
        let mut stream = client
            .read(self.request(req))
            .await
            .context("ByteStream Read")?
            .into_inner();
        let mut n = 0usize;
        while let Some(msg) = stream.next().await {
            let chunk = msg.context("ByteStream Read")?.data;
            let end = n + chunk.len();
            ensure!(
                blob.data.get(n..end) == Some(&chunk[..]),
                "ByteStream Read: bytes {n}..{end} differ from those written"
            );
            n = end;
        }
        ensure!(
            n == blob.data.len(),
            "ByteStream Read: {n} bytes, want {}",
            blob.data.len()
        );
        Ok(Sample {
            bytes: n as u64,
            first_step: None,
        })
    }

    /// FindMissingBlobs of `present` and `absent` together; the answer must
    /// be exactly `absent`.
    pub async fn find_missing(
        &self,
        i: usize,
        present: &[Blob],
        absent: &[re::Digest],
    ) -> anyhow::Result<Sample> {
        let blob_digests = present.iter().map(|b| re::Digest {
            hash: hex(b).to_owned(),
            size_bytes: b.data.len() as i64,
        });
        let req = re::FindMissingBlobsRequest {
            instance_name: INSTANCE.into(),
            blob_digests: blob_digests.chain(absent.iter().cloned()).collect(),
            digest_function: 0,
        };
        let mut client = ContentAddressableStorageClient::new(self.channel(i));
        let missing = client
            .find_missing_blobs(self.request(req))
            .await
            .context("FindMissingBlobs")?
            .into_inner()
            .missing_blob_digests;
        let got: HashSet<&str> = missing.iter().map(|d| d.hash.as_str()).collect();
        let want: HashSet<&str> = absent.iter().map(|d| d.hash.as_str()).collect();
        ensure!(
            got == want,
            "FindMissingBlobs: {} missing named, want exactly the {} absent",
            got.len(),
            want.len()
        );
        Ok(Sample {
            bytes: 0,
            first_step: None,
        })
    }
}

/// The hex SHA-256 REAPI names a blob by.
fn hex(b: &Blob) -> &str {
    b.digest.trim_start_matches("sha256:")
}

/// A fresh upload UUID per write, as Bazel sends.
fn upload_id(i: usize) -> String {
    let r: u64 = rand::random();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        r >> 32,
        (r >> 16) & 0xffff,
        i & 0xfff,
        (i >> 12) & 0xfff,
        r & 0xffff_ffff_ffff
    )
}
