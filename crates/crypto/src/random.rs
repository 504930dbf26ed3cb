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

/// A GUID for request ids: unique (a random 64-bit prefix chosen once per
/// process, then a counter) and much cheaper than [`guid`], but not
/// unpredictable: never use it for anything an attacker must not guess.
pub fn request_guid() -> String {
    static PREFIX: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(bytes::<8>);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(prefix);
    b[8..].copy_from_slice(&n.to_be_bytes());
    format_guid(b)
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

    #[test]
    fn request_guids_are_guids_and_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| request_guid()).collect();
        assert_eq!(ids.len(), 10_000);
        for g in ids.iter().take(10) {
            assert_eq!(g.len(), 36);
            assert_eq!(&g[14..15], "4");
            assert!(matches!(&g[19..20], "8" | "9" | "a" | "b"), "{g}");
        }
    }
}
