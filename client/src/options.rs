//! The options object passed to `start`, read field by field with `Reflect` (no serde).

use js_sys::Function;
use wasm_bindgen::{JsCast, JsValue};

use crate::cookie::DEFAULT_MAX_AGE_S;
use crate::error::Error;
use crate::web::prop;

/// Where the member token comes from.
#[derive(Debug, Clone)]
pub(crate) enum MemberToken {
    /// No token: the visitor counts as a guest.
    None,
    /// A fixed token.
    Fixed(String),
    /// A function returning a token, or a promise of one; called before each heartbeat.
    Provider(Function),
}

/// Whether the visitor id is kept in a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieMode {
    /// A cookie, unless the browser sends Global Privacy Control (the default).
    Auto,
    /// Always a cookie (`cookie: true`).
    On,
    /// Memory only (`cookie: false`).
    Off,
}

/// The validated options of one client.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The API's base URL without a trailing slash; empty for the page's own origin.
    pub endpoint: String,
    /// The site name.
    pub site: String,
    /// The page path; `None` means `location.pathname`.
    pub page: Option<String>,
    /// The member token, if any.
    pub member_token: MemberToken,
    /// The cookie mode.
    pub cookie: CookieMode,
    /// The cookie's `Max-Age`, in seconds.
    pub cookie_max_age: u32,
    /// Called with every count object.
    pub on_count: Option<Function>,
    /// `false` (`track: false`): watch only: show the counts without being counted (no
    /// heartbeat, no beacon, no cookie).
    pub track: bool,
}

/// Checks an endpoint: empty (same origin), a path from the root (or a protocol-relative
/// `//host`), or an `http(s)://` URL, with no spaces or control characters; returns it
/// without trailing slashes.
///
/// # Errors
/// Anything else.
pub(crate) fn normalize_endpoint(raw: &str) -> Result<String, Error> {
    let ok = raw.is_empty()
        || raw.starts_with('/')
        || raw.starts_with("https://")
        || raw.starts_with("http://");
    if !ok || raw.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Error::new(
            "options.endpoint must be \"\" (same origin) or an http(s) URL",
        ));
    }
    let mut end = raw.len();
    while end > 0 && raw.as_bytes()[end - 1] == b'/' {
        end -= 1;
    }
    Ok(raw.get(..end).unwrap_or_default().to_owned())
}

/// `null` or `undefined`: an option left out.
fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

/// `Some(value)` when present, `Err(message)` when present but not accepted by `take`.
fn optional<T>(
    v: JsValue,
    take: impl FnOnce(&JsValue) -> Option<T>,
    message: &'static str,
) -> Result<Option<T>, Error> {
    if absent(&v) {
        return Ok(None);
    }
    take(&v).map(Some).ok_or(Error::new(message))
}

impl Options {
    /// Reads `{endpoint, site, page?, memberToken?, cookie?, cookieMaxAge?, onCount?, track?}`.
    ///
    /// # Errors
    /// A message naming the first missing or invalid field.
    pub(crate) fn from_js(value: &JsValue) -> Result<Self, Error> {
        if !value.is_object() {
            return Err(Error::new(
                "start(options) needs an object like { endpoint, site }",
            ));
        }
        let endpoint = prop(value, "endpoint").as_string().ok_or(Error::new(
            "options.endpoint is required (a URL, or \"\" for the same origin)",
        ))?;
        let endpoint = normalize_endpoint(&endpoint)?;

        let site = prop(value, "site").as_string().unwrap_or_default();
        // The rule of `herenow_core::protocol::validate_site`, without its formatted error.
        if site.is_empty()
            || site.len() > herenow_core::protocol::MAX_SITE_BYTES
            || !site
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::new(
                "options.site is required: 1-64 characters of A-Z a-z 0-9 _ -",
            ));
        }

        // The server normalises the path; only its shape is checked here.
        let page = optional(
            prop(value, "page"),
            |v| v.as_string().filter(|p| p.starts_with('/')),
            "options.page must be a path starting with /",
        )?;

        let member_token = optional(
            prop(value, "memberToken"),
            |v| {
                if v.is_function() {
                    Some(MemberToken::Provider(v.clone().unchecked_into()))
                } else {
                    v.as_string().map(|t| {
                        if t.is_empty() {
                            MemberToken::None
                        } else {
                            MemberToken::Fixed(t)
                        }
                    })
                }
            },
            "options.memberToken must be a string or a function",
        )?
        .unwrap_or(MemberToken::None);

        let cookie = optional(
            prop(value, "cookie"),
            JsValue::as_bool,
            "options.cookie must be true or false",
        )?;
        let cookie = match cookie {
            None => CookieMode::Auto,
            Some(true) => CookieMode::On,
            Some(false) => CookieMode::Off,
        };

        let cookie_max_age = optional(
            prop(value, "cookieMaxAge"),
            |v| {
                let n = v.as_f64()?;
                // In range, so the cast is exact up to the fraction.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                (n >= 0.0 && n <= f64::from(u32::MAX)).then_some(n as u32)
            },
            "options.cookieMaxAge must be a number of seconds",
        )?
        .unwrap_or(DEFAULT_MAX_AGE_S);

        let on_count = optional(
            prop(value, "onCount"),
            |v| v.is_function().then(|| v.clone().unchecked_into()),
            "options.onCount must be a function",
        )?;

        let track = optional(
            prop(value, "track"),
            JsValue::as_bool,
            "options.track must be true or false",
        )?
        .unwrap_or(true);

        Ok(Self {
            endpoint,
            site,
            page,
            member_token,
            cookie,
            cookie_max_age,
            on_count,
            track,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(normalize_endpoint("").unwrap(), "");
        assert_eq!(normalize_endpoint("/").unwrap(), "");
        assert_eq!(normalize_endpoint("/api//").unwrap(), "/api");
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:8787").unwrap(),
            "http://127.0.0.1:8787"
        );
        assert_eq!(
            normalize_endpoint("https://x.example/base/").unwrap(),
            "https://x.example/base"
        );
        // Protocol-relative works like a path would.
        assert_eq!(normalize_endpoint("//x.example/").unwrap(), "//x.example");
        for bad in [
            "x.example",
            "ftp://x",
            "http://a b",
            "https://x\n",
            "\u{7f}",
        ] {
            assert!(normalize_endpoint(bad).is_err(), "{bad}");
        }
    }
}
