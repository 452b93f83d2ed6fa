//! The crate's one error type, turned into a JavaScript `Error` once, at the boundary.

use std::borrow::Cow;

use wasm_bindgen::JsValue;

/// Why starting or talking to the server failed.
///
/// Every fallible path in the crate returns this; [`From<Error> for JsValue`] makes a JS
/// `Error` (message prefixed with `herenow: `) where it crosses into JavaScript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: Cow<'static, str>,
}

impl Error {
    /// An error with this message.
    #[must_use]
    pub(crate) const fn new(message: &'static str) -> Self {
        Self {
            message: Cow::Borrowed(message),
        }
    }

    /// An error with this message and the message of a JavaScript exception, if it has one.
    #[must_use]
    pub(crate) fn with_js(context: &'static str, value: &JsValue) -> Self {
        let detail = crate::web::prop(value, "message")
            .as_string()
            .or_else(|| value.as_string());
        Self::with_detail(context, detail.as_deref())
    }

    /// An error with this message and `": " + detail` when there is a detail.
    #[must_use]
    pub(crate) fn with_detail(context: &'static str, detail: Option<&str>) -> Self {
        match detail {
            Some(detail) => {
                let mut message = String::from(context);
                message.push_str(": ");
                message.push_str(detail);
                Self {
                    message: Cow::Owned(message),
                }
            }
            None => Self::new(context),
        }
    }

    /// The message (without the `herenow: ` prefix).
    #[must_use]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> Self {
        let mut text = String::from("herenow: ");
        text.push_str(&e.message);
        js_sys::Error::new(&text).into()
    }
}
