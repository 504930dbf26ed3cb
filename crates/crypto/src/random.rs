//! Random identifiers and credentials from the system CSPRNG.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use zeroize::Zeroizing;

/// Fills an array with random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // SystemRandom only fails if the OS has no entropy source at all;
    // there is nothing sensible to do then but abort.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// A random GUID (object ids, app ids, tenant ids, key ids).
pub fn guid() -> String {
    format_guid(bytes::<16>())
}

fn format_guid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A 32-hex-character secret version identifier.
pub fn version_id() -> String {
    hex(&bytes::<16>())
}

/// A new client secret: 256 bits of randomness, base64url without padding
/// (43 characters). The caller shows it once and keeps only its hash.
pub fn client_secret() -> Zeroizing<String> {
    let raw = Zeroizing::new(bytes::<32>());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_slice()))
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_their_shapes() {
        assert_eq!(version_id().len(), 32);
        assert_ne!(version_id(), version_id());
        let g = guid();
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "4");
        let s = client_secret();
        assert_eq!(s.len(), 43);
    }
}
