//! Any string as a member token: verification never panics and accepts nothing it cannot
//! have been signed with (the fuzzer does not know the key).
#![no_main]
use herenow_core::token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let r = token::verify(s, b"fuzz-secret-fuzz-secret-fuzz-secret!", 1_800_000_000_000);
        if let Ok(m) = r {
            // Only possible if the fuzzer forged HMAC-SHA256: fail loudly.
            panic!("accepted a token without the key: {m:?}");
        }
    }
});
