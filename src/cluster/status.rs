//! What `larder cluster status` reports: the schema, the leader, the
//! replicas seen and what the cluster stores.

use serde::Serialize;

use super::objects::Objects;
use super::{leader, replicas, schema, ClusterError};

#[derive(Debug, Serialize)]
pub struct Status {
    pub schema_version: i32,
    pub binary_schema_version: i32,
    /// The replica whose session holds the leader lock.
    pub leader: Option<String>,
    /// "reachable", or why not; absent when no bucket is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    pub replicas: Vec<ReplicaStatus>,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub entries: u64,
}

#[derive(Debug, Serialize)]
pub struct ReplicaStatus {
    #[serde(flatten)]
    pub replica: replicas::Replica,
    /// Seen within three heartbeats.
    pub alive: bool,
}

pub async fn gather(
    client: &impl tokio_postgres::GenericClient,
    objects: Option<&Objects>,
    heartbeat: std::time::Duration,
) -> Result<Status, ClusterError> {
    let bucket = match objects {
        Some(o) => Some(match o.check().await {
            Ok(()) => "reachable".to_owned(),
            Err(e) => format!("unreachable: {e}"),
        }),
        None => None,
    };
    let schema_version = schema::version(client).await?;
    let binary_schema_version = schema::latest();
    let leader = leader::holder(client)
        .await?
        .map(|app| super::replica_of(&app).to_owned());
    // Before the first migration there are no tables to read.
    let (replicas, (blobs, blob_bytes, entries, _)) = if schema_version == 0 {
        (Vec::new(), (0, 0, 0, 0))
    } else {
        let gone_after = heartbeat.as_secs_f64() * 3.0;
        let replicas = replicas::list(client)
            .await?
            .into_iter()
            .map(|replica| ReplicaStatus {
                alive: replica.seen_secs_ago <= gone_after,
                replica,
            })
            .collect();
        (replicas, super::listing::counts(client).await?)
    };
    Ok(Status {
        schema_version,
        binary_schema_version,
        leader,
        bucket,
        replicas,
        blobs,
        blob_bytes,
        entries,
    })
}

impl Status {
    pub fn render(&self) -> String {
        let mut out = format!(
            "schema: version {} (this binary: {})\nleader: {}\n",
            self.schema_version,
            self.binary_schema_version,
            self.leader.as_deref().unwrap_or("none")
        );
        if let Some(bucket) = &self.bucket {
            out += &format!("bucket: {bucket}\n");
        }
        out += &format!("replicas: {}\n", self.replicas.len());
        for r in &self.replicas {
            out += &format!(
                "  {}  {}  {}  up {:.0}s  seen {:.1}s ago{}\n",
                r.replica.id,
                r.replica.address,
                r.replica.version,
                r.replica.up_secs,
                r.replica.seen_secs_ago,
                if r.alive { "" } else { "  (gone)" }
            );
        }
        out += &format!(
            "stored: {} blobs, {}, {} entries\n",
            self.blobs,
            bytesize::ByteSize(self.blob_bytes),
            self.entries
        );
        out
    }
}
