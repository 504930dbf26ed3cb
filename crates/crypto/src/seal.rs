//! Authenticated encryption (AES-256-GCM) with a random nonce per message.
//! Sealed form: `nonce (12 bytes) || ciphertext || tag (16 bytes)`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use crate::random;

/// A 256-bit symmetric key, wiped when dropped.
#[derive(Clone)]
pub struct SymmetricKey(Zeroizing<[u8; 32]>);

impl SymmetricKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Zeroizing::new(random::bytes::<32>()))
    }

    /// Wraps existing key material.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses key material from a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::from_bytes(arr))
    }

    /// The raw key material.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        UnboundKey::new(&AES_256_GCM, self.0.as_slice())
            .map(LessSafeKey::new)
            .map_err(|_| SealError)
    }
}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

/// Decryption failed: wrong key, wrong associated data, or tampered input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authenticated decryption failed")]
pub struct SealError;

/// Encrypts `plaintext` under `key`, binding `aad` into the tag.
pub fn seal(key: &SymmetricKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let nonce_bytes = random::bytes::<NONCE_LEN>();
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(NONCE_LEN);
    key.aead()?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| SealError)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts a value produced by [`seal`] with the same key and `aad`.
pub fn open(
    key: &SymmetricKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(SealError);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = key
        .aead()?
        .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
        .map_err(|_| SealError)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SymmetricKey::generate();
        let sealed = seal(&key, b"aad", b"hello").unwrap_or_default();
        assert_eq!(
            open(&key, b"aad", &sealed).map(|v| v.to_vec()),
            Ok(b"hello".to_vec())
        );
        assert!(open(&key, b"other", &sealed).is_err());
        let mut bad = sealed.clone();
        bad[13] ^= 1;
        assert!(open(&key, b"aad", &bad).is_err());
        assert!(open(&SymmetricKey::generate(), b"aad", &sealed).is_err());
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
    }
}
