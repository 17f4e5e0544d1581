//! Any string as a hardware ID: the revision it names, if any. Body:
//! `xenbus_interface::fuzz_bodies::hardware_id`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xenbus_interface::fuzz_bodies::hardware_id(data);
});
