//! The visitor-id cookie `herenow_vid`, or an id kept in memory only.

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::error::Error;
use crate::ids::{is_visitor_id, new_visitor_id};
use crate::options::CookieMode;
use crate::web::{document, global, prop};

/// The cookie's name.
pub(crate) const COOKIE_NAME: &str = "herenow_vid";
/// The cookie's default `Max-Age`: 30 minutes, in seconds. Counting needs the id only while
/// the visitor's tabs are open; each heartbeat renews it (see [`store`]), so it expires half
/// an hour after the last one.
pub(crate) const DEFAULT_MAX_AGE_S: u32 = 30 * 60;

/// The first valid visitor id among the `herenow_vid` entries of a `document.cookie`
/// string; malformed or foreign values are skipped.
#[must_use]
pub(crate) fn find_visitor_id(cookies: &str) -> Option<String> {
    cookies
        .as_bytes()
        .split(|&b| b == b';')
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let value = pair
                .strip_prefix(COOKIE_NAME.as_bytes())?
                .strip_prefix(b"=")?;
            Some(value.trim_ascii())
        })
        .find(|value| is_visitor_id(value))
        .map(|value| value.iter().map(|&b| char::from(b)).collect())
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // `n % 10` is below 10.
        #[allow(clippy::cast_possible_truncation)]
        let d = (n % 10) as u8;
        digits[i] = b'0' + d;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// The `document.cookie` assignment that stores `id`.
#[must_use]
pub(crate) fn cookie_string(id: &str, max_age_s: u32, secure: bool) -> String {
    let mut s = String::with_capacity(96);
    s.push_str(COOKIE_NAME);
    s.push('=');
    s.push_str(id);
    s.push_str("; Path=/; Max-Age=");
    push_decimal(&mut s, u64::from(max_age_s));
    s.push_str("; SameSite=Lax");
    if secure {
        s.push_str("; Secure");
    }
    s
}

/// Whether the browser sends Global Privacy Control (`navigator.globalPrivacyControl`).
#[must_use]
pub(crate) fn global_privacy_control() -> bool {
    prop(&global("navigator"), "globalPrivacyControl").as_bool() == Some(true)
}

/// Whether the page is served over https (then the cookie gets `Secure`).
fn is_https() -> bool {
    prop(&global("location"), "protocol").as_string().as_deref() == Some("https:")
}

/// Reads `document.cookie` (empty when cookies are blocked).
#[must_use]
pub(crate) fn read_cookies() -> String {
    prop(&global("document"), "cookie")
        .as_string()
        .unwrap_or_default()
}

/// Whether the id is kept in a cookie for this mode (GPC turns the default off).
#[must_use]
pub(crate) fn uses_cookie(mode: CookieMode) -> bool {
    match mode {
        CookieMode::On => true,
        CookieMode::Off => false,
        CookieMode::Auto => !global_privacy_control(),
    }
}

/// Stores `id` in the cookie for `max_age_s` more seconds (also how a heartbeat renews it).
pub(crate) fn store(id: &str, max_age_s: u32) {
    if let Some(doc) = document() {
        // Sandboxed documents throw here; the id then lives in memory.
        let _ = Reflect::set(
            &doc,
            &JsValue::from_str("cookie"),
            &JsValue::from_str(&cookie_string(id, max_age_s, is_https())),
        );
    }
}

/// The visitor id for this page: the cookie's when it holds a valid one (its `Max-Age` is
/// renewed), else a fresh one that is stored; with cookies off, a fresh one in memory only.
///
/// # Errors
/// When no random id can be made.
pub(crate) fn visitor_id(mode: CookieMode, max_age_s: u32) -> Result<String, Error> {
    if !uses_cookie(mode) {
        return new_visitor_id();
    }
    let id = match find_visitor_id(&read_cookies()) {
        Some(id) => id,
        None => new_visitor_id()?,
    };
    store(&id, max_age_s);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0f2c7e5a-1b3d-4e6f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn finds_the_first_valid_id() {
        assert_eq!(find_visitor_id(""), None);
        assert_eq!(
            find_visitor_id(&format!("herenow_vid={ID}")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            find_visitor_id(&format!("a=1; herenow_vid=bad; herenow_vid={ID}; b=2")).as_deref(),
            Some(ID)
        );
        assert_eq!(find_visitor_id(&format!("xherenow_vid={ID}")), None);
        assert_eq!(find_visitor_id(&format!("herenow_vidx={ID}")), None);
        assert_eq!(
            find_visitor_id(&format!("herenow_vid={}", ID.to_uppercase())),
            None
        );
        assert_eq!(find_visitor_id("herenow_vid="), None);
    }

    #[test]
    fn cookie_strings() {
        assert_eq!(
            cookie_string(ID, DEFAULT_MAX_AGE_S, false),
            format!("herenow_vid={ID}; Path=/; Max-Age=1800; SameSite=Lax")
        );
        assert_eq!(
            cookie_string(ID, 60, true),
            format!("herenow_vid={ID}; Path=/; Max-Age=60; SameSite=Lax; Secure")
        );
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut s = String::from("x");
            push_decimal(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }
}
