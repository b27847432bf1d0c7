//! `history`: parses the command line and runs it; Ctrl-C or SIGTERM drops the running
//! command (which removes an unfinished export file) and exits with 130.

use clap::Parser;
use history::cli::{run, Cli, Outcome};
use history::HistoryError;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let telemetry = match platform::telemetry::init(&cli.telemetry, "history") {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("history: {error}");
            std::process::exit(2);
        }
    };
    let shutdown = platform::shutdown::on_signals();
    let result = tokio::select! {
        result = run(cli) => result,
        () = shutdown.wait() => Err(HistoryError::Interrupted),
    };
    let code = match result {
        Ok(Outcome::Ok) => 0,
        Ok(Outcome::Violations) => 1,
        Err(error) => {
            eprintln!("history: {error}");
            error.exit_code()
        }
    };
    // Exiting skips destructors: send the buffered spans first.
    drop(telemetry);
    std::process::exit(code);
}
