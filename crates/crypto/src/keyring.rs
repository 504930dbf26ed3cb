//! The key hierarchy: master key → key-encryption key (KEK) → one data key
//! per secret version. The master key lives outside the database (a 0600
//! file or the environment); the KEK is stored wrapped by it; data keys are
//! stored wrapped by the KEK next to the ciphertext they protect.

use crate::seal::{open, seal, SealError, SymmetricKey};

/// Associated data binding a wrapped KEK to its purpose and id.
fn kek_aad(id: &str) -> Vec<u8> {
    format!("lockstep/kek/v1/{id}").into_bytes()
}

/// Associated data binding a wrapped data key to the object it protects.
fn dek_aad(kek_id: &str, binding: &str) -> Vec<u8> {
    format!("lockstep/dek/v1/{kek_id}/{binding}").into_bytes()
}

/// Errors of the key hierarchy.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The master key does not open the stored KEK.
    #[error("the master key does not match this data directory (the stored key-encryption key cannot be unwrapped)")]
    WrongMasterKey,
    /// Master key material of the wrong length or encoding.
    #[error("the master key is malformed: expected 32 bytes, base64-encoded")]
    MalformedMasterKey,
    /// A wrapped data key or ciphertext failed authentication.
    #[error("stored ciphertext failed authentication")]
    Corrupt(#[from] SealError),
}

/// The root of the hierarchy; never stored in the database.
#[derive(Debug, Clone)]
pub struct MasterKey(SymmetricKey);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        Self(SymmetricKey::generate())
    }

    /// Decodes the base64 form kept in the key file or environment.
    pub fn from_base64(text: &str) -> Result<Self, KeyringError> {
        use base64::Engine;
        let raw = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| KeyringError::MalformedMasterKey)?,
        );
        SymmetricKey::from_slice(&raw)
            .map(Self)
            .ok_or(KeyringError::MalformedMasterKey)
    }

    /// The base64 form, for writing the key file once.
    pub fn to_base64(&self) -> zeroize::Zeroizing<String> {
        use base64::Engine;
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0.expose()))
    }

    /// Wraps a KEK for storage.
    pub fn wrap_kek(&self, kek: &Kek) -> Result<Vec<u8>, KeyringError> {
        Ok(seal(&self.0, &kek_aad(&kek.id), kek.key.expose())?)
    }

    /// Unwraps a stored KEK; fails with [`KeyringError::WrongMasterKey`].
    pub fn unwrap_kek(&self, id: &str, wrapped: &[u8]) -> Result<Kek, KeyringError> {
        let raw = open(&self.0, &kek_aad(id), wrapped).map_err(|_| KeyringError::WrongMasterKey)?;
        let key = SymmetricKey::from_slice(&raw).ok_or(KeyringError::WrongMasterKey)?;
        Ok(Kek {
            id: id.to_owned(),
            key,
        })
    }

    /// Derives a purpose-specific key (for example the client-secret hashing
    /// key) from the master key with HKDF-SHA256.
    pub fn derive(&self, purpose: &str) -> SymmetricKey {
        use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
        let salt = Salt::new(HKDF_SHA256, b"lockstep-derive-v1");
        let prk = salt.extract(self.0.expose());
        let info = [purpose.as_bytes()];
        let mut out = [0u8; 32];
        let filled = prk
            .expand(&info, HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out));
        if filled.is_err() {
            // HKDF-SHA256 can always produce 32 bytes; fall back to a
            // keyed hash so that the function stays total.
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.0.expose());
            out.copy_from_slice(aws_lc_rs::hmac::sign(&k, purpose.as_bytes()).as_ref());
        }
        SymmetricKey::from_bytes(out)
    }
}

/// The key-encryption key: wraps every data key.
#[derive(Debug, Clone)]
pub struct Kek {
    id: String,
    key: SymmetricKey,
}

/// A data key wrapped by a KEK, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which KEK wrapped it.
    pub kek_id: String,
    /// The sealed key material.
    pub sealed: Vec<u8>,
}

/// An unwrapped data key; wiped on drop.
#[derive(Debug, Clone)]
pub struct DataKey(SymmetricKey);

impl DataKey {
    /// Encrypts a value under this data key.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyringError> {
        Ok(seal(&self.0, aad, plaintext)?)
    }

    /// Decrypts a value sealed under this data key.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<crate::SecretBytes, KeyringError> {
        Ok(open(&self.0, aad, sealed)?)
    }
}

impl Kek {
    /// A fresh KEK with a new id.
    pub fn generate() -> Self {
        Self {
            id: crate::random::hex(&crate::random::bytes::<8>()),
            key: SymmetricKey::generate(),
        }
    }

    /// This KEK's id, stored beside everything it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Creates a data key for the object named by `binding` and returns it
    /// with its wrapped form.
    pub fn new_data_key(&self, binding: &str) -> Result<(DataKey, WrappedKey), KeyringError> {
        let key = SymmetricKey::generate();
        let sealed = seal(&self.key, &dek_aad(&self.id, binding), key.expose())?;
        Ok((
            DataKey(key),
            WrappedKey {
                kek_id: self.id.clone(),
                sealed,
            },
        ))
    }

    /// Unwraps the data key of the object named by `binding`.
    pub fn open_data_key(
        &self,
        binding: &str,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyringError> {
        if wrapped.kek_id != self.id {
            return Err(KeyringError::Corrupt(SealError));
        }
        let raw = open(&self.key, &dek_aad(&self.id, binding), &wrapped.sealed)?;
        SymmetricKey::from_slice(&raw)
            .map(DataKey)
            .ok_or(KeyringError::Corrupt(SealError))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy_round_trip() -> Result<(), KeyringError> {
        let master = MasterKey::generate();
        let kek = Kek::generate();
        let stored = master.wrap_kek(&kek)?;
        let kek2 = master.unwrap_kek(kek.id(), &stored)?;
        let (dk, wrapped) = kek.new_data_key("t/v/n/1")?;
        let ct = dk.seal(b"t/v/n/1", b"value")?;
        let dk2 = kek2.open_data_key("t/v/n/1", &wrapped)?;
        assert_eq!(dk2.open(b"t/v/n/1", &ct)?.as_slice(), b"value");
        assert!(kek2.open_data_key("t/v/n/2", &wrapped).is_err());
        assert!(matches!(
            MasterKey::generate().unwrap_kek(kek.id(), &stored),
            Err(KeyringError::WrongMasterKey)
        ));
        let b64 = master.to_base64();
        assert!(MasterKey::from_base64(&b64)?
            .unwrap_kek(kek.id(), &stored)
            .is_ok());
        Ok(())
    }
}
