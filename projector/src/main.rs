use anyhow::Context;
use clap::Parser;
use projector::{Command, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init(&config.telemetry, "projector")?;
    match &config.command {
        Some(Command::Rebuild(args)) => {
            let reports = projector::rebuild(&config, args).await?;
            let mut failed = false;
            for report in &reports {
                println!(
                    "{}: generation {} built to position {} in {:.1} s ({:.0} events/s){}",
                    report.model,
                    report.generation,
                    report.position,
                    report.seconds,
                    report.events_per_second,
                    if report.switched {
                        ", switched"
                    } else {
                        ", NOT switched"
                    }
                );
                if let Some(verify) = &report.verify {
                    println!(
                        "  verify: {} equal, {} different, {} changed since (skipped)",
                        verify.equal, verify.different, verify.skipped
                    );
                    for example in &verify.examples {
                        println!("    differs: {example}");
                    }
                    failed |= verify.different > 0;
                }
            }
            if failed {
                anyhow::bail!("the rebuilt read models differ from the live ones");
            }
            Ok(())
        }
        None => {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            tracing::info!(listen = %config.listen, "projector listening");
            projector::run(config, listener, platform::shutdown::on_signals()).await
        }
    }
}
