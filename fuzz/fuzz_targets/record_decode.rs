//! Any bytes as another isolate's record: decoding never panics, and a decoded record
//! re-encodes to one that decodes the same.
#![no_main]
use herenow_core::engine::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = Record::decode(data) {
        let again = Record::decode(&r.encode()).expect("a decoded record re-encodes");
        assert_eq!(again, r);
    }
});
