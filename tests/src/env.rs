//! One test's isolated slice of the shared servers.

use std::time::Duration;

use events::{Bus, BusConfig, EventStore, Relay, RelayConfig};
use platform::shutdown::{self, ShutdownTrigger};

pub struct TestEnv {
    pub mongodb_uri: String,
    pub nats_url: String,
    pub db_name: String,
    pub bus_config: BusConfig,
    pub client: mongodb::Client,
    /// The event store's database.
    pub database: mongodb::Database,
    /// The read models' database, named as the services name it by default.
    pub read_models: read_models::dbs::ReadModelDbs,
}

impl TestEnv {
    /// Uses `MONGODB_URI` and `NATS_URL` (as `./dev test` sets them) with a unique database,
    /// stream and subject prefix, so tests run in parallel and beside a running system.
    pub async fn new() -> Self {
        let mongodb_uri = std::env::var("MONGODB_URI")
            .unwrap_or_else(|_| "mongodb://127.0.0.1:37017/?directConnection=true".into());
        let nats_url =
            std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:34222".into());
        Self::with_nats(mongodb_uri, nats_url).await
    }

    pub async fn with_nats(mongodb_uri: String, nats_url: String) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let tag = &id[id.len() - 12..];
        let client = events::store::connect_client(&mongodb_uri, "tests")
            .await
            .expect("MongoDB client (is `./dev up` running?)");
        let db_name = format!("test_{tag}");
        let database = client.database(&db_name);
        let read_models = read_models::dbs::ReadModelDbs::new(
            client.clone(),
            platform::config::default_read_models_db(&db_name),
        );
        TestEnv {
            bus_config: BusConfig {
                stream_name: format!("TEST_{tag}"),
                subject_prefix: format!("test.{tag}.events"),
                duplicate_window: Duration::from_secs(120),
                replicas: 1,
            },
            mongodb_uri,
            nats_url,
            db_name,
            client,
            database,
            read_models,
        }
    }

    /// The flags that point a service (command API, projector, query API) at this
    /// environment's database, stream and subject prefix.
    pub fn service_args(&self) -> Vec<String> {
        [
            "--mongodb-uri",
            &self.mongodb_uri,
            "--mongodb-db",
            &self.db_name,
            "--mongodb-read-models-db",
            self.read_models.base_name(),
            "--nats-url",
            &self.nats_url,
            "--nats-stream",
            &self.bus_config.stream_name,
            "--subject-prefix",
            &self.bus_config.subject_prefix,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    pub async fn store(&self) -> EventStore {
        EventStore::open(self.database.clone())
            .await
            .expect("open event store")
    }

    pub async fn nats(&self) -> async_nats::Client {
        events::bus::connect_nats(&self.nats_url, "tests")
            .await
            .expect("NATS client")
    }

    pub async fn bus(&self) -> Bus {
        Bus::new(self.nats().await, self.bus_config.clone())
    }

    /// Starts a relay for `store` in the background; it stops when the handle is dropped.
    pub async fn start_relay(&self, store: &EventStore) -> RunningRelay {
        let (trigger, stop) = shutdown::channel();
        let relay = Relay::new(
            store.clone(),
            self.bus().await,
            RelayConfig {
                poll_interval: Duration::from_millis(50),
                ..RelayConfig::default()
            },
        );
        let task = tokio::spawn(relay.run(stop.wait()));
        RunningRelay {
            trigger,
            task: Some(task),
        }
    }
}

impl Drop for TestEnv {
    /// Drops the test's databases so repeated runs do not pile up databases on the shared server.
    /// A fresh client on its own thread: the test's runtime may already be shutting down.
    fn drop(&mut self) {
        if std::env::var_os("SIMPLEPRO_KEEP_TEST_DATA").is_some() {
            return;
        }
        let uri = self.mongodb_uri.clone();
        let name = self.db_name.clone();
        let nats_url = self.nats_url.clone();
        let stream = self.bus_config.stream_name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(client) = events::store::connect_client(&uri, "tests-cleanup").await {
                    let _ = client.database(&name).drop().await;
                    let read_models = platform::config::default_read_models_db(&name);
                    let _ = read_models::dbs::ReadModelDbs::new(client, read_models)
                        .drop()
                        .await;
                }
                let connected = tokio::time::timeout(
                    Duration::from_secs(2),
                    async_nats::connect(nats_url.as_str()),
                )
                .await;
                if let Ok(Ok(nats)) = connected {
                    let _ = async_nats::jetstream::new(nats)
                        .delete_stream(&stream)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

pub struct RunningRelay {
    trigger: ShutdownTrigger,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningRelay {
    /// Stops the relay after its last pass.
    pub async fn stop(mut self) {
        self.trigger.trigger();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}
