//! Random identifiers: the visitor id (a uuid v4) and the tab id.
//!
//! The visitor id's format and check are byte-level twins of
//! [`herenow_core::protocol::visitor_id_from_random`] and
//! [`herenow_core::protocol::is_visitor_id`] (which go through the `uuid` crate and
//! `core::fmt`, too heavy for the shipped wasm); the native tests hold them equal.

use crate::error::Error;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Fills `N` bytes from `crypto.getRandomValues`.
fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| Error::new("crypto.getRandomValues is unavailable"))?;
    Ok(bytes)
}

/// Formats 16 random bytes as a lowercase hyphenated uuid v4 (version and variant bits set).
#[must_use]
pub(crate) fn visitor_id_from_random(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// Whether `s` is a visitor id: a lowercase hyphenated uuid v4 (RFC 4122 variant).
#[must_use]
pub(crate) fn is_visitor_id(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            14 => c == b'4',
            19 => matches!(c, b'8' | b'9' | b'a' | b'b'),
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// A fresh visitor id.
///
/// # Errors
/// When the browser has no `crypto.getRandomValues`.
pub(crate) fn new_visitor_id() -> Result<String, Error> {
    Ok(visitor_id_from_random(random()?))
}

const TAB_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A fresh tab id: 16 characters of `[A-Za-z0-9_-]` (96 random bits), one per page instance.
///
/// # Errors
/// When the browser has no `crypto.getRandomValues`.
pub(crate) fn new_tab_id() -> Result<String, Error> {
    let bytes: [u8; 16] = random()?;
    Ok(bytes
        .iter()
        .map(|b| char::from(TAB_ALPHABET[usize::from(b & 63)]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use herenow_core::protocol as core;

    /// A small deterministic generator for test bytes.
    fn bytes(seed: u64) -> [u8; 16] {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = [0u8; 16];
        for b in &mut out {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x.to_le_bytes()[0];
        }
        out
    }

    #[test]
    fn visitor_ids_match_core() {
        for seed in 0..2_000 {
            let b = bytes(seed);
            let ours = visitor_id_from_random(b);
            assert_eq!(ours, core::visitor_id_from_random(b));
            assert!(is_visitor_id(ours.as_bytes()));
            assert!(core::is_visitor_id(&ours));
        }
        for edge in [[0u8; 16], [0xff; 16]] {
            assert_eq!(
                visitor_id_from_random(edge),
                core::visitor_id_from_random(edge)
            );
        }
    }

    #[test]
    fn visitor_id_check_matches_core() {
        let good = visitor_id_from_random(bytes(7));
        let mut cases = vec![
            String::new(),
            "x".repeat(36),
            good.to_uppercase(),
            good.replace('-', ""),
            format!("{{{good}}}"),
            format!("urn:uuid:{good}"),
            "00000000-0000-1000-8000-000000000000".to_owned(),
            "00000000-0000-4000-c000-000000000000".to_owned(),
            "00000000-0000-4000-7000-000000000000".to_owned(),
            good.clone(),
        ];
        for i in 0..good.len() {
            for c in [b'0', b'9', b'a', b'f', b'g', b'-', b'A', b'4', b'8', b'c'] {
                let mut v = good.clone().into_bytes();
                v[i] = c;
                cases.push(String::from_utf8(v).unwrap());
            }
        }
        for case in cases {
            assert_eq!(
                is_visitor_id(case.as_bytes()),
                core::is_visitor_id(&case),
                "{case}"
            );
        }
    }
}
