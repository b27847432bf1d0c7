//! The HTTP/1.1 server loop: accepting connections with limits on how slowly and how much a
//! client may send before its request is even routed, and graceful shutdown.
//!
//! `axum::serve` takes no configuration and runs hyper without a timer, so a client that
//! sends its headers one byte a minute holds a connection forever. Here every connection has
//! a deadline for its request head and a bound on the head's size and header count; the
//! request timeout of [`crate::http::edge`] bounds the rest (body and handler).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::shutdown::Shutdown;

/// What a client may do before its request reaches the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's line and headers; the connection is
    /// closed after it.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more gets 431.
    pub max_headers: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
        }
    }
}

/// Serves until `shutdown`, then lets in-flight requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    grace: Duration,
) -> std::io::Result<()> {
    serve_with(
        listener,
        router,
        shutdown,
        grace,
        ConnectionLimits::default(),
    )
    .await
}

/// [`serve`] with explicit connection limits.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    grace: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's read buffer holds the head; it refuses a smaller one than 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8 * 1024))
        .max_headers(limits.max_headers);
    let mut connections = JoinSet::new();
    let stopping = shutdown.clone().wait();
    let mut stopping = std::pin::pin!(stopping);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = http.clone();
                    let (router, shutdown) = (router.clone(), shutdown.clone());
                    connections.spawn(serve_connection(connection, stream, peer, router, shutdown));
                }
                // Out of file descriptors and the like: the listener recovers once some close.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stopping => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight requests did not finish within {grace:?}; closing");
        connections.abort_all();
    }
    Ok(())
}

/// One client connection: its requests carry the peer address (for the per-address rate
/// limit, `crate::limits`), and shutdown lets the request in flight finish first.
async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: Shutdown,
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move { router.oneshot(request).await }
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        }
        () = shutdown.wait() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: ConnectionLimits) -> (SocketAddr, crate::shutdown::ShutdownTrigger) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let (trigger, shutdown) = crate::shutdown::channel();
        tokio::spawn(serve_with(
            listener,
            router,
            shutdown,
            Duration::from_secs(1),
            limits,
        ));
        (address, trigger)
    }

    /// Everything the server sends until it closes the connection (or 5 s pass).
    async fn answer(stream: &mut tokio::net::TcpStream) -> String {
        let mut bytes = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes)).await;
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn a_request_is_routed_with_its_peer_address() {
        let (address, _trigger) = start(ConnectionLimits::default()).await;
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = answer(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.1"), "{answer}");
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_disconnected() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        };
        let (address, _trigger) = start(limits).await;
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let answer = answer(&mut stream).await;
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(3),
            "held for {waited:?}: {answer}"
        );
        assert!(!answer.contains("200 OK"), "{answer}");
    }

    #[tokio::test]
    async fn oversized_or_too_many_headers_get_431() {
        let (address, _trigger) = start(ConnectionLimits::default()).await;
        let huge = format!(
            "GET /peer HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
        let many = format!("GET /peer HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        for request in [huge, many] {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let _ = stream.write_all(request.as_bytes()).await;
            let answer = answer(&mut stream).await;
            assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        }
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_returns() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let server = tokio::spawn(serve(
            listener,
            Router::new(),
            shutdown,
            Duration::from_secs(1),
        ));
        trigger.trigger();
        let ended = tokio::time::timeout(Duration::from_secs(3), server).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    }
}
