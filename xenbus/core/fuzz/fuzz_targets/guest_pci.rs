//! A hostile device model's PCI configuration space (and BAR sizing
//! answers, and an ATA IDENTIFY answer) against the guest's PCI scan, BAR
//! decoder, platform device search and IDENTIFY parser. Body:
//! `xenbus_core::fuzz_bodies::guest_pci`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xenbus_core::fuzz_bodies::guest_pci(data);
});
