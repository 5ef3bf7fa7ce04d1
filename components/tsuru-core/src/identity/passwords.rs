//! Password hashing: argon2id PHC strings (API.md 3.7).

use crate::runtime::error::{ApiError, ApiResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// 12 MiB, 3 passes, one lane: the OWASP-listed argon2id profile, chosen so that a
/// login stays well under 150 ms in a wasm component (measured figure in README.md).
const MEMORY_KIB: u32 = 12 * 1024;
const PASSES: u32 = 3;

fn hasher() -> ApiResult<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).map_err(ApiError::internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash(password: &str) -> ApiResult<String> {
    let salt_bytes = crate::runtime::secrets::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(ApiError::internal)?;
    Ok(hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(ApiError::internal)?
        .to_string())
}

/// Verifies against a stored PHC string (its own parameters, so they may change later).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A 12-character password from the reset alphabet of API.md 3.7.
pub fn generate() -> ApiResult<String> {
    const ALPHABET: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@#$%^&*()~[]{}?=-+,.<>:;";
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % ALPHABET.len());
    let mut out = String::with_capacity(12);
    while out.len() < 12 {
        for b in crate::runtime::secrets::random_bytes::<32>()? {
            if (b as usize) < limit && out.len() < 12 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Passwords are 6 to 50 bytes (API.md 3.7).
pub fn is_valid_password(value: &str) -> bool {
    (6..=50).contains(&value.len())
}

pub const PASSWORD_MESSAGE: &str =
    "Password length should be least 6 characters and at most 50 characters.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        assert!(!is_valid_password("12345"));
        assert!(is_valid_password("123456"));
        assert!(is_valid_password(&"x".repeat(50)));
        assert!(!is_valid_password(&"x".repeat(51)));
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash("123456").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"));
        assert!(verify("123456", &phc));
        assert!(!verify("1234567", &phc));
        assert!(!verify("123456", "not a hash"));
    }

    #[test]
    fn generated_passwords_use_the_alphabet() {
        let p = generate().unwrap();
        assert_eq!(p.len(), 12);
        assert!(p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@#$%^&*()~[]{}?=-+,.<>:;".contains(c)));
        assert_ne!(p, generate().unwrap());
    }
}
