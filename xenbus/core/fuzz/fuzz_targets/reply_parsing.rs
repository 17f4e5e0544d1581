//! Hostile xenstored replies, split arbitrarily, against an engine with requests
//! in flight, plus every payload parser. Body: `xenbus_core::fuzz_bodies`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xenbus_core::fuzz_bodies::reply_parsing(data);
});
