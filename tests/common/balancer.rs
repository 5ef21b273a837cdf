//! A round-robin TCP load balancer in front of a cluster's replicas, as an
//! operator runs one: each accepted connection goes to the next replica, with
//! no stickiness, so a client's requests (its uploads' chunks, its pull after
//! a push) land on replicas that did not see the ones before.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Accepts on a loopback port until dropped. Connections already relayed
/// run until either side closes them (a replica shutting down closes its).
pub struct Balancer {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Balancer {
    pub async fn start(replicas: Vec<SocketAddr>) -> Balancer {
        assert!(!replicas.is_empty(), "a balancer needs replicas");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("balancer address");
        let accept = tokio::spawn(async move {
            for replica in replicas.iter().copied().cycle() {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(e) => panic!("balancer accept: {e}"),
                };
                tokio::spawn(relay(client, replica));
            }
        });
        Balancer { addr, accept }
    }
}

async fn relay(mut client: TcpStream, replica: SocketAddr) {
    // A replica that refuses the connection: the client sees it closed, as
    // behind a real balancer with no healthy target.
    let Ok(mut upstream) = TcpStream::connect(replica).await else {
        return;
    };
    // Small requests and answers must not wait on Nagle's delay in between.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = copy_bidirectional(&mut client, &mut upstream).await;
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
