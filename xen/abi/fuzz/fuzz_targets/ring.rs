//! A hostile peer on a shared ring: API calls on both ends interleaved with
//! arbitrary writes to the shared indices. Body: `xen_abi::fuzz_bodies::ring`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xen_abi::fuzz_bodies::ring(data);
});
