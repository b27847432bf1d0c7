use anyhow::Context;
use clap::Parser;
use query_api::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init(&config.telemetry, "query-api")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    query_api::run(config, listener, platform::shutdown::on_signals()).await
}
