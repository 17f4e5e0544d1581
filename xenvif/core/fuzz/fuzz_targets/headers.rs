//! Packet header parsing, software checksums and RSS hash input on arbitrary
//! frames (the body lives in `xenvif_core::fuzz` so unit tests run it too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xenvif_core::fuzz::headers(data));
