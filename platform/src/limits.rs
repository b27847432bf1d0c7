//! Rate limits per user and per client address (token buckets from `governor`).
//!
//! Two buckets guard each request. The address bucket is taken first, before the token is
//! even parsed, so a flood of forged or expired tokens from one place is cut off without
//! costing a signature check per request. The user bucket is taken once the token is verified
//! (see [`crate::auth::Authenticator`]), so one user cannot starve the others from behind a
//! shared address (an office NAT, the load balancer). Past either, the answer is 429
//! `rate-limited` as problem+json with `Retry-After` in whole seconds.
//!
//! Behind a proxy every request comes from the proxy's address; `--client-address-header`
//! names the header the proxy writes the client's address into (its last entry is taken, the
//! one the proxy appended). Set it only behind a proxy that writes it, or clients choose
//! their own bucket.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use domain::ids::UserId;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::problem::Problem;

/// A sustained rate with the burst allowed above it; `None` when the rate is 0 (no limit).
fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

fn keyed<K: Clone + Eq + std::hash::Hash>(
    (rate, burst): (u32, u32),
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    quota(rate, burst).map(|quota| Arc::new(RateLimiter::keyed(quota)))
}

/// The limits a service applies, from flags or the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitArgs {
    /// Requests per second each user may send, sustained; 0 turns the limit off.
    #[arg(long, env = "SIMPLEPRO_RATE_PER_USER", default_value_t = 100)]
    pub rate_per_user: u32,
    /// Requests a user may send at once above the sustained rate.
    #[arg(long, env = "SIMPLEPRO_RATE_BURST_PER_USER", default_value_t = 500)]
    pub rate_burst_per_user: u32,
    /// Requests per second from one client address, sustained; 0 turns the limit off.
    #[arg(long, env = "SIMPLEPRO_RATE_PER_ADDRESS", default_value_t = 2_000)]
    pub rate_per_address: u32,
    /// Requests one client address may send at once above the sustained rate.
    #[arg(
        long,
        env = "SIMPLEPRO_RATE_BURST_PER_ADDRESS",
        default_value_t = 4_000
    )]
    pub rate_burst_per_address: u32,
    /// Header a trusted proxy writes the client's address into (e.g. `x-forwarded-for`);
    /// unset, the peer address is the client's.
    #[arg(long, env = "SIMPLEPRO_CLIENT_ADDRESS_HEADER")]
    pub client_address_header: Option<HeaderName>,
}

impl RateLimitArgs {
    pub fn limits(&self) -> RateLimits {
        RateLimits::new(
            (self.rate_per_user, self.rate_burst_per_user),
            (self.rate_per_address, self.rate_burst_per_address),
            self.client_address_header.clone(),
        )
    }
}

/// Both limiters of a service; cheap to clone.
#[derive(Clone, Default)]
pub struct RateLimits {
    per_user: Option<Arc<DefaultKeyedRateLimiter<UserId>>>,
    per_address: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    address_header: Option<HeaderName>,
}

impl RateLimits {
    /// No limits (tests of handlers, tools).
    pub fn unlimited() -> Self {
        RateLimits::default()
    }

    /// `per_user` and `per_address` requests per second, each with its burst; a rate of 0
    /// turns that limit off.
    pub fn new(
        per_user: (u32, u32),
        per_address: (u32, u32),
        address_header: Option<HeaderName>,
    ) -> Self {
        RateLimits {
            per_user: keyed(per_user),
            per_address: keyed(per_address),
            address_header,
        }
    }

    /// Takes one request from `user`'s bucket.
    pub fn check_user(&self, user: UserId) -> Result<(), Problem> {
        let Some(limiter) = &self.per_user else {
            return Ok(());
        };
        limiter.check_key(&user).map_err(|not_until| {
            refused("this user", not_until.wait_time_from(limiter.clock().now()))
        })
    }

    /// Takes one request from `address`'s bucket.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Problem> {
        let Some(limiter) = &self.per_address else {
            return Ok(());
        };
        limiter.check_key(&address).map_err(|not_until| {
            refused(
                "this client address",
                not_until.wait_time_from(limiter.clock().now()),
            )
        })
    }

    /// Forgets buckets that are full again, so memory follows the active callers rather than
    /// every caller ever seen. Runs until the process ends.
    pub async fn prune_every(self, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            if let Some(limiter) = &self.per_user {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            if let Some(limiter) = &self.per_address {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    /// The client's address: the proxy's header when configured and present, else the peer.
    fn client_address(&self, request: &axum::extract::Request) -> Option<IpAddr> {
        let forwarded = self.address_header.as_ref().and_then(|name| {
            request
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .next_back()
                .and_then(|last| last.trim().parse::<IpAddr>().ok())
        });
        forwarded.or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip())
        })
    }
}

fn refused(whose: &str, wait: Duration) -> Problem {
    // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Problem::too_many_requests(
        format!("too many requests from {whose}; retry after {seconds} s"),
        seconds.max(1),
    )
}

/// Middleware taking each request from its client address's bucket. Layer it outermost of
/// the routes, so a refused request costs nothing else.
pub async fn limit_by_address(
    State(limits): State<RateLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(address) = limits.client_address(&request) {
        if let Err(problem) = limits.check_address(address) {
            return problem.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    fn app(limits: RateLimits) -> Router {
        Router::new().route("/", get(|| async { "ok" })).layer(
            axum::middleware::from_fn_with_state(limits, limit_by_address),
        )
    }

    fn from(peer: &str, forwarded: Option<&str>) -> Request<Body> {
        let mut request = Request::get("/");
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    #[tokio::test]
    async fn an_address_past_its_burst_gets_429_with_retry_after_and_others_do_not() {
        let app = app(RateLimits::new((0, 0), (1, 3), None));
        for _ in 0..3 {
            let ok = app
                .clone()
                .oneshot(from("10.0.0.1:5000", None))
                .await
                .unwrap();
            assert_eq!(ok.status(), StatusCode::OK);
        }
        let refused = app
            .clone()
            .oneshot(from("10.0.0.1:5001", None))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            refused.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(refused.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            problem["type"],
            "https://simplepro.dev/problems/rate-limited"
        );
        assert_eq!(problem["status"], 429);
        let other = app.oneshot(from("10.0.0.2:5000", None)).await.unwrap();
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn behind_a_proxy_the_address_it_appended_is_the_client() {
        let header = HeaderName::from_static("x-forwarded-for");
        let app = app(RateLimits::new((0, 0), (1, 1), Some(header)));
        let first = from("10.9.9.9:80", Some("203.0.113.9, 198.51.100.1"));
        assert_eq!(app.clone().oneshot(first).await.unwrap().status(), 200);
        // Same proxy, another client: its own bucket.
        let second = from("10.9.9.9:80", Some("198.51.100.2"));
        assert_eq!(app.clone().oneshot(second).await.unwrap().status(), 200);
        let again = from("10.9.9.9:80", Some("1.2.3.4, 198.51.100.1"));
        assert_eq!(app.oneshot(again).await.unwrap().status(), 429);
    }

    #[test]
    fn a_user_past_their_burst_is_refused_and_a_zero_rate_means_no_limit() {
        let limits = RateLimits::new((1, 2), (0, 0), None);
        let user = UserId::from(uuid::Uuid::now_v7());
        assert!(limits.check_user(user).is_ok());
        assert!(limits.check_user(user).is_ok());
        let refused = limits.check_user(user).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(limits
            .check_user(UserId::from(uuid::Uuid::now_v7()))
            .is_ok());
        let unlimited = RateLimits::unlimited();
        for _ in 0..1_000 {
            assert!(unlimited.check_user(user).is_ok());
            assert!(unlimited.check_address([127, 0, 0, 1].into()).is_ok());
        }
    }
}
