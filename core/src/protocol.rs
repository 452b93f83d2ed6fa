//! The v1 wire protocol: request bodies, their validation, and response objects.
//!
//! Validation is strict and happens before anything is recorded: a body that fails any
//! rule yields an [`Error`] and the caller records nothing.

use serde::{Deserialize, Serialize};

use crate::error::{Code, Error};

/// The largest request body accepted, in bytes (larger: 413).
pub const MAX_BODY_BYTES: usize = 4096;
/// The longest page path accepted, in bytes, after normalisation.
pub const MAX_PAGE_BYTES: usize = 512;
/// The longest tab id accepted, in bytes.
pub const MAX_TAB_BYTES: usize = 64;
/// The longest site name accepted, in bytes.
pub const MAX_SITE_BYTES: usize = 64;
/// The longest member token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 2048;
/// How many pages a count lists, busiest first.
pub const TOP_PAGES: usize = 20;

/// Whether a tab is in front of its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TabState {
    /// Visible.
    Active,
    /// Hidden or frozen.
    Idle,
}

impl TabState {
    /// Parses `active` or `idle`.
    ///
    /// # Errors
    /// `invalid_state` for anything else.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "active" => Ok(Self::Active),
            "idle" => Ok(Self::Idle),
            _ => Err(Error::new(
                Code::InvalidState,
                "state must be \"active\" or \"idle\"",
            )),
        }
    }

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Idle => "idle",
        }
    }
}

/// A validated heartbeat or leave body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// The site name (shape-checked; whether it exists is the edge's call).
    pub site: String,
    /// The visitor id: a lowercase hyphenated uuid v4.
    pub visitor: String,
    /// The tab id: 1–64 bytes of `[A-Za-z0-9_-]`.
    pub tab: String,
    /// The normalised page path.
    pub page: String,
    /// The tab's state.
    pub state: TabState,
    /// A member token, if the page passed one (verified by the edge).
    pub member_token: Option<String>,
}

#[derive(Deserialize)]
struct BeatWire {
    site: Option<String>,
    visitor: Option<String>,
    tab: Option<String>,
    page: Option<String>,
    state: Option<String>,
    member_token: Option<String>,
}

/// Parses and validates a heartbeat or leave body.
///
/// # Errors
/// `body_too_large` (413) past [`MAX_BODY_BYTES`]; `invalid_json` for a body that is not a
/// JSON object of strings; `invalid_site`, `invalid_visitor`, `invalid_tab`, `invalid_page`,
/// `invalid_state`, `invalid_member_token` for a field that breaks its rule.
pub fn parse_beat(body: &[u8]) -> Result<Beat, Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::new(
            Code::BodyTooLarge,
            format!("body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let wire: BeatWire = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            Code::InvalidJson,
            format!("body must be a JSON object with string fields: {e}"),
        )
    })?;
    let site = wire
        .site
        .ok_or_else(|| Error::new(Code::InvalidSite, "site is required"))?;
    validate_site(&site)?;
    let visitor = wire
        .visitor
        .ok_or_else(|| Error::new(Code::InvalidVisitor, "visitor is required"))?;
    validate_visitor(&visitor)?;
    let tab = wire
        .tab
        .ok_or_else(|| Error::new(Code::InvalidTab, "tab is required"))?;
    validate_tab(&tab)?;
    let page = normalize_page(wire.page.as_deref().unwrap_or("/"))?;
    let state = match wire.state.as_deref() {
        None => TabState::Active,
        Some(s) => TabState::parse(s)?,
    };
    let member_token = match wire.member_token {
        Some(t) if t.is_empty() => None,
        Some(t) if t.len() > MAX_TOKEN_BYTES || !t.is_ascii() => {
            return Err(Error::new(
                Code::InvalidMemberToken,
                format!("member_token must be ASCII and at most {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        other => other,
    };
    Ok(Beat {
        site,
        visitor,
        tab,
        page,
        state,
        member_token,
    })
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Checks a site name: 1–64 bytes of `[A-Za-z0-9_-]`.
///
/// # Errors
/// `invalid_site`.
pub fn validate_site(site: &str) -> Result<(), Error> {
    if site.is_empty() || site.len() > MAX_SITE_BYTES || !site.bytes().all(is_name_byte) {
        return Err(Error::new(
            Code::InvalidSite,
            format!("site must be 1-{MAX_SITE_BYTES} characters of A-Z a-z 0-9 _ -"),
        ));
    }
    Ok(())
}

/// Checks a tab id: 1–64 bytes of `[A-Za-z0-9_-]`.
///
/// # Errors
/// `invalid_tab`.
pub fn validate_tab(tab: &str) -> Result<(), Error> {
    if tab.is_empty() || tab.len() > MAX_TAB_BYTES || !tab.bytes().all(is_name_byte) {
        return Err(Error::new(
            Code::InvalidTab,
            format!("tab must be 1-{MAX_TAB_BYTES} characters of A-Z a-z 0-9 _ -"),
        ));
    }
    Ok(())
}

/// Whether `s` is a canonical visitor id: a lowercase hyphenated uuid of version 4 and the
/// RFC 4122 variant.
#[must_use]
pub fn is_visitor_id(s: &str) -> bool {
    // The canonical form only: 36 bytes, lowercase (uuid's parser also accepts braces, URNs
    // and the simple form, which would give one visitor several spellings).
    if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    match uuid::Uuid::try_parse(s) {
        Ok(u) => u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122,
        Err(_) => false,
    }
}

/// Checks a visitor id (see [`is_visitor_id`]).
///
/// # Errors
/// `invalid_visitor`.
pub fn validate_visitor(visitor: &str) -> Result<(), Error> {
    if is_visitor_id(visitor) {
        Ok(())
    } else {
        Err(Error::new(
            Code::InvalidVisitor,
            "visitor must be a lowercase hyphenated uuid v4",
        ))
    }
}

/// A new visitor id from 16 random bytes (version and variant bits are set here).
#[must_use]
pub fn visitor_id_from_random(bytes: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Normalises a page path: drops any query and fragment, collapses repeated slashes,
/// resolves `.` and `..` segments, drops a trailing slash (but keeps `/`).
///
/// # Errors
/// `invalid_page` if the path does not start with `/`, holds a control character, or is
/// longer than [`MAX_PAGE_BYTES`] once normalised.
pub fn normalize_page(raw: &str) -> Result<String, Error> {
    if raw.chars().any(char::is_control) {
        return Err(Error::new(
            Code::InvalidPage,
            "page must not contain control characters",
        ));
    }
    let path = raw.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(Error::new(Code::InvalidPage, "page must start with /"));
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    if out.len() > MAX_PAGE_BYTES {
        return Err(Error::new(
            Code::InvalidPage,
            format!("page must be at most {MAX_PAGE_BYTES} bytes"),
        ));
    }
    Ok(out)
}

/// People online on one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCount {
    /// The normalised page path.
    pub page: String,
    /// People with at least one live tab on it.
    pub online: u64,
}

/// The aggregated count for a site, as `GET /v1/count` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Count {
    /// People (visitors) with at least one live tab.
    pub online: u64,
    /// Live tabs.
    pub tabs: u64,
    /// People online who are members.
    pub members: u64,
    /// People online who are guests.
    pub guests: u64,
    /// People online none of whose tabs is active.
    pub idle: u64,
    /// People on the page asked for, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub page: Option<u64>,
    /// The busiest pages (at most [`TOP_PAGES`]), by people online.
    pub pages: Vec<PageCount>,
    /// The presence window: a tab with no heartbeat for this long is gone.
    pub window_s: u64,
    /// When this count was computed, in Unix milliseconds.
    pub as_of: u64,
}

/// The answer to `POST /v1/heartbeat`: the count plus when to beat next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeatResponse {
    /// The site's count.
    #[serde(flatten)]
    pub count: Count,
    /// When the client should send its next heartbeat, in milliseconds.
    pub next_heartbeat_ms: u64,
    /// The most people ever online on the site and when (`{"online","at"}`), once the
    /// answering isolate knows it (see [`crate::history`]); absent before.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record: Option<crate::history::stored::Mark>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

    fn body(json: serde_json::Value) -> Vec<u8> {
        json.to_string().into_bytes()
    }

    #[test]
    fn parses_a_full_beat() {
        let b = parse_beat(&body(serde_json::json!({
            "site": "demo", "visitor": V, "tab": "t1", "page": "/a//b/../c/?q=1#x",
            "state": "idle", "member_token": "abc.def.ghi"
        })))
        .expect("valid");
        assert_eq!(b.page, "/a/c");
        assert_eq!(b.state, TabState::Idle);
        assert_eq!(b.member_token.as_deref(), Some("abc.def.ghi"));
    }

    #[test]
    fn defaults_page_and_state() {
        let b = parse_beat(&body(
            serde_json::json!({"site": "demo", "visitor": V, "tab": "t1"}),
        ))
        .expect("valid");
        assert_eq!(b.page, "/");
        assert_eq!(b.state, TabState::Active);
        assert_eq!(b.member_token, None);
    }

    #[test]
    fn rejects_each_bad_field_with_its_code() {
        let cases = [
            (
                serde_json::json!({"site": "de mo", "visitor": V, "tab": "t"}),
                "invalid_site",
            ),
            (
                serde_json::json!({"visitor": V, "tab": "t"}),
                "invalid_site",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": V.to_uppercase(), "tab": "t"}),
                "invalid_visitor",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "tab": "t"}),
                "invalid_visitor",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": V, "tab": ""}),
                "invalid_tab",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": V, "tab": "x".repeat(65)}),
                "invalid_tab",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": V, "tab": "t", "page": "a"}),
                "invalid_page",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": V, "tab": "t", "page": "/a\nb"}),
                "invalid_page",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": V, "tab": "t", "page": format!("/{}", "a".repeat(512))}),
                "invalid_page",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": V, "tab": "t", "state": "gone"}),
                "invalid_state",
            ),
            (
                serde_json::json!({"site": "demo", "visitor": V, "tab": 5}),
                "invalid_json",
            ),
            (serde_json::json!([1, 2]), "invalid_json"),
        ];
        for (json, code) in cases {
            let err = parse_beat(&body(json.clone())).expect_err("must fail");
            assert_eq!(err.code().as_str(), code, "for {json}");
            assert_eq!(err.code().status(), 400);
        }
    }

    #[test]
    fn rejects_large_bodies_with_413() {
        let err = parse_beat(&vec![b' '; MAX_BODY_BYTES + 1]).expect_err("too large");
        assert_eq!(err.code().status(), 413);
    }

    #[test]
    fn visitor_ids_from_random_bytes_are_valid() {
        for seed in 0u8..=255 {
            let id = visitor_id_from_random([seed; 16]);
            assert!(is_visitor_id(&id), "{id}");
        }
        assert!(!is_visitor_id("{3f2504e0-4f89-41d3-9a0c-0305e82c3301}"));
        assert!(!is_visitor_id("3f2504e04f8941d39a0c0305e82c3301"));
    }

    #[test]
    fn count_serialises_the_v1_shape() {
        let c = Count {
            online: 2,
            tabs: 3,
            guests: 2,
            pages: vec![PageCount {
                page: "/".into(),
                online: 2,
            }],
            window_s: 60,
            as_of: 1,
            ..Count::default()
        };
        let v = serde_json::to_value(BeatResponse {
            count: c,
            next_heartbeat_ms: 15_000,
            record: None,
        })
        .expect("json");
        assert_eq!(v["online"], 2);
        assert_eq!(v["next_heartbeat_ms"], 15_000);
        assert!(v.get("page").is_none());
        assert!(v.get("record").is_none(), "absent while unknown");
    }
}
