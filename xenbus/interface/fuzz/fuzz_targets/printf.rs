//! A child's `Printf` (STORE, DEBUG) with any format and arguments, expanded
//! by the bus. Body: `xenbus_interface::fuzz_bodies::printf`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xenbus_interface::fuzz_bodies::printf(data);
});
