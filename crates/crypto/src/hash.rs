//! Keyed hashing of client secrets (HMAC-SHA256 under a key derived from the
//! master key). Client secrets are 256-bit random values, so a slow password
//! hash adds nothing but latency; the key makes a stolen database useless for
//! offline guessing without the master key. See docs/decisions.md.

use aws_lc_rs::hmac;

use crate::seal::SymmetricKey;

/// Hashes and verifies client secrets.
#[derive(Clone)]
pub struct SecretHasher(hmac::Key);

impl SecretHasher {
    /// A hasher keyed by `key`.
    pub fn new(key: &SymmetricKey) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key.expose()))
    }

    /// The stored form of `secret`, salted with the credential's `salt`.
    pub fn hash(&self, salt: &[u8], secret: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&(salt.len() as u32).to_be_bytes());
        ctx.update(salt);
        ctx.update(secret);
        ctx.sign().as_ref().to_vec()
    }

    /// Compares `secret` with a stored hash in constant time.
    pub fn verify(&self, salt: &[u8], secret: &[u8], stored: &[u8]) -> bool {
        let computed = self.hash(salt, secret);
        #[allow(deprecated)]
        aws_lc_rs::constant_time::verify_slices_are_equal(&computed, stored).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_right_secret() {
        let h = SecretHasher::new(&SymmetricKey::generate());
        let stored = h.hash(b"salt", b"s3cret");
        assert!(h.verify(b"salt", b"s3cret", &stored));
        assert!(!h.verify(b"salt", b"s3creT", &stored));
        assert!(!h.verify(b"other", b"s3cret", &stored));
    }
}
