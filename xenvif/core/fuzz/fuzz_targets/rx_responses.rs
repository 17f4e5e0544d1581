//! The rx ring against a backend writing arbitrary responses, interleaved
//! with posts, polls and grants kept mapped (the body lives in
//! `xenvif_core::fuzz` so unit tests run it too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xenvif_core::fuzz::rx_responses(data);
});
