//! Signing and checking bearer JWTs, with several keys at once so keys rotate without
//! downtime.
//!
//! Every token must carry `sub` (the user id), `exp`, `iss` and `aud`, and is refused before
//! its `nbf`; the clock skew allowed is [`LEEWAY_SECONDS`]. The header's `kid` picks the
//! verification key; a token without `kid` is checked with the HS256 secret
//! (`SIMPLEPRO_JWT_SECRET`). Each key accepts exactly its own algorithm, so a token cannot
//! choose a weaker one (`alg: none` is never accepted). Supported: HS256 (shared secret),
//! EdDSA (Ed25519) and RS256 (public keys in PEM files; services never need a private key).
//!
//! Rotation: add the new key to `SIMPLEPRO_JWT_KEYS` on every service, switch the token
//! issuer to sign with it (`SIMPLEPRO_JWT_SIGNING_KEY`), and drop the old key once the
//! tokens it signed have expired (docs/runbook.md).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{Duration, Utc};
use domain::enums::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::config::Secret;
use crate::problem::Problem;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;
/// `iss` of the tokens SimplePro signs and accepts unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "simplepro";
/// `aud` of the tokens SimplePro signs and accepts unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "simplepro-api";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub name: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
}

/// One configured key: `<kid>=<ALG>:<path>`, e.g. `2026-12=EdDSA:/etc/simplepro/jwt.pub.pem`.
/// The file holds a PEM key for EdDSA and RS256 (public to verify, private to sign), or the
/// shared secret for HS256.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub kid: String,
    pub algorithm: Algorithm,
    pub path: std::path::PathBuf,
}

impl fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The path, never the key.
        write!(
            f,
            "{}={:?}:{}",
            self.kid,
            self.algorithm,
            self.path.display()
        )
    }
}

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let shape = "expected <kid>=<HS256|EdDSA|RS256>:<path>";
        let (kid, rest) = raw.split_once('=').ok_or(shape)?;
        let (algorithm, path) = rest.split_once(':').ok_or(shape)?;
        let algorithm = match algorithm {
            "HS256" => Algorithm::HS256,
            "EdDSA" => Algorithm::EdDSA,
            "RS256" => Algorithm::RS256,
            other => return Err(format!("unsupported algorithm `{other}`; {shape}")),
        };
        let kid = kid.trim();
        if kid.is_empty() || path.trim().is_empty() {
            return Err(shape.to_owned());
        }
        Ok(KeySpec {
            kid: kid.to_owned(),
            algorithm,
            path: path.trim().into(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading JWT key `{kid}` from {path}: {source}")]
    Read {
        kid: String,
        path: String,
        source: std::io::Error,
    },
    #[error("JWT key `{kid}` is not a valid {algorithm:?} key: {source}")]
    Invalid {
        kid: String,
        algorithm: Algorithm,
        source: jsonwebtoken::errors::Error,
    },
    #[error("JWT key id `{0}` is configured twice")]
    DuplicateKid(String),
}

impl KeySpec {
    fn material(&self) -> Result<Vec<u8>, KeyError> {
        std::fs::read(&self.path).map_err(|source| KeyError::Read {
            kid: self.kid.clone(),
            path: self.path.display().to_string(),
            source,
        })
    }

    fn invalid(&self, source: jsonwebtoken::errors::Error) -> KeyError {
        KeyError::Invalid {
            kid: self.kid.clone(),
            algorithm: self.algorithm,
            source,
        }
    }

    fn decoding(&self) -> Result<DecodingKey, KeyError> {
        let material = self.material()?;
        match self.algorithm {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&material).map_err(|e| self.invalid(e)),
            Algorithm::RS256 => DecodingKey::from_rsa_pem(&material).map_err(|e| self.invalid(e)),
            _ => Ok(DecodingKey::from_secret(trim_secret(&material))),
        }
    }

    fn encoding(&self) -> Result<EncodingKey, KeyError> {
        let material = self.material()?;
        match self.algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&material).map_err(|e| self.invalid(e)),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&material).map_err(|e| self.invalid(e)),
            _ => Ok(EncodingKey::from_secret(trim_secret(&material))),
        }
    }
}

/// A secret file's content without the line break an editor adds.
fn trim_secret(material: &[u8]) -> &[u8] {
    material.strip_suffix(b"\n").unwrap_or(material)
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// The keys a process signs and checks tokens with.
pub struct JwtKeys {
    signing: (Option<String>, Algorithm, EncodingKey),
    /// Tokens without `kid`: the HS256 secret.
    unnamed: Verifier,
    named: HashMap<String, Verifier>,
    issuer: String,
    audience: String,
}

fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation
}

impl JwtKeys {
    /// HS256 with `secret` only, the default issuer and audience.
    pub fn new(secret: &Secret) -> Self {
        Self::hs256(secret, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
    }

    fn hs256(secret: &Secret, issuer: &str, audience: &str) -> Self {
        let bytes = secret.expose().as_bytes();
        JwtKeys {
            signing: (None, Algorithm::HS256, EncodingKey::from_secret(bytes)),
            unnamed: Verifier {
                key: DecodingKey::from_secret(bytes),
                validation: validation(Algorithm::HS256, issuer, audience),
            },
            named: HashMap::new(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// The secret plus the named `verify` keys; tokens are signed with `signing` when given,
    /// else with the secret.
    pub fn configured(
        secret: &Secret,
        verify: &[KeySpec],
        signing: Option<&KeySpec>,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, KeyError> {
        let mut keys = Self::hs256(secret, issuer, audience);
        for spec in verify {
            let verifier = Verifier {
                key: spec.decoding()?,
                validation: validation(spec.algorithm, issuer, audience),
            };
            if keys.named.insert(spec.kid.clone(), verifier).is_some() {
                return Err(KeyError::DuplicateKid(spec.kid.clone()));
            }
        }
        if let Some(spec) = signing {
            keys.signing = (Some(spec.kid.clone()), spec.algorithm, spec.encoding()?);
        }
        Ok(keys)
    }

    /// Signs a token for `user` valid for `ttl` from now.
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
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            nbf: Some(now.timestamp()),
            exp: (now + ttl).timestamp(),
        };
        let (kid, algorithm, key) = &self.signing;
        let mut header = Header::new(*algorithm);
        header.kid = kid.clone();
        jsonwebtoken::encode(&header, &claims, key)
    }

    /// The caller a token names, once its key, signature and claims check out.
    pub fn verify(&self, token: &str) -> Result<Caller, Problem> {
        let refuse =
            |reason: String| Problem::unauthorized(format!("invalid bearer token: {reason}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(e.to_string()))?;
        let verifier = match &header.kid {
            None => &self.unnamed,
            Some(kid) => self
                .named
                .get(kid)
                .ok_or_else(|| refuse(format!("unknown key id `{kid}`")))?,
        };
        let data = jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)
            .map_err(|e| refuse(e.to_string()))?;
        let user_id = data
            .claims
            .sub
            .parse()
            .map_err(|_| refuse("`sub` is not a user id".to_owned()))?;
        Ok(Caller {
            user_id,
            name: data.claims.name,
            role: data.claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use domain::ids::UserId;
    use serde_json::json;

    use super::*;

    /// An Ed25519 key pair in PEM (generated for these tests only).
    const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIErNsimfunAvolA/C8q52dCHp4GNrVkYYlFIalMEWm/Q\n-----END PRIVATE KEY-----\n";
    const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA7aaN1h63nwj0+rFFvslV6d7SolsT/m/bRNJCE3dYvTM=\n-----END PUBLIC KEY-----\n";

    fn secret() -> Secret {
        Secret::new("a-test-secret-of-enough-length")
    }

    fn caller() -> Caller {
        Caller {
            user_id: UserId::from(uuid::Uuid::now_v7()),
            name: "Dee Spatcher".into(),
            role: Role::Dispatcher,
        }
    }

    fn file(dir: &std::path::Path, name: &str, content: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// A token signed with `secret` over hand-written claims and header.
    fn forged(header: serde_json::Value, claims: serde_json::Value, secret: &str) -> String {
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let key = EncodingKey::from_secret(secret.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{signing_input}.{signature}")
    }

    fn claims(overrides: serde_json::Value) -> serde_json::Value {
        let now = Utc::now().timestamp();
        let mut claims = json!({
            "sub": uuid::Uuid::now_v7().to_string(), "name": "N", "role": "admin",
            "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE, "iat": now, "exp": now + 600,
        });
        for (key, value) in overrides.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    }

    #[test]
    fn a_minted_token_verifies_to_the_same_caller() {
        let keys = JwtKeys::new(&secret());
        let user = caller();
        let token = keys.mint(&user, Duration::hours(1)).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), user);
    }

    #[test]
    fn expired_foreign_and_algorithm_none_tokens_are_refused() {
        let keys = JwtKeys::new(&secret());
        let expired = keys.mint(&caller(), Duration::hours(-2)).unwrap();
        assert_eq!(keys.verify(&expired).unwrap_err().status, 401);
        let other = JwtKeys::new(&Secret::new("another-secret-of-enough-length"));
        let foreign = other.mint(&caller(), Duration::hours(1)).unwrap();
        assert_eq!(keys.verify(&foreign).unwrap_err().status, 401);
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none"})),
            b64(claims(json!({})))
        );
        assert_eq!(keys.verify(&none).unwrap_err().status, 401);
    }

    #[test]
    fn issuer_audience_and_not_before_are_checked() {
        let keys = JwtKeys::new(&secret());
        let secret = secret();
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let good = forged(header.clone(), claims(json!({})), secret.expose());
        assert!(keys.verify(&good).is_ok());
        for (case, overrides) in [
            ("another issuer", json!({"iss": "someone-else"})),
            ("another audience", json!({"aud": "another-api"})),
            ("no issuer", json!({"iss": null})),
            ("no audience", json!({"aud": null})),
            (
                "not yet valid",
                json!({"nbf": Utc::now().timestamp() + 3_600}),
            ),
            ("no expiry", json!({"exp": null})),
        ] {
            let token = forged(header.clone(), claims(overrides), secret.expose());
            let refused = keys.verify(&token).expect_err(case);
            assert_eq!(refused.status, 401, "{case}");
        }
        // Within the skew allowed, `nbf` a little ahead passes.
        let skewed = claims(json!({"nbf": Utc::now().timestamp() + 5}));
        assert!(keys
            .verify(&forged(header, skewed, secret.expose()))
            .is_ok());
    }

    #[test]
    fn keys_rotate_by_kid_and_eddsa_tokens_verify_with_the_public_key() {
        let dir = std::env::temp_dir().join(format!("simplepro-jwt-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let private = file(&dir, "new.pem", ED_PRIVATE);
        let public = file(&dir, "new.pub.pem", ED_PUBLIC);
        let old_secret = file(&dir, "old.secret", "the-old-shared-secret-value\n");
        let spec = |raw: String| raw.parse::<KeySpec>().unwrap();
        let issuer = JwtKeys::configured(
            &secret(),
            &[],
            Some(&spec(format!("2026-12=EdDSA:{}", private.display()))),
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
        )
        .unwrap();
        let old_issuer = JwtKeys::configured(
            &secret(),
            &[],
            Some(&spec(format!("2026-06=HS256:{}", old_secret.display()))),
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
        )
        .unwrap();
        // A service in the middle of a rotation accepts both keys and the unnamed secret.
        let service = JwtKeys::configured(
            &secret(),
            &[
                spec(format!("2026-12=EdDSA:{}", public.display())),
                spec(format!("2026-06=HS256:{}", old_secret.display())),
            ],
            None,
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
        )
        .unwrap();
        let user = caller();
        let new_token = issuer.mint(&user, Duration::hours(1)).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new_token).unwrap().alg,
            Algorithm::EdDSA
        );
        assert_eq!(service.verify(&new_token).unwrap(), user);
        let old_token = old_issuer.mint(&user, Duration::hours(1)).unwrap();
        assert_eq!(service.verify(&old_token).unwrap(), user);
        let unnamed = JwtKeys::new(&secret())
            .mint(&user, Duration::hours(1))
            .unwrap();
        assert_eq!(service.verify(&unnamed).unwrap(), user);

        // Once the old key is dropped, its tokens are refused by name.
        let rotated = JwtKeys::configured(
            &secret(),
            &[spec(format!("2026-12=EdDSA:{}", public.display()))],
            None,
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
        )
        .unwrap();
        let refused = rotated.verify(&old_token).unwrap_err();
        assert!(
            refused.detail.contains("unknown key id `2026-06`"),
            "{}",
            refused.detail
        );
        // A token naming a key with another algorithm than the key's is refused.
        let confused = forged(
            json!({"alg": "HS256", "kid": "2026-12"}),
            claims(json!({})),
            ED_PUBLIC,
        );
        assert_eq!(rotated.verify(&confused).unwrap_err().status, 401);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_specs_parse_and_never_print_key_material() {
        let spec: KeySpec = "k1=RS256:/etc/keys/k1.pem".parse().unwrap();
        assert_eq!(spec.algorithm, Algorithm::RS256);
        assert_eq!(format!("{spec:?}"), "k1=RS256:/etc/keys/k1.pem");
        for bad in ["k1", "k1=none:/x", "=HS256:/x", "k1=HS256:", "k1=HS512:/x"] {
            assert!(bad.parse::<KeySpec>().is_err(), "{bad}");
        }
    }
}
