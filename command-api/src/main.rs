use anyhow::Context;
use clap::Parser;
use command_api::{Command, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(Command::MintToken {
        user_id,
        name,
        role,
        ttl_hours,
    }) = &config.command
    {
        println!(
            "{}",
            command_api::mint_token(&config, *user_id, name, *role, *ttl_hours)?
        );
        return Ok(());
    }
    let _telemetry = platform::telemetry::init(&config.telemetry, "command-api")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    command_api::run(config, listener, platform::shutdown::on_signals()).await
}
