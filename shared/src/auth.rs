//! JWT claims and their verification (API.md §2).
//!
//! One [`TokenVerifier`] per process, built from configuration: an HS256 secret, or a PEM public
//! key whose type picks exactly one algorithm (RS256, ES256 or EdDSA). Tokens of any other
//! algorithm, `alg: none` included, are refused before their signature is looked at.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, ErrorCode};

/// Clock leeway allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An agent; `sub` is its id.
    Agent,
    /// The escalation engine.
    Escalation,
    /// The payroll system.
    Payroll,
    /// An operator: may use everything on the dispatcher.
    Admin,
}

impl Role {
    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "escalation" => Some(Self::Escalation),
            "payroll" => Some(Self::Payroll),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// The claims we read. `aud`, `iss` and `nbf` are checked by the validation itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Agent id or calling service.
    pub sub: String,
    /// Role name; an unknown role verifies but is allowed nothing.
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

impl Claims {
    /// The role, if it is one we know.
    pub fn role(&self) -> Option<Role> {
        Role::parse(&self.role)
    }
}

/// How tokens are checked, from configuration.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// HS256 with a shared secret.
    Secret(String),
    /// A PEM public key (RSA, EC P-256 or Ed25519).
    PublicKeyPem(Vec<u8>),
}

/// Verifies bearer tokens.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds a verifier; fails if the key cannot be read as any supported type.
    pub fn new(source: &KeySource, audience: &str, issuer: Option<&str>) -> Result<Self, String> {
        let (key, algorithm) = match source {
            KeySource::Secret(secret) => {
                if secret.is_empty() {
                    return Err("must not be empty".into());
                }
                (
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            KeySource::PublicKeyPem(pem) => {
                if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                    (key, Algorithm::ES256)
                } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
                    (key, Algorithm::EdDSA)
                } else {
                    return Err("not a PEM RSA, EC (P-256) or Ed25519 public key".into());
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        let mut required = vec!["exp", "aud", "sub"];
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Self { key, validation })
    }

    /// Checks a token and returns its claims, or the 401 to answer with.
    pub fn verify(&self, token: &str) -> Result<Claims, ClientError> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
                    ErrorKind::InvalidAudience => "the token's audience is not ours".to_owned(),
                    ErrorKind::InvalidIssuer => "the token's issuer is not accepted".to_owned(),
                    ErrorKind::InvalidSignature => "the token's signature is wrong".to_owned(),
                    ErrorKind::InvalidAlgorithm => {
                        "the token's algorithm is not accepted".to_owned()
                    }
                    ErrorKind::MissingRequiredClaim(c) => format!("the token lacks the {c} claim"),
                    _ => format!("the token cannot be read: {e}"),
                };
                ClientError::new(ErrorCode::InvalidToken, why)
            })
    }
}

/// Signs an HS256 token: for tests, the development script and `dispatcher mint-token`.
pub fn mint_hs256(secret: &str, sub: &str, role: &str, audience: &str, ttl_secs: i64) -> String {
    #[derive(Serialize)]
    struct Full<'a> {
        sub: &'a str,
        role: &'a str,
        aud: &'a str,
        exp: i64,
        iat: i64,
    }
    let now = chrono::Utc::now().timestamp();
    let claims = Full {
        sub,
        role,
        aud: audience,
        exp: now + ttl_secs,
        iat: now,
    };
    // HS256 signing with any byte string as key cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sign(secret: &str, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("HS256 signs")
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(&KeySource::Secret("s3cret".into()), "dispatch", None)
            .expect("a secret is a key")
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_good_token_verifies() {
        let t = mint_hs256("s3cret", "a-1", "agent", "dispatch", 60);
        let c = verifier().verify(&t).expect("valid");
        assert_eq!(c.sub, "a-1");
        assert_eq!(c.role(), Some(Role::Agent));
    }

    #[test]
    fn expired_wrong_audience_wrong_key_are_refused() {
        let v = verifier();
        let expired = sign(
            "s3cret",
            json!({"sub":"a","role":"agent","aud":"dispatch","exp": now() - 31 - 5}),
        );
        assert_eq!(
            v.verify(&expired).expect_err("expired").code,
            ErrorCode::InvalidToken
        );
        let within_leeway = sign(
            "s3cret",
            json!({"sub":"a","role":"agent","aud":"dispatch","exp": now() - 10}),
        );
        assert!(v.verify(&within_leeway).is_ok());
        let aud = sign(
            "s3cret",
            json!({"sub":"a","role":"agent","aud":"other","exp": now() + 60}),
        );
        assert!(v.verify(&aud).is_err());
        let aud_list = sign(
            "s3cret",
            json!({"sub":"a","role":"agent","aud":["other","dispatch"],"exp": now() + 60}),
        );
        assert!(v.verify(&aud_list).is_ok());
        let no_aud = sign(
            "s3cret",
            json!({"sub":"a","role":"agent","exp": now() + 60}),
        );
        assert!(v.verify(&no_aud).is_err());
        let wrong_key = sign(
            "other",
            json!({"sub":"a","role":"agent","aud":"dispatch","exp": now() + 60}),
        );
        assert!(v.verify(&wrong_key).is_err());
        let future = sign(
            "s3cret",
            json!({"sub":"a","role":"agent","aud":"dispatch","exp": now() + 600, "nbf": now() + 300}),
        );
        assert!(v.verify(&future).is_err());
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        use base64_like::encode;
        let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = encode(
            format!(
                r#"{{"sub":"a","role":"admin","aud":"dispatch","exp":{}}}"#,
                now() + 60
            )
            .as_bytes(),
        );
        let none = format!("{header}.{body}.");
        assert!(verifier().verify(&none).is_err());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &json!({"sub":"a","role":"agent","aud":"dispatch","exp": now() + 60}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .expect("signs");
        assert!(verifier().verify(&hs512).is_err());
    }

    #[test]
    fn issuer_is_checked_when_configured() {
        let v = TokenVerifier::new(&KeySource::Secret("s3cret".into()), "dispatch", Some("idp"))
            .expect("key");
        let good = sign(
            "s3cret",
            json!({"sub":"a","role":"agent","aud":"dispatch","iss":"idp","exp": now() + 60}),
        );
        assert!(v.verify(&good).is_ok());
        let bad = sign(
            "s3cret",
            json!({"sub":"a","role":"agent","aud":"dispatch","iss":"evil","exp": now() + 60}),
        );
        assert!(v.verify(&bad).is_err());
    }

    #[test]
    fn garbage_keys_are_refused() {
        assert!(TokenVerifier::new(&KeySource::PublicKeyPem(b"nope".to_vec()), "d", None).is_err());
        assert!(TokenVerifier::new(&KeySource::Secret(String::new()), "d", None).is_err());
    }

    /// Unpadded base64url, enough to forge an `alg: none` token by hand.
    mod base64_like {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        pub fn encode(input: &[u8]) -> String {
            let mut out = String::new();
            for chunk in input.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                }
            }
            out
        }
    }
}
