//! RS256 signing keys for access tokens.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use zeroize::Zeroizing;

/// A signing key failed to generate, load or sign.
#[derive(Debug, thiserror::Error)]
#[error("signing key error: {0}")]
pub struct SigningError(&'static str);

/// An RSA key pair that signs tokens with RS256.
pub struct SigningKey {
    kid: String,
    pair: KeyPair,
    public: PublicJwk,
}

/// The public half of a signing key, as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key id (the JWT header's `kid`).
    pub kid: String,
    /// Modulus, big-endian unsigned.
    pub n: Vec<u8>,
    /// Public exponent, big-endian unsigned.
    pub e: Vec<u8>,
}

impl SigningKey {
    /// Generates a 2048-bit RSA key.
    pub fn generate(kid: String) -> Result<Self, SigningError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| SigningError("generate"))?;
        Self::from_pair(kid, pair)
    }

    /// Loads a key from its PKCS#8 DER form.
    pub fn from_pkcs8(kid: String, der: &[u8]) -> Result<Self, SigningError> {
        let pair = KeyPair::from_pkcs8(der).map_err(|_| SigningError("load"))?;
        Self::from_pair(kid, pair)
    }

    fn from_pair(kid: String, pair: KeyPair) -> Result<Self, SigningError> {
        let pk = pair.public_key();
        let public = PublicJwk {
            kid: kid.clone(),
            n: pk.modulus().big_endian_without_leading_zero().to_vec(),
            e: pk.exponent().big_endian_without_leading_zero().to_vec(),
        };
        Ok(Self { kid, pair, public })
    }

    /// The PKCS#8 DER form, for sealed storage.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, SigningError> {
        let der = self.pair.as_der().map_err(|_| SigningError("export"))?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    /// This key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half.
    pub fn public(&self) -> &PublicJwk {
        &self.public
    }

    /// Signs `message` with RSASSA-PKCS1-v1_5 SHA-256.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|_| SigningError("sign"))?;
        Ok(sig)
    }
}

impl PublicJwk {
    /// Checks an RS256 signature over `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let components = signature::RsaPublicKeyComponents {
            n: self.n.as_slice(),
            e: self.e.as_slice(),
        };
        components
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_reload() -> Result<(), SigningError> {
        let key = SigningKey::generate("k1".into())?;
        let sig = key.sign(b"msg")?;
        assert!(key.public().verify(b"msg", &sig));
        assert!(!key.public().verify(b"msh", &sig));
        let again = SigningKey::from_pkcs8("k1".into(), &key.to_pkcs8()?)?;
        assert_eq!(again.public(), key.public());
        Ok(())
    }
}
