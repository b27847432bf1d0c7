//! The operations page in a real browser: headless Chromium, driven by Playwright
//! (`tests/browser/page.py`), against the whole system. It signs in, sees commands posted
//! through the command API appear without a reload within 1 s, checks the as-of view against
//! the API, and checks that another user sees none of the first one's inbox. Screenshots are
//! kept under `target/browser/`.
//!
//! It is a test binary of its own, so that it runs alone: the 1 s bound is the page's, not
//! that of a machine busy with the integration tests that run eight at a time.
//!
//! `./dev test` installs the browser and the driver (`./dev install-browser`); the Python it
//! runs is `SIMPLEPRO_BROWSER_PYTHON` (default `.local/venv-browser/bin/python`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use domain::enums::Role;
use serde_json::json;
use tests::bodies;

/// The end-to-end tests' system: the services in this process on a `TestEnv`.
#[allow(dead_code, reason = "the page's test uses a few of the helpers")]
#[path = "integration/end_to_end/system.rs"]
mod system;

use system::System;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf()
}

fn python() -> PathBuf {
    let python = std::env::var_os("SIMPLEPRO_BROWSER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".local/venv-browser/bin/python"));
    assert!(
        python.exists(),
        "no Python with Playwright at {}: `./dev install-browser` installs it (with Chromium)",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_updates_live_shows_the_past_and_keeps_each_inbox_private() {
    let python = python();
    let system = System::start().await;
    let admin = system.first_admin().await;
    let peer = system
        .member(&admin, "Dee Dispatch", Role::Dispatcher)
        .await;
    let outsider = system.member(&admin, "Otto Outside", Role::Sales).await;
    let customer = system
        .post(
            "/v1/customers",
            &admin.token,
            bodies::customer("Pia", "Page", "pia.page@example.com", "+1 555 010 0077"),
        )
        .await;
    let crew_member = system
        .post(
            "/v1/crew-members",
            &admin.token,
            json!({"name": "Carl Crew"}),
        )
        .await;
    let thread = system
        .post(
            "/v1/threads",
            &admin.token,
            json!({"kind": "group", "title": "Piano move", "participants": [admin.id, peer.id]}),
        )
        .await;
    let (command, query) = system.base_urls();
    let screenshots = workspace().join("target/browser");
    // Last run's screenshots must not stand in for this run's.
    let _ = std::fs::remove_dir_all(&screenshots);

    let run = tokio::process::Command::new(&python)
        .arg(workspace().join("tests/browser/page.py"))
        .env("SIMPLEPRO_QUERY_URL", query)
        .env("SIMPLEPRO_COMMAND_URL", command)
        .env("SIMPLEPRO_ADMIN_TOKEN", &admin.token)
        .env("SIMPLEPRO_PEER_TOKEN", &peer.token)
        .env("SIMPLEPRO_OUTSIDER_TOKEN", &outsider.token)
        .env("SIMPLEPRO_CUSTOMER_ID", customer.id.to_string())
        .env("SIMPLEPRO_CREW_MEMBER_ID", crew_member.id.to_string())
        .env("SIMPLEPRO_THREAD_ID", thread.id.to_string())
        .env("SIMPLEPRO_SECRET", "the piano goes to the third floor")
        .env("SIMPLEPRO_SCREENSHOTS", &screenshots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser run ends within 3 minutes")
        .expect("the browser run starts");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "the browser run failed:\n{report}");
    assert!(report.contains("the page passed"), "{report}");
    for shot in ["1-live", "3-outsider-phone"] {
        let path = screenshots.join(format!("{shot}.png"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is missing or empty", path.display());
    }
    system.stop().await;
}
