//! moto's S3 server (`moto_server`, from PyPI's moto[server]): an
//! implementation of the protocol that Larder's authors did not write.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use larder::config::{S3Config, Span};

use super::free_port;

/// moto's S3 server on a free loopback port, killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    pub fn start() -> Option<S3Server> {
        let exe = super::require_tool("moto_server")?;
        let port = free_port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("create bucket")
            .status();
        assert!(status.is_success(), "create bucket {bucket}: {status}");
    }

    /// Writes (`Some`) or deletes (`None`) an object behind Larder's back,
    /// with a client of the test's own.
    pub async fn tamper(&self, bucket: &str, key: &str, bytes: Option<Vec<u8>>) {
        use object_store::ObjectStore;
        let store = self.client(bucket);
        let path = object_store::path::Path::from(key);
        match bytes {
            Some(b) => drop(store.put(&path, b.into()).await.expect("overwrite")),
            None => store.delete(&path).await.expect("delete"),
        }
    }

    /// The objects under `prefix` in `bucket` and their sizes, listed with
    /// a client of the test's own.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let store = self.client(bucket);
        let prefix = object_store::path::Path::from(prefix);
        let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect()
    }

    /// The bytes of object `key` in `bucket`, read with a client of the
    /// test's own.
    pub async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        use object_store::ObjectStore;
        let path = object_store::path::Path::from(key);
        let got = self.client(bucket).get(&path).await.expect("get object");
        got.bytes().await.expect("object bytes").to_vec()
    }

    /// A client of the test's own, not Larder's.
    fn client(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        let cfg = self.config(bucket);
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&cfg.endpoint)
            .with_bucket_name(bucket)
            .with_region(&cfg.region)
            .with_access_key_id(cfg.access_key_id.unwrap())
            .with_secret_access_key(cfg.secret_access_key.unwrap())
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            endpoint: self.endpoint(),
            bucket: bucket.into(),
            access_key_id: Some("larder-test".into()),
            secret_access_key: Some("larder-test-secret".into()),
            allow_http: true,
            request_timeout: Span::secs(2),
            ..S3Config::default()
        }
    }

    /// Freezes (true) or thaws (false) the server: connections stay open
    /// and nothing answers, as with a store that hangs.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: a signal to our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.freeze(false);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
