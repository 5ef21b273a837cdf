//! `--cluster`'s lookups once a replica has seen them, the steady state of
//! a fleet importing the same caches: BuildKit's HEAD of each layer and
//! GET of the cache manifest by tag, on blobs and tags every replica has
//! looked up before (so its metadata cache and memory hold them), against
//! the single node doing the same. The OCI mix's `head_hit` and
//! `manifest_get` rows include each replica's first lookups; these do not.

use std::sync::Arc;

use crate::client::Target;
use crate::cluster::Cluster;
use crate::driver::{self, Amount, Measured, Pids};
use crate::workload::{self, Blob};

/// One measured pass of each lookup: (HEAD through the replicas, through
/// the single node, manifest GET through the replicas, through the single
/// node).
pub struct Lookups {
    pub head: Measured,
    pub head_one: Measured,
    pub manifest: Measured,
    pub manifest_one: Measured,
}

impl Cluster {
    /// `each` are (replica, blob) pairs both targets hold in `repo`;
    /// `manifests` of them are written under tags `hot-<i>` through the
    /// first replica and the single node, read once through every replica
    /// (unmeasured), then measured.
    pub async fn lookups(
        &self,
        each: &Arc<Vec<(Arc<Target>, Blob)>>,
        single: &Arc<Target>,
        repo: &Arc<str>,
        manifests: usize,
        amount: Amount,
        c: usize,
    ) -> anyhow::Result<Lookups> {
        let layers: Vec<Blob> = each.iter().map(|(_, b)| b.clone()).collect();
        let config = Blob::new(workload::random_bytes(700, layers.len() as u64 ^ 0xc0f1));
        let manifests: Arc<Vec<Blob>> = Arc::new(
            (0..manifests)
                .map(|i| workload::cache_manifest(i, &config, &layers))
                .collect(),
        );
        let writer = &self.replicas[0];
        for t in [writer, single] {
            t.push(repo, &config).await?;
            for (i, m) in manifests.iter().enumerate() {
                t.put_manifest(repo, &format!("hot-{i}"), m).await?;
            }
        }
        let through = |t: &Arc<Target>| -> Arc<Vec<(Arc<Target>, Blob)>> {
            Arc::new(each.iter().map(|(_, b)| (t.clone(), b.clone())).collect())
        };
        let replicas = self.replicas.clone();
        let read_by = move |i: usize| replicas[i % replicas.len()].clone();
        // Every replica reads every manifest once, unmeasured.
        for t in &self.replicas {
            let one_pass = Amount {
                ops: manifests.len(),
                min_time: std::time::Duration::ZERO,
            };
            manifest_gets(t, &manifests, repo, one_pass, c, Pids::default()).await;
        }
        let pids = self.target.pids();
        Ok(Lookups {
            head: heads(each, repo, amount, c, pids.clone()).await,
            head_one: heads(&through(single), repo, amount, c, single.pids()).await,
            manifest: manifest_gets_by(read_by, &manifests, repo, amount, c, pids).await,
            manifest_one: manifest_gets(single, &manifests, repo, amount, c, single.pids()).await,
        })
    }
}

async fn heads(
    each: &Arc<Vec<(Arc<Target>, Blob)>>,
    repo: &Arc<str>,
    amount: Amount,
    c: usize,
    pids: Pids,
) -> Measured {
    let (each, repo) = (each.clone(), repo.clone());
    driver::run(amount, c, pids, move |i| {
        let ((t, b), repo) = (each[i % each.len()].clone(), repo.clone());
        async move { t.head(&repo, &b, true).await }
    })
    .await
}

async fn manifest_gets(
    t: &Arc<Target>,
    manifests: &Arc<Vec<Blob>>,
    repo: &Arc<str>,
    amount: Amount,
    c: usize,
    pids: Pids,
) -> Measured {
    let t = t.clone();
    manifest_gets_by(move |_| t.clone(), manifests, repo, amount, c, pids).await
}

/// GET manifest `i % n` by its tag through `by(i)`.
async fn manifest_gets_by(
    by: impl Fn(usize) -> Arc<Target> + Send + Sync + 'static,
    manifests: &Arc<Vec<Blob>>,
    repo: &Arc<str>,
    amount: Amount,
    c: usize,
    pids: Pids,
) -> Measured {
    let (manifests, repo) = (manifests.clone(), repo.clone());
    driver::run(amount, c, pids, move |i| {
        let k = i % manifests.len();
        let (t, repo, m) = (by(i), repo.clone(), manifests[k].clone());
        async move { t.get_manifest(&repo, &format!("hot-{k}"), &m).await }
    })
    .await
}
