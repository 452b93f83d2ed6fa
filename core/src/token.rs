//! Member tokens: HS256 JSON Web Tokens minted by a site's own backend.
//!
//! Claims: `sub` (member id), `name` (display name), `exp` (required), `nbf` (optional),
//! all times in Unix seconds. The header's `alg` must be exactly `HS256`: `none` and every
//! other algorithm are rejected before any signature work, so a token cannot pick its own
//! verification.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::Deserialize;

use crate::engine::Member;
use crate::error::{Code, Error};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The longest member id accepted, in bytes.
pub const MAX_MEMBER_ID_BYTES: usize = 128;
/// The longest display name accepted, in characters.
pub const MAX_MEMBER_NAME_CHARS: usize = 64;

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    name: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
}

fn invalid(why: &str) -> Error {
    Error::new(
        Code::InvalidMemberToken,
        format!("member token rejected: {why}"),
    )
}

/// Whether `id` is an acceptable member id: 1–128 bytes, no control characters.
#[must_use]
pub fn is_member_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_MEMBER_ID_BYTES && !id.chars().any(char::is_control)
}

/// Verifies `token` with `secret` at `now_ms` and returns the member it names.
///
/// # Errors
/// 401 `invalid_member_token` naming the reason: malformed, wrong algorithm, bad
/// signature, expired, not yet valid, or missing/invalid claims.
pub fn verify(token: &str, secret: &[u8], now_ms: u64) -> Result<Member, Error> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a JWS compact token"));
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("malformed header"))?;
    if header.alg != "HS256" {
        return Err(invalid("alg must be HS256"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| invalid("malformed signature"))?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| invalid("no usable secret"))?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| invalid("bad signature"))?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("malformed claims"))?;
    let now_s = (now_ms / 1000) as f64;
    match claims.exp {
        Some(exp) if exp > now_s => {}
        Some(_) => return Err(invalid("expired")),
        None => return Err(invalid("exp is required")),
    }
    if claims.nbf.is_some_and(|nbf| nbf > now_s) {
        return Err(invalid("not yet valid"));
    }
    let id = claims
        .sub
        .filter(|s| is_member_id(s))
        .ok_or_else(|| invalid("sub must be 1-128 bytes without control characters"))?;
    let name: String = claims
        .name
        .unwrap_or_else(|| id.clone())
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MEMBER_NAME_CHARS)
        .collect();
    Ok(Member { id, name })
}

/// Mints an HS256 member token (what a site's backend does; here only for tests).
/// `exp_s` and `nbf_s` are Unix seconds.
#[cfg(any(test, feature = "testing"))]
#[must_use]
pub fn mint(secret: &[u8], sub: &str, name: &str, exp_s: u64, nbf_s: Option<u64>) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = serde_json::json!({ "sub": sub, "name": name, "exp": exp_s });
    if let Some(nbf) = nbf_s {
        claims["nbf"] = nbf.into();
    }
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let sig = match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signing_input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"site-secret";
    const NOW_MS: u64 = 1_800_000_000_000;
    const NOW_S: u64 = NOW_MS / 1000;

    fn reason(t: &str) -> String {
        verify(t, KEY, NOW_MS)
            .expect_err("must fail")
            .message()
            .to_owned()
    }

    #[test]
    fn a_valid_token_names_the_member() {
        let t = mint(KEY, "u1", "Ada", NOW_S + 60, Some(NOW_S - 1));
        let m = verify(&t, KEY, NOW_MS).expect("valid");
        assert_eq!((m.id.as_str(), m.name.as_str()), ("u1", "Ada"));
    }

    #[test]
    fn rejects_expired_not_yet_valid_wrong_key_and_tampered() {
        assert!(reason(&mint(KEY, "u1", "Ada", NOW_S - 1, None)).contains("expired"));
        assert!(
            reason(&mint(KEY, "u1", "Ada", NOW_S + 60, Some(NOW_S + 30))).contains("not yet valid")
        );
        assert!(reason(&mint(b"other", "u1", "Ada", NOW_S + 60, None)).contains("bad signature"));
        let t = mint(KEY, "u1", "Ada", NOW_S + 60, None);
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"admin","name":"x","exp":{}}}"#,
            NOW_S + 60
        ));
        parts[1] = &forged;
        assert!(reason(&parts.join(".")).contains("bad signature"));
        let e = verify(&t, KEY, NOW_MS + 61_000).expect_err("expired later");
        assert_eq!(e.code().status(), 401);
    }

    #[test]
    fn rejects_alg_none_and_other_algorithms() {
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"u","exp":{}}}"#, NOW_S + 60));
        for alg in ["none", "None", "HS512", "RS256", "hs256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            assert!(reason(&format!("{h}.{claims}.")).contains("alg"), "{alg}");
        }
        assert!(reason("a.b").contains("JWS"));
        assert!(reason("a.b.c.d").contains("JWS"));
        assert!(reason("!!.b.c").contains("header"));
    }

    #[test]
    fn requires_exp_and_a_sane_sub() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let sign = |claims: &str| {
            let p = URL_SAFE_NO_PAD.encode(claims);
            let mut mac = HmacSha256::new_from_slice(KEY).expect("key");
            mac.update(format!("{h}.{p}").as_bytes());
            format!(
                "{h}.{p}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        assert!(reason(&sign(r#"{"sub":"u"}"#)).contains("exp"));
        assert!(reason(&sign(&format!(r#"{{"sub":"","exp":{}}}"#, NOW_S + 9))).contains("sub"));
        let m = verify(
            &sign(&format!(
                r#"{{"sub":"u","name":"a\u0007b","exp":{}}}"#,
                NOW_S + 9
            )),
            KEY,
            NOW_MS,
        )
        .expect("valid");
        assert_eq!(m.name, "ab");
    }
}
