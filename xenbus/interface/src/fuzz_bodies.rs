//! Bodies of the cargo-fuzz targets in `fuzz/` (feature `fuzzing`), also run
//! by the unit tests below over deterministic pseudo-random inputs so that CI
//! exercises them without a fuzzer.

use crate::printf::{self, SLOTS};
use crate::revision::{self, XenbusRevision};

/// The bus-side `Printf` formatter on hostile input: the first bytes are
/// the argument slots and a limit, the rest the format. Never panics; output
/// stays within the limit; plain text comes out unchanged.
///
/// # Panics
/// When one of those properties fails (that is the finding).
pub fn printf(data: &[u8]) {
    let mut slots = [0u64; SLOTS];
    let mut at = 0;
    for slot in &mut slots {
        let mut bytes = [0u8; 8];
        for byte in &mut bytes {
            *byte = data.get(at).copied().unwrap_or(0);
            at += 1;
        }
        *slot = u64::from_le_bytes(bytes);
    }
    let limit = usize::from(data.get(at).copied().unwrap_or(0)) * 8;
    let format = data.get(at + 1..).unwrap_or(&[]);
    let strings: [&[u8]; 3] = [b"", b"xenstore", b"a fairly long string argument"];
    let read_str = |p: u64| {
        strings
            .get(usize::try_from(p % 4).unwrap_or(0))
            .copied()
            .unwrap_or(b"(null)")
    };
    match printf::format(format, &slots, read_str, limit) {
        Ok(out) => {
            assert!(out.len() <= limit, "output over the limit");
            if !format.contains(&b'%') {
                assert_eq!(out, format, "plain text changed");
            }
        }
        Err(printf::FormatError::TooLong) => {
            assert!(format.len() > limit || format.contains(&b'%'));
        }
        Err(_) => assert!(format.contains(&b'%'), "an error without a conversion"),
    }
}

/// A hardware ID from anywhere: never panics; a revision it names is found
/// only if it is in the table, and reading it back gives the same number.
///
/// # Panics
/// When one of those properties fails (that is the finding).
pub fn hardware_id(data: &[u8]) {
    let text = core::str::from_utf8(data).unwrap_or("");
    if let Some(number) = revision::revision_of(text) {
        assert!(
            text.ends_with(&alloc::format!("{number:08X}"))
                || text
                    .to_ascii_uppercase()
                    .ends_with(&alloc::format!("{number:08X}"))
        );
        if let Some(found) = XenbusRevision::find(number) {
            assert_eq!(found.number, number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// xorshift64*: deterministic inputs without a dependency.
    fn inputs(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut state = seed;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        (0..count).map(move |_| {
            let len = usize::try_from(next() % 160).unwrap_or(0);
            let alphabet = b"%%%sduxXlhI64zc.-0+# 123456789abcXYZ/";
            (0..len)
                .map(|i| {
                    let r = next();
                    if i < 72 || r % 3 == 0 {
                        r.to_le_bytes()[0]
                    } else {
                        alphabet[usize::try_from(r % alphabet.len() as u64).unwrap_or(0)]
                    }
                })
                .collect()
        })
    }

    #[test]
    fn printf_body_survives_many_inputs() {
        for input in inputs(0x5eed, 5000) {
            printf(&input);
        }
        // A few shapes by hand: plain text, every conversion, a long pad.
        let mut input = Vec::from([0u8; 8 * SLOTS]);
        input.push(255);
        input.extend_from_slice(b"%s %d %u %x %X %o %c %p %% %lu %llx %I64u %I32d %zx %-8.3s|%08d");
        printf(&input);
        let mut long = Vec::from([0u8; 8 * SLOTS]);
        long.push(1);
        long.extend_from_slice(b"%999999999d");
        printf(&long);
    }

    #[test]
    fn hardware_id_body_survives_many_inputs() {
        for input in inputs(0xfeed, 5000) {
            hardware_id(&input);
        }
        hardware_id(b"XENBUS\\VEN_XP0002&DEV_VBD&REV_0900000C");
        hardware_id(b"XENBUS\\VEN_XP0002&DEV_VBD&REV_0900000c");
        hardware_id(b"&REV_");
        hardware_id("&REV_\u{1F600}\u{1F600}".as_bytes());
    }
}
