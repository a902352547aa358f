//! Generating, hashing and comparing secrets.
//!
//! Random tokens (API tokens, the admin token, API keys) carry 190+ bits of
//! entropy, so a SHA-256 digest is enough to store them: nobody can brute-force
//! the preimage. Passwords are chosen by people and get argon2, which is
//! expensive on purpose (CPU and memory): every hash and every verification
//! goes through one bounded gate, [`hash_password`] and [`verify_password`].

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use sha2::{Digest, Sha256};
use subledger_domain::account::Password;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::{ServiceError, ServiceResult};

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

/// Longest a request waits for a turn at argon2 before it is refused as busy
/// ([`ServiceError::Unavailable`]; nothing was done). A flood of account
/// creations or logins is shed after this, instead of queueing without end.
pub const PASSWORD_WAIT_MAX: Duration = Duration::from_secs(5);

/// Where passwords are hashed and verified: on the blocking pool, at most as
/// many at once as the gate has permits. Each argon2 run with the default
/// parameters holds about 19 MiB for its whole duration, so without a bound
/// a burst of requests costs one blocking thread and 19 MiB each (up to
/// tokio's 512 blocking threads, about 10 GB).
struct PasswordGate {
    permits: Arc<Semaphore>,
    wait_max: Duration,
}

impl PasswordGate {
    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> ServiceResult<T> {
        let permit = tokio::time::timeout(self.wait_max, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ServiceError::Unavailable("too many passwords are being checked at once; retry"))?
            .map_err(|_| ServiceError::Unavailable("password hashing has stopped"))?;
        // The permit moves into the blocking task: if the request goes away
        // (client gone, deadline passed), the hash still counts until it ends.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| ServiceError::Unavailable("password hashing was interrupted"))
    }
}

/// The process's one gate: one permit per core, since argon2 is CPU-bound and
/// more at once would only hold more memory while they share the cores.
fn password_gate() -> &'static PasswordGate {
    static GATE: LazyLock<PasswordGate> = LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordGate { permits: Arc::new(Semaphore::new(cores)), wait_max: PASSWORD_WAIT_MAX }
    });
    &GATE
}

/// argon2id hash in PHC string form, computed behind the process's password gate.
pub async fn hash_password(password: &Password) -> ServiceResult<String> {
    let password = password.expose().to_owned();
    password_gate().run(move || argon2_hash(&password)).await
}

/// Whether `password` matches the stored PHC hash, checked behind the process's password gate.
pub async fn verify_password(password: &Password, phc: &str) -> ServiceResult<bool> {
    let (password, phc) = (password.expose().to_owned(), phc.to_owned());
    password_gate().run(move || argon2_verify(&password, &phc)).await
}

fn argon2_hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system provides randomness");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters cannot fail").to_string()
}

fn argon2_verify(password: &str, phc: &str) -> bool {
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

    fn password(text: &str) -> Password {
        Password::parse(text).unwrap()
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let phc = hash_password(&password("321Abc")).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&password("321Abc"), &phc).await.unwrap());
        assert!(!verify_password(&password("321Abd"), &phc).await.unwrap());
        assert!(!verify_password(&password("321Abc"), "not a hash").await.unwrap());
    }

    /// No more computations run at once than the gate has permits, and a
    /// caller that cannot get one in time is refused as busy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gate_bounds_computations_and_waiting() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = Arc::new(PasswordGate { permits: Arc::new(Semaphore::new(2)), wait_max: Duration::from_secs(30) });
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
            tasks.spawn(async move {
                gate.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "two permits: two at once, never more");

        let busy = Arc::new(PasswordGate { permits: Arc::new(Semaphore::new(1)), wait_max: Duration::from_millis(50) });
        let holder = busy.clone();
        let long = tokio::spawn(async move { holder.run(|| std::thread::sleep(Duration::from_millis(500))).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(busy.run(|| ()).await, Err(ServiceError::Unavailable(_))), "no permit within the wait: busy");
        long.await.unwrap().unwrap();
        busy.run(|| ()).await.expect("a free permit again");
    }

    #[test]
    fn digests_compare_in_constant_time() {
        assert_eq!(token_digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(secrets_equal(b"same", b"same"));
        assert!(!secrets_equal(b"same", b"diff"));
        assert!(!secrets_equal(b"same", b"longer"));
    }
}

/// The key that seals secrets subledger must give back to someone else (a
/// tenant's Meta system-user token): 32 bytes, from the server's settings.
#[derive(Clone)]
pub struct SealingKey(chacha20poly1305::Key);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// Prefix of a sealed secret: the scheme, so that another can follow.
const SEALED_PREFIX: &str = "v1:";

impl SealingKey {
    /// From 64 hexadecimal digits.
    pub fn from_hex(text: &str) -> Result<SealingKey, &'static str> {
        let bytes = hex::decode(text.trim()).map_err(|_| "the key must be 64 hexadecimal digits")?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "the key must be 64 hexadecimal digits (32 bytes)")?;
        Ok(SealingKey(bytes.into()))
    }

    /// Seals `secret`: ChaCha20-Poly1305 under a fresh random nonce, bound
    /// to `context` (the tenant), so that a sealed value copied to another
    /// tenant's row does not open.
    pub fn seal(&self, secret: &str, context: &str) -> String {
        use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
        let cipher = chacha20poly1305::ChaCha20Poly1305::new(&self.0);
        let nonce = chacha20poly1305::ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher.encrypt(&nonce, Payload { msg: secret.as_bytes(), aad: context.as_bytes() }).expect("sealing a short secret cannot fail");
        format!("{SEALED_PREFIX}{}{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// Opens what [`SealingKey::seal`] sealed with this key and context.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, &'static str> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let text = sealed.strip_prefix(SEALED_PREFIX).ok_or("unknown sealing scheme")?;
        let bytes = hex::decode(text).map_err(|_| "a sealed secret is hexadecimal")?;
        if bytes.len() < 12 {
            return Err("a sealed secret holds its nonce");
        }
        let (nonce, sealed) = bytes.split_at(12);
        let cipher = chacha20poly1305::ChaCha20Poly1305::new(&self.0);
        let opened = cipher.decrypt(nonce.into(), Payload { msg: sealed, aad: context.as_bytes() }).map_err(|_| "the secret does not open with this key")?;
        String::from_utf8(opened).map_err(|_| "a sealed secret is UTF-8")
    }
}

#[cfg(test)]
mod sealing_tests {
    use super::SealingKey;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let key = SealingKey::from_hex(&"ab".repeat(32)).unwrap();
        let sealed = key.seal("EAAB-token", "tenant:1");
        assert!(!sealed.contains("EAAB-token"));
        assert_ne!(sealed, key.seal("EAAB-token", "tenant:1"), "a fresh nonce every time");
        assert_eq!(key.open(&sealed, "tenant:1").as_deref(), Ok("EAAB-token"));
        assert!(key.open(&sealed, "tenant:2").is_err());
        assert!(SealingKey::from_hex(&"cd".repeat(32)).unwrap().open(&sealed, "tenant:1").is_err());
        assert!(SealingKey::from_hex("abc").is_err());
    }
}
