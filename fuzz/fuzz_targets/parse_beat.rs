//! Any bytes as a heartbeat body: parsing never panics, and what it accepts is valid and
//! already normalised.
#![no_main]
use herenow_core::protocol::{self, MAX_PAGE_BYTES, MAX_TAB_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(beat) = protocol::parse_beat(data) {
        assert!(protocol::is_visitor_id(&beat.visitor));
        assert!(protocol::validate_site(&beat.site).is_ok());
        assert!(!beat.tab.is_empty() && beat.tab.len() <= MAX_TAB_BYTES);
        assert!(beat.page.starts_with('/') && beat.page.len() <= MAX_PAGE_BYTES);
        assert_eq!(protocol::normalize_page(&beat.page).ok().as_deref(), Some(beat.page.as_str()));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(p) = protocol::normalize_page(s) {
            assert_eq!(protocol::normalize_page(&p).ok(), Some(p.clone()), "idempotent");
            assert!(!p.chars().any(char::is_control));
        }
    }
});
