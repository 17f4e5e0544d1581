//! Hostile blkif responses (ids, operations, statuses, producer jumps) against
//! a connected frontend with requests in flight.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xenvbd_core::fuzz::blkif_responses(data);
});
