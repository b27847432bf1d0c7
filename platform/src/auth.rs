//! The caller of a request: a bearer JWT ([`crate::jwt`]) names the user, and the role they
//! may act in is the one the user's own events give now ([`crate::accounts`]).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use domain::enums::Role;
use domain::ids::UserId;

use crate::accounts::Accounts;
pub use crate::jwt::JwtKeys;
use crate::limits::RateLimits;
use crate::problem::Problem;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn is(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role)
    }

    /// `Ok` when the caller has one of `roles`, else a 403 naming them.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), Problem> {
        if self.is(roles) {
            Ok(())
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(Problem::forbidden(format!(
                "role `{}` may not {action}; allowed: {}",
                self.role,
                allowed.join(", ")
            )))
        }
    }
}

/// What a service checks a caller with: the token's signature and claims, then the user's
/// current standing ([`Accounts`]), so a deactivated user's unexpired token is refused and a
/// changed role applies at once.
#[derive(Clone)]
pub struct Authenticator {
    pub keys: Arc<JwtKeys>,
    pub accounts: Accounts,
    pub limits: RateLimits,
}

impl Authenticator {
    pub fn new(keys: JwtKeys, accounts: Accounts, limits: RateLimits) -> Self {
        Authenticator {
            keys: Arc::new(keys),
            accounts,
            limits,
        }
    }

    /// The caller a bearer token names, with the role they hold now; one request taken from
    /// their rate limit.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, Problem> {
        let mut caller = self.keys.verify(token)?;
        self.limits.check_user(caller.user_id)?;
        caller.role = self
            .accounts
            .current_role(caller.user_id, caller.role)
            .await?;
        Ok(caller)
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = Authenticator::from_ref(state);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("missing Authorization: Bearer <token> header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        authenticator.authenticate(token).await
    }
}
