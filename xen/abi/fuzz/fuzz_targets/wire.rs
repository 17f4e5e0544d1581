//! Peer-written bytes through every decoder of the crate (ring slot unions,
//! xenstore header, error names, xenbus states). Body: `xen_abi::fuzz_bodies::wire`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xen_abi::fuzz_bodies::wire(data);
});
