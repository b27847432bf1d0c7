//! A private nats-server with JetStream for tests that stop and restart NATS, alone or as a
//! node of a cluster on loopback ports (`NatsCluster`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    binary: PathBuf,
    pub port: u16,
    store_dir: PathBuf,
    child: Option<Child>,
    /// The node's place in a cluster; `None` for a server alone.
    cluster: Option<ClusterNode>,
}

/// What a cluster node is started with besides its client port.
#[derive(Clone)]
struct ClusterNode {
    server_name: String,
    cluster_name: String,
    route_port: u16,
    /// Every node's route port, its own included (nats-server ignores a route to itself).
    routes: Vec<u16>,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("SIMPLEPRO_NATS_SERVER_BIN") {
        return path.into();
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cache =
        std::env::var("SIMPLEPRO_CACHE").unwrap_or_else(|_| format!("{home}/.cache/simplepro"));
    PathBuf::from(format!("{cache}/bin/nats-server-v2.15.2"))
}

impl NatsServer {
    pub fn start() -> Self {
        let mut server = Self::unstarted(None);
        server.restart();
        server
    }

    fn unstarted(cluster: Option<ClusterNode>) -> Self {
        let dir =
            std::env::temp_dir().join(format!("simplepro-nats-{}", uuid::Uuid::now_v7().simple()));
        NatsServer {
            binary: binary(),
            port: crate::free_port(),
            store_dir: dir,
            child: None,
            cluster,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nats-server already running");
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store_dir)
            .args(self.cluster.iter().flat_map(ClusterNode::args))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL); `restart` starts it again with its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

impl ClusterNode {
    fn args(&self) -> Vec<String> {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect();
        vec![
            "--server_name".into(),
            self.server_name.clone(),
            "--cluster_name".into(),
            self.cluster_name.clone(),
            "--cluster".into(),
            format!("nats-route://127.0.0.1:{}", self.route_port),
            "--routes".into(),
            routes.join(","),
        ]
    }
}

/// A NATS cluster with JetStream on loopback ports, one server process per node.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other and waits until each accepts clients; one
    /// node is a server alone (JetStream in a cluster of one would wait for peers).
    pub fn start(size: usize) -> Self {
        if size == 1 {
            return NatsCluster {
                nodes: vec![NatsServer::start()],
            };
        }
        let cluster_name = format!(
            "simplepro-{}",
            &uuid::Uuid::now_v7().simple().to_string()[..8]
        );
        let route_ports: Vec<u16> = (0..size).map(|_| crate::free_port()).collect();
        let mut nodes: Vec<NatsServer> = route_ports
            .iter()
            .enumerate()
            .map(|(n, route_port)| {
                NatsServer::unstarted(Some(ClusterNode {
                    server_name: format!("n{}", n + 1),
                    cluster_name: cluster_name.clone(),
                    route_port: *route_port,
                    routes: route_ports.clone(),
                }))
            })
            .collect();
        for node in &mut nodes {
            node.restart();
        }
        NatsCluster { nodes }
    }

    /// Every node's client URL, comma-separated, as `NATS_URL` takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
