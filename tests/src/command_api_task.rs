//! The command API served from a task of the test's own process, on a free port.

use std::time::Duration;

use clap::Parser;
use platform::shutdown::ShutdownTrigger;

use crate::TestEnv;

pub struct CommandApiTask {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    trigger: ShutdownTrigger,
    service: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl CommandApiTask {
    /// Starts it on `env`'s database and stream with `flags` added to its arguments.
    pub async fn start(env: &TestEnv, flags: &[&str]) -> CommandApiTask {
        let mut args = vec!["command-api".to_owned()];
        args.extend(env.service_args());
        args.extend(flags.iter().map(|flag| (*flag).to_owned()));
        let config = command_api::Config::try_parse_from(args).expect("command API flags");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let (trigger, stop_service) = platform::shutdown::channel();
        let service = tokio::spawn(command_api::run(config, listener, stop_service));
        CommandApiTask {
            base,
            trigger,
            service,
        }
    }

    /// Stops it gracefully, waiting up to 10 s.
    pub async fn stop(self) {
        self.trigger.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.service).await;
    }
}
