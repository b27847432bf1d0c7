//! Bearer JWTs (HS256). The subject is the user id; the role decides what the caller may do.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use domain::enums::Role;
use domain::ids::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::problem::Problem;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub name: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
}

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

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// Signs a token for `user` valid for `ttl`.
    pub fn mint(
        &self,
        user: &Caller,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let claims = Claims {
            sub: user.user_id.to_string(),
            name: user.name.clone(),
            role: user.role,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Caller, Problem> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| Problem::unauthorized(format!("invalid bearer token: {e}")))?;
        let user_id =
            data.claims.sub.parse().map_err(|_| {
                Problem::unauthorized("invalid bearer token: `sub` is not a user id")
            })?;
        Ok(Caller {
            user_id,
            name: data.claims.name,
            role: data.claims.role,
        })
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<JwtKeys>: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Arc::<JwtKeys>::from_ref(state);
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
        keys.verify(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&Secret::new("a-test-secret-of-enough-length"))
    }

    fn caller() -> Caller {
        Caller {
            user_id: UserId::from(uuid::Uuid::now_v7()),
            name: "Dee Spatcher".into(),
            role: Role::Dispatcher,
        }
    }

    #[test]
    fn a_minted_token_verifies_to_the_same_caller() {
        let keys = keys();
        let user = caller();
        let token = keys.mint(&user, Duration::hours(1)).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), user);
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let keys = keys();
        let expired = keys.mint(&caller(), Duration::hours(-2)).unwrap();
        assert_eq!(keys.verify(&expired).unwrap_err().status, 401);
        let other = JwtKeys::new(&Secret::new("another-secret-of-enough-length"));
        let foreign = other.mint(&caller(), Duration::hours(1)).unwrap();
        assert_eq!(keys.verify(&foreign).unwrap_err().status, 401);
    }
}
