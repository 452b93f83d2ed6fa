//! The one error type of `herenow-core`.
//!
//! Every failure the core can report carries a stable machine-readable `code`, a human
//! message and the kind of failure. The edge turns a [`Error`] into an HTTP status once,
//! at its boundary ([`ErrorKind::status`]); the client turns it into a JS error.

use core::fmt;

/// What went wrong, coarse enough to pick an HTTP status from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Malformed or invalid input (400).
    BadRequest,
    /// A member token was given but is not valid (401).
    Unauthorized,
    /// Unknown site or an origin the site does not allow (403).
    Forbidden,
    /// No such route (404).
    NotFound,
    /// The route exists but not for this method (405).
    MethodNotAllowed,
    /// The body did not arrive in time (408).
    RequestTimeout,
    /// The body is larger than [`crate::protocol::MAX_BODY_BYTES`] (413).
    PayloadTooLarge,
    /// A content type other than `application/json` or `text/plain` (415).
    UnsupportedMediaType,
    /// A rate limit was hit (429); see [`Error::retry_after_s`].
    TooManyRequests,
    /// The store failed or timed out (503); see [`Error::retry_after_s`].
    Unavailable,
    /// A bug or a broken deployment (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManyRequests => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// An error with a stable code (e.g. `invalid_visitor`) and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    code: &'static str,
    message: String,
    retry_after_s: Option<u32>,
}

impl Error {
    /// A new error of `kind` with a stable `code` and a `message`.
    #[must_use]
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// A 400 error with `code` and `message`.
    #[must_use]
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    /// A 503 error: the store failed; clients should retry after `retry_after_s`.
    #[must_use]
    pub fn unavailable(message: impl Into<String>, retry_after_s: u32) -> Self {
        Self::new(ErrorKind::Unavailable, "store_unavailable", message)
            .with_retry_after(retry_after_s)
    }

    /// The same error, telling clients to wait `seconds` before retrying.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The kind of failure.
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable machine-readable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
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

    /// The HTTP status for this error.
    #[must_use]
    pub const fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The JSON error body: `{"error":{"code":"…","message":"…"}}`.
    #[must_use]
    pub fn to_json(&self) -> String {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        body.to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.kind.status(),
            self.message
        )
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_escapes_and_has_code() {
        let e = Error::bad_request("invalid_page", "page \"<x>\" is bad");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("valid json");
        assert_eq!(v["error"]["code"], "invalid_page");
        assert_eq!(v["error"]["message"], "page \"<x>\" is bad");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn statuses() {
        assert_eq!(Error::unavailable("kv down", 5).status(), 503);
        assert_eq!(Error::unavailable("kv down", 5).retry_after_s(), Some(5));
        assert_eq!(ErrorKind::UnsupportedMediaType.status(), 415);
        assert_eq!(ErrorKind::RequestTimeout.status(), 408);
    }
}
