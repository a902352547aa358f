//! Generating, hashing and comparing secrets.
//!
//! Random tokens (API tokens, the admin token, API keys) carry 190+ bits of
//! entropy, so a SHA-256 digest is enough to store them: nobody can brute-force
//! the preimage. Passwords are chosen by people and get argon2.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const LOWER36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn random_from(alphabet: &[u8], length: usize) -> String {
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(length);
    let mut buffer = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buffer).expect("the operating system provides randomness");
        for byte in buffer {
            if (byte as usize) < limit && out.len() < length {
                out.push(alphabet[byte as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// A random string of ASCII letters and digits.
pub fn random_base62(length: usize) -> String {
    random_from(BASE62, length)
}

/// A random string of lowercase letters and digits.
pub fn random_lower36(length: usize) -> String {
    random_from(LOWER36, length)
}

/// Hex SHA-256 of a token, as stored.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two secrets (or of their digests).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// argon2id hash in PHC string form. CPU-heavy (tens of milliseconds): call
/// it off the async runtime.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system provides randomness");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters cannot fail").to_string()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_use_their_alphabet() {
        let s = random_base62(40);
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(random_base62(40), s);
        assert!(random_lower36(30).bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let phc = hash_password("321Abc");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("321Abc", &phc));
        assert!(!verify_password("321Abd", &phc));
        assert!(!verify_password("321Abc", "not a hash"));
    }

    #[test]
    fn digests_compare_in_constant_time() {
        assert_eq!(token_digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(secrets_equal(b"same", b"same"));
        assert!(!secrets_equal(b"same", b"diff"));
        assert!(!secrets_equal(b"same", b"longer"));
    }
}
