//! Server-sent event streams leave nothing behind: 10,000 streams of the query API (its
//! binary, a process of its own so its memory is its own) are opened and dropped in waves,
//! and its resident memory and runtime tasks come back to where they were (±10 %).

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::enums::Role;
use platform::auth::{Caller, JwtKeys};
use platform::config::Secret;
use tests::{free_port, ServiceProcess, TestEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const JWT_SECRET: &str = "live-connections-secret-0123456789";
const WAVES: usize = 10;
const PER_WAVE: usize = 1_000;
/// Streams opened at once within a wave.
const AT_ONCE: usize = 250;

fn query_api_binary() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("debug/query-api")
}

/// What the service says of itself on `/metrics`: (resident bytes, alive tasks, open streams).
async fn footprint(http: &reqwest::Client, base: &str) -> (f64, f64, f64) {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics text");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text");
    let gauge = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .and_then(|s| match s.value {
                prometheus_parse::Value::Gauge(v) => Some(v),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    (
        gauge("simplepro_process_resident_memory_bytes"),
        gauge("simplepro_runtime_alive_tasks"),
        gauge("simplepro_query_api_live_streams"),
    )
}

/// Opens a stream on a connection of its own, reads its first update, and drops it.
async fn open_read_drop(address: std::net::SocketAddr, token: &str) {
    let mut socket = TcpStream::connect(address).await.expect("connect");
    let request = format!(
        "GET /v1/live/me/unread-count HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: update") {
        let read = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buffer))
            .await
            .expect("the first update in time")
            .expect("read");
        assert!(read > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..read]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}

async fn wave(address: std::net::SocketAddr, tokens: &[String]) {
    for batch in tokens.chunks(AT_ONCE) {
        let opened = batch.iter().map(|token| open_read_drop(address, token));
        futures::future::join_all(opened).await;
    }
}

/// Waits until the service counts no open stream.
async fn until_all_closed(http: &reqwest::Client, base: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while footprint(http, base).await.2 > 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "streams stay open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streams_opened_and_dropped_leave_memory_and_tasks_as_they_were() {
    let binary = query_api_binary();
    if !binary.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: build the binaries first",
            binary.display()
        );
        eprintln!(
            "skipped: {} is not built (cargo build --bins)",
            binary.display()
        );
        return;
    }
    let env = TestEnv::new().await;
    let port = free_port();
    let mut args = env.service_args();
    args.extend(["--listen".to_owned(), format!("127.0.0.1:{port}")]);
    let settings = [
        ("SIMPLEPRO_JWT_SECRET", JWT_SECRET),
        ("SIMPLEPRO_RATE_PER_USER", "0"),
        ("SIMPLEPRO_RATE_PER_ADDRESS", "0"),
        ("SIMPLEPRO_LIVE_MAX_STREAMS", "5000"),
        ("SIMPLEPRO_LIVE_MAX_STREAMS_PER_USER", "5000"),
        ("RUST_LOG", "warn"),
    ];
    let log = std::env::temp_dir().join(format!("live-connections-{port}.log"));
    let _service = ServiceProcess::start(
        "query-api",
        &binary,
        args,
        settings.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec(),
        &log,
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready_by = tokio::time::Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            tokio::time::Instant::now() < ready_by,
            "not ready; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys = JwtKeys::new(&Secret::new(JWT_SECRET));
    // A hundred users, so that the per-user path is exercised as well.
    let tokens: Vec<String> = (0..PER_WAVE)
        .map(|i| {
            let caller = Caller {
                user_id: Uuid::from_u128(
                    0x0190_f000_0000_7000_8000_0000_0000_0000 + (i % 100) as u128,
                )
                .into(),
                name: format!("Reader {i}"),
                role: Role::Dispatcher,
            };
            keys.mint(&caller, chrono::Duration::hours(1))
                .expect("a token")
        })
        .collect();
    let address = format!("127.0.0.1:{port}").parse().expect("an address");

    // Two waves first: the allocator and the runtime take what a wave needs once.
    for _ in 0..2 {
        wave(address, &tokens).await;
        until_all_closed(&http, &base).await;
    }
    let (rss_before, tasks_before, _) = footprint(&http, &base).await;
    for n in 0..WAVES {
        wave(address, &tokens).await;
        until_all_closed(&http, &base).await;
        let (rss, tasks, _) = footprint(&http, &base).await;
        println!(
            "wave {n}: RSS {:.1} MiB, alive tasks {tasks}",
            rss / 1_048_576.0
        );
    }
    // Tasks of closed streams end a moment after their connections do.
    let settled_by = tokio::time::Instant::now() + Duration::from_secs(10);
    let (rss_after, tasks_after) = loop {
        let (rss, tasks, _) = footprint(&http, &base).await;
        if tasks <= tasks_before + (tasks_before * 0.10).max(1.0)
            || tokio::time::Instant::now() >= settled_by
        {
            break (rss, tasks);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "{} streams: RSS {:.1} → {:.1} MiB, alive tasks {tasks_before} → {tasks_after}",
        WAVES * PER_WAVE,
        rss_before / 1_048_576.0,
        rss_after / 1_048_576.0
    );
    assert!(
        (rss_after - rss_before).abs() <= rss_before * 0.10,
        "RSS {rss_before} → {rss_after}"
    );
    assert!(
        (tasks_after - tasks_before).abs() <= (tasks_before * 0.10).max(1.0),
        "alive tasks {tasks_before} → {tasks_after}"
    );
}
