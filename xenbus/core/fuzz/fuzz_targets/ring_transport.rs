//! A script of daemon index moves (honest and hostile) against the shared-ring
//! transport. Body: `xenbus_core::fuzz_bodies`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xenbus_core::fuzz_bodies::ring_transport(data);
});
