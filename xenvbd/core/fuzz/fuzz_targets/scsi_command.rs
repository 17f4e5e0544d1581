//! CDBs, parameter lists and unit shapes from the fuzzer into the SCSI
//! translation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xenvbd_core::fuzz::scsi_command(data);
});
