//! The Standard Webhooks signature (standardwebhooks.com, API.md §9): `v1,` + base64 of
//! HMAC-SHA256, keyed with the secret's decoded bytes, over `{id}.{timestamp}.{body}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret.
const PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new secret, `whsec_` + base64 of random bytes from the operating system's CSPRNG.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut bytes)?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-signature` header of a delivery; `None` if `secret` is not `whsec_` + base64.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's test vector (as in its reference libraries' tests).
    #[test]
    fn signs_the_reference_vector() {
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn secrets_are_fresh_and_decode() {
        let a = new_secret().expect("random");
        let b = new_secret().expect("random");
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(
            STANDARD.decode(&a[PREFIX.len()..]).map(|k| k.len()).ok(),
            Some(SECRET_BYTES)
        );
        assert!(signature(&a, "1", 1, "{}").is_some());
        assert_eq!(signature("nope", "1", 1, "{}"), None);
    }
}
