//! A query API running in-process on port 0 against a `TestEnv`, and request helpers.

use std::time::Duration;

use bson::doc;
use chrono::Duration as TimeDelta;
use clap::Parser;
use domain::enums::Role;
use domain::ids::UserId;
use platform::auth::{Caller, JwtKeys};
use platform::config::Secret;
use platform::shutdown::{self, ShutdownTrigger};
use query_api::Config;
use reqwest::header::HeaderMap;
use tests::TestEnv;

pub(crate) const JWT_SECRET: &str = "query-api-test-secret-0123456789";
pub(crate) const MODELS: [&str; 5] = ["dashboard", "calendar", "inbox", "lists", "messages"];

pub(crate) struct Harness {
    pub(crate) env: TestEnv,
    pub(crate) http: reqwest::Client,
    pub(crate) nats: async_nats::Client,
    keys: JwtKeys,
}

/// One running service; stops when dropped.
pub(crate) struct Instance {
    pub(crate) base: String,
    trigger: ShutdownTrigger,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: serde_json::Value,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The fields named by a 400 problem.
    pub(crate) fn bad_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn position(&self) -> u64 {
        self.body["position"].as_u64().unwrap_or(u64::MAX)
    }
}

/// A signed-in user.
#[derive(Clone)]
pub(crate) struct User {
    pub(crate) id: UserId,
    pub(crate) role: Role,
    pub(crate) token: String,
}

impl Harness {
    pub(crate) async fn new() -> Self {
        let env = TestEnv::new().await;
        let nats = env.nats().await;
        Harness {
            env,
            http: reqwest::Client::new(),
            nats,
            keys: JwtKeys::new(&Secret::new(JWT_SECRET)),
        }
    }

    pub(crate) async fn start(&self) -> Instance {
        self.start_with(&[]).await
    }

    pub(crate) async fn start_with(&self, extra: &[&str]) -> Instance {
        let mut args = vec!["query-api".to_owned()];
        args.extend(self.env.service_args());
        let own = ["--jwt-secret", JWT_SECRET, "--timezone", "America/New_York"];
        args.extend(own.iter().chain(extra).map(|a| (*a).to_owned()));
        let config = Config::parse_from(args);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (trigger, stop) = shutdown::channel();
        tokio::spawn(async move {
            if let Err(error) = query_api::run(config, listener, stop).await {
                panic!("query API failed: {error:#}");
            }
        });
        let instance = Instance { base, trigger };
        for _ in 0..200 {
            if let Ok(r) = self
                .http
                .get(format!("{}/healthz", instance.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return instance;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("query API did not start");
    }

    pub(crate) fn user(&self, role: Role) -> User {
        self.user_with_id(role, UserId::from_uuid(uuid::Uuid::now_v7()))
    }

    pub(crate) fn user_with_id(&self, role: Role, id: UserId) -> User {
        let caller = Caller {
            user_id: id,
            name: format!("{role} user"),
            role,
        };
        User {
            id,
            role,
            token: self.keys.mint(&caller, TimeDelta::hours(1)).unwrap(),
        }
    }

    pub(crate) async fn get(&self, instance: &Instance, path: &str, user: Option<&User>) -> Reply {
        self.get_with(instance, path, user, &[]).await
    }

    pub(crate) async fn get_with(
        &self,
        instance: &Instance,
        path: &str,
        user: Option<&User>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.get(format!("{}{path}", instance.base));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Writes every model's generation-1 checkpoint document, as the projector does.
    /// Moves every model's checkpoint to `position`, and the log's tail with it (a model
    /// cannot be past the log).
    pub(crate) async fn write_checkpoints(&self, position: u64) {
        self.log_reaches(position).await;
        for model in MODELS {
            self.env
                .read_models
                .collection::<bson::Document>(&format!("rm_{model}_g1_meta"))
                .replace_one(
                    doc! {"_id": "checkpoint"},
                    doc! {"_id": "checkpoint", "position": position as i64},
                )
                .upsert(true)
                .await
                .unwrap();
        }
    }

    /// Records that the event log holds positions up to `position`, as the relay's
    /// sequencer hint says after a batch (never moved back).
    pub(crate) async fn log_reaches(&self, position: u64) {
        let relay = self
            .env
            .database
            .collection::<bson::Document>(events::relay::RELAY_COLLECTION);
        let id = events::relay::SEQUENCER_ID;
        let known = relay
            .find_one(doc! {"_id": id})
            .await
            .unwrap()
            .and_then(|hint| hint.get_i64("next_position").ok())
            .unwrap_or(1);
        let next = known.max(position as i64 + 1);
        relay
            .replace_one(doc! {"_id": id}, doc! {"_id": id, "next_position": next})
            .upsert(true)
            .await
            .unwrap();
    }

    /// Publishes a change notice on the subject the projector uses.
    pub(crate) async fn notify(&self, position: u64, docs: &[(String, String)], registry: bool) {
        let docs: Vec<_> = docs
            .iter()
            .map(|(c, i)| serde_json::json!({"collection": c, "id": i}))
            .collect();
        let payload = serde_json::json!({"position": position, "docs": docs, "registry": registry});
        let subject = read_models::names::changes_subject(&self.env.bus_config.subject_prefix);
        self.nats
            .publish(subject, serde_json::to_vec(&payload).unwrap().into())
            .await
            .unwrap();
        self.nats.flush().await.unwrap();
    }
}
