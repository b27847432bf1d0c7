use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = bench::cli::Cli::parse();
    let _telemetry = platform::telemetry::init(
        &platform::config::TelemetryArgs {
            log_format: platform::config::LogFormat::Human,
            log_filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info,mongodb=warn".into()),
            otlp_endpoint: None,
        },
        "bench",
    )?;
    bench::cli::main(cli).await
}
