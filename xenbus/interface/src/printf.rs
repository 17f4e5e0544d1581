//! The bus side of the variadic `Printf` methods (STORE, DEBUG).
//!
//! Stable Rust cannot define a C variadic function, so the bus-side
//! trampolines are declared with a fixed number of trailing integer-class
//! parameters ([`SLOTS`]) and installed in the variadic slot of the table. On
//! x86_64, both the Microsoft and the System V conventions pass variadic
//! integer and pointer arguments exactly where the same fixed parameters go,
//! so the trampoline sees the caller's arguments in order; slots past the ones
//! passed hold unrelated values and are never read because the format string
//! does not ask for them. Floating-point arguments travel elsewhere, so the
//! `e f g a` conversions are refused.
//!
//! The format language is the Windows kernel's `printf` subset the C drivers
//! use with these methods: flags `- 0 + space #`, a width, a precision
//! (`.N`, for strings and integers), lengths `hh h l` (32-bit: Windows is
//! LLP64) `ll I64 I z` (64-bit) and conversions `d i u x X o c s p %`.

use alloc::vec::Vec;

/// How many argument slots the bus-side trampolines take after the format.
pub const SLOTS: usize = 8;

/// Why a format could not be expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// A conversion this formatter does not support (floating point, wide
    /// strings, `%n`) or a malformed specification.
    Unsupported(u8),
    /// The format asks for more arguments than [`SLOTS`].
    TooManyArguments,
    /// The output would exceed the caller's limit.
    TooLong,
}

/// Expands `format` with the integer-class argument `slots`, reading strings
/// through `read_str` (which turns a `%s` pointer into its bytes). Output is
/// limited to `limit` bytes.
pub fn format<'s>(
    format: &[u8],
    slots: &[u64],
    read_str: impl Fn(u64) -> &'s [u8],
    limit: usize,
) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    let mut args = slots.iter().copied();
    let mut bytes = format.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            push(&mut out, &[b], limit)?;
            continue;
        }
        let mut spec = parse_spec(&mut bytes)?;
        let mut digits = [0u8; 24];
        let (prefix, body): (&[u8], &[u8]) = match spec.conversion {
            b'%' => (b"", b"%"),
            b'c' => {
                digits[0] = next(&mut args)?.to_le_bytes()[0];
                (b"", &digits[..1])
            }
            b's' => {
                let text = read_str(next(&mut args)?);
                let shown = spec.precision.map_or(text.len(), |p| text.len().min(p));
                (b"", text.get(..shown).unwrap_or(text))
            }
            b'd' | b'i' => {
                let value = signed(next(&mut args)?, spec.wide);
                let sign: &[u8] = if value < 0 {
                    b"-"
                } else if spec.plus {
                    b"+"
                } else if spec.space {
                    b" "
                } else {
                    b""
                };
                (sign, render(value.unsigned_abs(), 10, false, &mut digits))
            }
            b'u' | b'x' | b'X' | b'o' | b'p' => {
                let raw = next(&mut args)?;
                let value = if spec.wide || spec.conversion == b'p' {
                    raw
                } else {
                    raw & 0xffff_ffff
                };
                let (radix, upper) = match spec.conversion {
                    b'u' => (10, false),
                    b'o' => (8, false),
                    b'x' => (16, false),
                    _ => (16, true),
                };
                if spec.conversion == b'p' {
                    spec.zero = true;
                    spec.width = spec.width.max(16);
                }
                let prefix: &[u8] = match (spec.alternate && value != 0, spec.conversion) {
                    (true, b'x') => b"0x",
                    (true, b'X') => b"0X",
                    (true, b'o') => b"0",
                    _ => b"",
                };
                (prefix, render(value, radix, upper, &mut digits))
            }
            other => return Err(FormatError::Unsupported(other)),
        };
        emit(&mut out, &spec, prefix, body, limit)?;
    }
    Ok(out)
}

fn next(args: &mut impl Iterator<Item = u64>) -> Result<u64, FormatError> {
    args.next().ok_or(FormatError::TooManyArguments)
}

/// A `%d` slot as a signed value: the low 32 bits, sign-extended, unless a
/// 64-bit length was given.
fn signed(raw: u64, wide: bool) -> i64 {
    let bytes = raw.to_le_bytes();
    if wide {
        i64::from_le_bytes(bytes)
    } else {
        i64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// Parses flags, width, precision, length and conversion after a `%`.
fn parse_spec(
    bytes: &mut core::iter::Peekable<impl Iterator<Item = u8>>,
) -> Result<Spec, FormatError> {
    let mut spec = Spec::default();
    while let Some(&flag) = bytes.peek() {
        match flag {
            b'-' => spec.left = true,
            b'0' => spec.zero = true,
            b'+' => spec.plus = true,
            b' ' => spec.space = true,
            b'#' => spec.alternate = true,
            _ => break,
        }
        bytes.next();
    }
    spec.width = number(bytes);
    if bytes.peek() == Some(&b'.') {
        bytes.next();
        spec.precision = Some(number(bytes));
    }
    loop {
        match bytes.peek() {
            Some(b'h') => {
                bytes.next();
            }
            Some(b'l') => {
                bytes.next();
                if bytes.peek() == Some(&b'l') {
                    bytes.next();
                    spec.wide = true;
                }
            }
            Some(b'z') => {
                bytes.next();
                spec.wide = true;
            }
            Some(b'I') => {
                bytes.next();
                spec.wide = true;
                match bytes.peek() {
                    Some(b'6') => {
                        bytes.next();
                        if bytes.next() != Some(b'4') {
                            return Err(FormatError::Unsupported(b'I'));
                        }
                    }
                    Some(b'3') => {
                        bytes.next();
                        if bytes.next() != Some(b'2') {
                            return Err(FormatError::Unsupported(b'I'));
                        }
                        spec.wide = false;
                    }
                    _ => {}
                }
            }
            _ => break,
        }
    }
    spec.conversion = bytes.next().ok_or(FormatError::Unsupported(b'%'))?;
    Ok(spec)
}

/// Writes one conversion with its padding.
fn emit(
    out: &mut Vec<u8>,
    spec: &Spec,
    prefix: &[u8],
    body: &[u8],
    limit: usize,
) -> Result<(), FormatError> {
    let numeric = !matches!(spec.conversion, b's' | b'c' | b'%');
    let zeros = match spec.precision {
        Some(p) if numeric => p.saturating_sub(body.len()),
        _ => 0,
    };
    let len = prefix
        .len()
        .saturating_add(zeros)
        .saturating_add(body.len());
    let pad = spec.width.saturating_sub(len);
    let zero_pad = !spec.left && spec.zero && numeric && spec.precision.is_none();
    if !spec.left && !zero_pad {
        fill(out, b' ', pad, limit)?;
    }
    push(out, prefix, limit)?;
    if zero_pad {
        fill(out, b'0', pad, limit)?;
    }
    fill(out, b'0', zeros, limit)?;
    push(out, body, limit)?;
    if spec.left {
        fill(out, b' ', pad, limit)?;
    }
    Ok(())
}

#[derive(Default)]
#[allow(clippy::struct_excessive_bools, reason = "one bool per printf flag")]
struct Spec {
    conversion: u8,
    wide: bool,
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alternate: bool,
    width: usize,
    precision: Option<usize>,
}

/// Reads a decimal number (width or precision); saturates rather than
/// overflowing, the output limit stops it anyway.
fn number(bytes: &mut core::iter::Peekable<impl Iterator<Item = u8>>) -> usize {
    let mut n: usize = 0;
    while let Some(&d) = bytes.peek() {
        if !d.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
        bytes.next();
    }
    n
}

/// Renders `value` in `radix` into the end of `buf`, returning the digits.
fn render(mut value: u64, radix: u64, upper: bool, buf: &mut [u8; 24]) -> &[u8] {
    let table: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut at = buf.len();
    loop {
        at -= 1;
        // `value % radix` < 16: the index is in bounds.
        #[allow(clippy::cast_possible_truncation, reason = "a digit is < 16")]
        let digit = (value % radix) as usize;
        buf[at] = table[digit];
        value /= radix;
        if value == 0 {
            break;
        }
    }
    &buf[at..]
}

fn push(out: &mut Vec<u8>, bytes: &[u8], limit: usize) -> Result<(), FormatError> {
    if out.len().saturating_add(bytes.len()) > limit {
        return Err(FormatError::TooLong);
    }
    out.extend_from_slice(bytes);
    Ok(())
}

fn fill(out: &mut Vec<u8>, byte: u8, count: usize, limit: usize) -> Result<(), FormatError> {
    if out.len().saturating_add(count) > limit {
        return Err(FormatError::TooLong);
    }
    out.resize(out.len() + count, byte);
    Ok(())
}

/// Reads a NUL-terminated string the other side passed.
///
/// # Safety
/// `ptr` must be null or point to a NUL-terminated string that stays valid
/// and unchanged for `'a`.
pub(crate) unsafe fn c_str<'a>(ptr: *const u8) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller's guarantee.
    Some(unsafe { core::ffi::CStr::from_ptr(ptr.cast()) }.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use proptest::prelude::*;

    fn run(fmt: &str, slots: &[u64]) -> Result<String, FormatError> {
        let strings: [&[u8]; 2] = [b"hello", b"xenstore"];
        format(
            fmt.as_bytes(),
            slots,
            |p| {
                strings
                    .get(usize::try_from(p).unwrap_or(0))
                    .copied()
                    .unwrap_or(b"(null)")
            },
            4096,
        )
        .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn expands_what_the_c_drivers_print() {
        assert_eq!(run("%s", &[0]).unwrap(), "hello");
        assert_eq!(run("%u", &[4_294_967_295]).unwrap(), "4294967295");
        assert_eq!(run("%lu", &[0xffff_ffff_0000_0007]).unwrap(), "7");
        assert_eq!(run("%llu", &[u64::MAX]).unwrap(), "18446744073709551615");
        assert_eq!(run("%d", &[0xffff_ffff]).unwrap(), "-1");
        assert_eq!(run("%08X", &[0xbeef]).unwrap(), "0000BEEF");
        assert_eq!(run("%-5s|", &[1]).unwrap(), "xenstore|");
        assert_eq!(run("%5d|%-4u|", &[42, 7]).unwrap(), "   42|7   |");
        assert_eq!(run("%.3s", &[1]).unwrap(), "xen");
        assert_eq!(
            run("%#x %o %c%%", &[255, 8, u64::from(b'z')]).unwrap(),
            "0xff 10 z%"
        );
        assert_eq!(run("%I64x", &[0x1_0000_0000]).unwrap(), "100000000");
        assert_eq!(run("%p", &[0x1000]).unwrap(), "0000000000001000");
        assert_eq!(run("%+d % d", &[5, 5]).unwrap(), "+5  5");
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        assert_eq!(run("%f", &[0]), Err(FormatError::Unsupported(b'f')));
        assert_eq!(run("%n", &[0]), Err(FormatError::Unsupported(b'n')));
        assert_eq!(run("%", &[]), Err(FormatError::Unsupported(b'%')));
        assert_eq!(run("%u", &[]), Err(FormatError::TooManyArguments));
        assert_eq!(
            format(b"%99999d", &[1], |_| b"", 4096),
            Err(FormatError::TooLong)
        );
        // Found by the fuzzer: a precision that saturates must not overflow
        // the length sum.
        assert_eq!(
            format(b"%#.99999999999999999999999x", &[1], |_| b"", 4096),
            Err(FormatError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_respects_the_limit(
            fmt in proptest::collection::vec(any::<u8>(), 0..64),
            slots in proptest::collection::vec(any::<u64>(), 0..SLOTS),
            limit in 0usize..256,
        ) {
            if let Ok(out) = format(&fmt, &slots, |_| b"str", limit) {
                prop_assert!(out.len() <= limit);
            }
        }

        #[test]
        fn plain_text_is_copied(text in "[a-zA-Z0-9 /_-]{0,100}") {
            prop_assert_eq!(run(&text, &[]).unwrap(), text);
        }
    }
}
