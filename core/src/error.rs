//! The one error type of `herenow-core`, and the one list of its error codes.
//!
//! Every failure carries a [`Code`] — which fixes both its HTTP status and its wire
//! string, so the two cannot drift apart — plus a message for humans. The edge turns an
//! [`Error`] into an HTTP answer once, at its boundary (`HttpResponse::from_error`).

use core::fmt;

/// Declares [`Code`] from one table: each variant with its status and wire string, and
/// [`Code::ALL`] listing every variant (so tests can check the whole table).
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $status:literal, $wire:literal;)*) => {
        /// What went wrong: a stable wire string (`{"error":{"code":…}}`) and the HTTP
        /// status it is answered with. Clients match on the wire string, so it never changes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Self::$variant),*];

            /// The HTTP status this code is answered with.
            #[must_use]
            pub const fn status(self) -> u16 {
                match self {
                    $(Self::$variant => $status,)*
                }
            }

            /// The stable machine-readable string sent as `error.code`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }
        }
    };
}

codes! {
    /// The body is not a JSON object of strings.
    InvalidJson => 400, "invalid_json";
    /// The request body could not be read.
    InvalidBody => 400, "invalid_body";
    /// The site name is missing or breaks its shape rule.
    InvalidSite => 400, "invalid_site";
    /// The visitor id is missing or not a lowercase uuid v4.
    InvalidVisitor => 400, "invalid_visitor";
    /// The tab id is missing or breaks its shape rule.
    InvalidTab => 400, "invalid_tab";
    /// The page path breaks its rule.
    InvalidPage => 400, "invalid_page";
    /// The state is neither `active` nor `idle`.
    InvalidState => 400, "invalid_state";
    /// The `member` query parameter is missing or not a member id.
    InvalidMember => 400, "invalid_member";
    /// The `range` query parameter of `/v1/history` is not `1h`, `24h` or `7d`.
    InvalidRange => 400, "invalid_range";
    /// A member token was given but is malformed (too long, not ASCII), does not verify, or
    /// the site has no members. Always 401, so that a client drops the token and is counted
    /// as a guest whatever is wrong with it.
    InvalidMemberToken => 401, "invalid_member_token";
    /// `/v1/online` of a private site without a read key.
    ReadKeyRequired => 401, "read_key_required";
    /// The site is not configured.
    UnknownSite => 403, "unknown_site";
    /// The request's origin is not among the site's (or any site's) origins.
    OriginNotAllowed => 403, "origin_not_allowed";
    /// A read key was sent but is not the site's.
    InvalidReadKey => 403, "invalid_read_key";
    /// The widget, history or badge of a site that is not public (`"public"` in SITES).
    NotPublic => 403, "not_public";
    /// No such route.
    NotFound => 404, "not_found";
    /// The route exists but not for this method.
    MethodNotAllowed => 405, "method_not_allowed";
    /// The body did not arrive within `BODY_TIMEOUT_S`.
    SlowBody => 408, "slow_body";
    /// The body is larger than [`crate::protocol::MAX_BODY_BYTES`].
    BodyTooLarge => 413, "body_too_large";
    /// A content type other than `application/json` or `text/plain`.
    UnsupportedMediaType => 415, "unsupported_media_type";
    /// A rate limit was hit; see [`Error::retry_after_s`].
    RateLimited => 429, "rate_limited";
    /// The store failed or timed out; see [`Error::retry_after_s`].
    StoreUnavailable => 503, "store_unavailable";
    /// A setting is invalid: every request fails until the deployment is fixed.
    BadConfig => 500, "bad_config";
    /// A bug.
    Internal => 500, "internal";
}

/// An error: its [`Code`] and a message for humans (which may change at will).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: Code,
    message: String,
    retry_after_s: Option<u32>,
}

impl Error {
    /// A new error with `code` and `message`.
    #[must_use]
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// A 503: the store failed; clients should retry after `retry_after_s`.
    #[must_use]
    pub fn unavailable(message: impl Into<String>, retry_after_s: u32) -> Self {
        Self::new(Code::StoreUnavailable, message).with_retry_after(retry_after_s)
    }

    /// The same error, telling clients to wait `seconds` before retrying.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The code, which fixes the status and the wire string.
    #[must_use]
    pub const fn code(&self) -> Code {
        self.code
    }

    /// The human-readable message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds a client should wait before retrying, for 429 and 503.
    #[must_use]
    pub const fn retry_after_s(&self) -> Option<u32> {
        self.retry_after_s
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.as_str(),
            self.code.status(),
            self.message
        )
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The statuses README's API section documents, by code; every code must be here.
    const DOCUMENTED: &[(&str, u16)] = &[
        ("invalid_json", 400),
        ("invalid_body", 400),
        ("invalid_site", 400),
        ("invalid_visitor", 400),
        ("invalid_tab", 400),
        ("invalid_page", 400),
        ("invalid_state", 400),
        ("invalid_member", 400),
        ("invalid_range", 400),
        ("invalid_member_token", 401),
        ("read_key_required", 401),
        ("unknown_site", 403),
        ("origin_not_allowed", 403),
        ("invalid_read_key", 403),
        ("not_public", 403),
        ("not_found", 404),
        ("method_not_allowed", 405),
        ("slow_body", 408),
        ("body_too_large", 413),
        ("unsupported_media_type", 415),
        ("rate_limited", 429),
        ("store_unavailable", 503),
        ("bad_config", 500),
        ("internal", 500),
    ];

    fn is_snake_case(s: &str) -> bool {
        !s.is_empty()
            && !s.starts_with('_')
            && !s.ends_with('_')
            && !s.contains("__")
            && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    }

    #[test]
    fn wire_strings_are_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            assert!(is_snake_case(c.as_str()), "{c:?}: {:?}", c.as_str());
            assert!(seen.insert(c.as_str()), "{c:?}: {:?} twice", c.as_str());
        }
    }

    #[test]
    fn statuses_are_the_documented_ones() {
        let documented: HashMap<_, _> = DOCUMENTED.iter().copied().collect();
        for &c in Code::ALL {
            assert_eq!(
                documented.get(c.as_str()),
                Some(&c.status()),
                "{c:?} is not answered with its documented status"
            );
        }
        assert_eq!(Code::ALL.len(), DOCUMENTED.len(), "a code is undocumented");
    }

    #[test]
    fn readme_names_each_code_with_its_status() {
        // README writes a code with its status as "403 `unknown_site`": each such pair
        // must be the code's status here.
        let readme = include_str!("../../README.md");
        let mut checked = 0;
        for &c in Code::ALL {
            let quoted = format!("`{}`", c.as_str());
            for (at, _) in readme.match_indices(&quoted) {
                let before = readme[..at].trim_end();
                let status = before.get(before.len().saturating_sub(3)..);
                if let Some(s) = status.and_then(|s| s.parse::<u16>().ok()) {
                    assert_eq!(s, c.status(), "README gives {quoted} status {s}");
                    checked += 1;
                }
            }
        }
        assert!(
            checked >= 5,
            "README's status-code pairs were not found ({checked})"
        );
    }

    #[test]
    fn display_has_code_status_and_message() {
        let e = Error::new(Code::InvalidPage, "page \"<x>\" is bad");
        assert_eq!(e.to_string(), "invalid_page (400): page \"<x>\" is bad");
        assert_eq!(e.code().status(), 400);
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let e = Error::unavailable("kv down", 5);
        assert_eq!(e.code(), Code::StoreUnavailable);
        assert_eq!(e.code().status(), 503);
        assert_eq!(e.retry_after_s(), Some(5));
    }
}
