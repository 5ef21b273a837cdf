//! What a replica needs to serve, built from the config: its `ClusterStore`
//! (database pool, object store, local tier), its part in the leader
//! election, the leader's duties and who it is for the heartbeat. The
//! workers (`workers::cluster`) then keep it part of the cluster.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::duties::Duties;
use super::leader::Leadership;
use super::memo::Memo;
use super::objects::Objects;
use super::replicas::Me;
use super::store::{ClusterStore, Upkeep};
use super::tier::Tier;
use super::touches::Touches;
use super::{application_name, pg, replica_id, schema, secrets, ClusterError};
use crate::cache::small::SmallContent;
use crate::config::Config;

/// How often a replica writes the uses and leases it saw; the leader only
/// evicts entries last used two of these ago, when every replica's touches
/// have surely landed.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How soon a replica tries to lead once the leader's session ends.
const LEADER_RETRY: Duration = Duration::from_secs(1);

pub struct Replica {
    pub store: Arc<ClusterStore>,
    pub leadership: Leadership,
    pub duties: Duties,
    pub me: Me,
    /// The key tokens are signed with, the same on every replica.
    pub signing_key: Vec<u8>,
    /// Where the session that hears the database's changes for the
    /// store's memo connects (`listen.rs`).
    pub listen: pg::Settings,
}

impl Replica {
    /// Connects, brings the schema up to date (once, however many replicas
    /// start together), and opens the local tier under `data_dir`.
    /// `address` is what the heartbeat tells others this replica serves on.
    pub async fn open(
        config: &Config,
        data_dir: &Path,
        address: String,
    ) -> Result<Replica, ClusterError> {
        let cfg = &config.cluster;
        let id = replica_id(cfg);
        let application = application_name(&id);
        let settings = pg::settings(&cfg.postgres, &application)?;
        let signing_key = {
            let mut client = pg::connect(&settings).await?;
            schema::migrate(&mut client, &id).await?;
            match &config.auth.signing_key_file {
                // An operator's key file (a mounted Secret) wins: tokens can
                // then also be minted offline with `larder token create`.
                Some(path) => crate::auth::key::load_or_create(path)
                    .map_err(|e| ClusterError::Config(e.to_string()))?,
                None => secrets::signing_key(&client).await?,
            }
        };
        let pool = pg::pool(&cfg.postgres, &application)?;
        let objects = Objects::open(&cfg.s3)?;
        let tier = Tier::open(
            &data_dir.join("tier"),
            cfg.local_cache_size.bytes(),
            objects.clone(),
        )
        .map_err(|e| ClusterError::Config(format!("opening the local tier: {e}")))?;
        let storage = &config.storage;
        let quotas: std::collections::HashMap<String, u64> = (config.namespaces.iter())
            .filter_map(|(ns, c)| Some((ns.clone(), c.max_size?.bytes())))
            .collect();
        let store = Arc::new(ClusterStore {
            pool: pool.clone(),
            objects: objects.clone(),
            tier,
            touches: Touches::default(),
            max_size: storage.max_size.bytes(),
            hard_limit: storage.hard_limit(),
            max_blob_size: storage.max_blob_size.bytes(),
            lease: config.gc.lease.0,
            quotas: quotas.clone(),
            revoked: Default::default(),
            upkeep: Upkeep {
                flush_interval: FLUSH_INTERVAL,
                upload_expiry: config.gc.upload_expiry.0,
                // An object written moments before its record must never
                // look orphaned: uploads finish well within their expiry.
                orphan_grace: config.gc.upload_expiry.0,
            },
            evicted: Default::default(),
            memo: Memo::new(cfg.metadata_cache_size.bytes()),
            small: SmallContent::new(storage.memory_cache.bytes()),
        });
        let duties = Duties {
            pool,
            objects,
            max_size: storage.max_size.bytes(),
            high_watermark: storage.high_watermark,
            low_watermark: storage.low_watermark,
            interval: config.gc.interval.0,
            flush_interval: store.upkeep.flush_interval,
            upload_expiry: store.upkeep.upload_expiry,
            orphan_grace: store.upkeep.orphan_grace,
            quotas,
        };
        Ok(Replica {
            store,
            leadership: Leadership::start(settings.clone(), LEADER_RETRY),
            duties,
            me: Me { id, address },
            signing_key,
            listen: settings,
        })
    }
}
