//! Fixtures for the integration tests: an isolated environment per test (fresh database name,
//! fresh JetStream stream and subject prefix) on the shared local servers, and a private
//! nats-server for tests that stop and restart NATS, a private database server (PostgreSQL and
//! FerretDB) for tests that crash it; the services as child processes for tests that crash,
//! pause and restart them (`ServiceProcess`); valid command bodies (`bodies`); and readings of
//! a served OpenAPI document (`openapi`); the finished spans of the process (`spans`); a server-sent events client (`sse`).

pub mod bodies;
mod command_api_task;
mod database_server;
mod env;
mod nats_server;
pub mod openapi;
mod processes;
pub mod spans;
pub mod sse;

pub use command_api_task::CommandApiTask;
pub use database_server::DatabaseServer;
pub use env::{RunningRelay, TestEnv};
pub use nats_server::{NatsCluster, NatsServer};
pub use processes::ServiceProcess;

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}
