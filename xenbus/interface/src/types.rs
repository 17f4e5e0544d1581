//! The Windows scalar types the interface tables are made of, with their C
//! layout on x86_64 (the only target these tables are defined for).
//!
//! Function pointers in the tables are `Option<unsafe extern "C" fn(...)>`: a
//! nullable C function pointer. `extern "C"` is the Microsoft x64 convention on
//! Windows and System V on Linux; both ends of a table are always built for the
//! same target, so each end agrees with the other.

use core::ffi::c_void;
use core::fmt;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the XENBUS interface tables are defined for x86_64 only");

/// `BOOLEAN` (a `UCHAR`: 0 is FALSE, anything else TRUE). Kept as a byte, never a
/// Rust `bool`, because the other side may pass any value.
pub type Boolean = u8;
/// `TRUE`.
pub const TRUE: Boolean = 1;
/// `FALSE`.
pub const FALSE: Boolean = 0;

/// Converts a Rust `bool` to a [`Boolean`].
pub const fn boolean(value: bool) -> Boolean {
    if value { TRUE } else { FALSE }
}

/// `KIRQL`: an interrupt request level.
pub type Kirql = u8;
/// `PFN_NUMBER` (`ULONG_PTR`): a page frame number.
pub type PfnNumber = u64;
/// `PVOID`.
pub type Pvoid = *mut c_void;
/// `PSTR` / `PCSTR`: a NUL-terminated byte string.
pub type Pstr = *mut u8;
/// `PCSTR`.
pub type Pcstr = *const u8;

/// `LARGE_INTEGER` (and `PHYSICAL_ADDRESS`): a signed 64-bit value, 8-byte
/// aligned, passed like an integer.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LargeInteger(pub i64);

/// `NTSTATUS`: negative values are errors, others success or information.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NtStatus(pub i32);

impl NtStatus {
    /// `NT_SUCCESS()`: the value is not an error or a warning (>= 0).
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// The value as the unsigned number the WDK headers print.
    #[allow(
        clippy::cast_sign_loss,
        reason = "an NTSTATUS is read as its bit pattern"
    )]
    pub const fn code(self) -> u32 {
        self.0 as u32
    }

    /// A status from the unsigned number the WDK headers use.
    #[allow(clippy::cast_possible_wrap, reason = "an NTSTATUS is its bit pattern")]
    pub const fn from_code(code: u32) -> Self {
        Self(code as i32)
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NtStatus({:#010x})", self.code())
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.code())
    }
}

macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $code:literal;)*) => {
        $($(#[$doc])* pub const $name: NtStatus = NtStatus::from_code($code);)*
    };
}

statuses! {
    /// The operation succeeded.
    STATUS_SUCCESS = 0x0000_0000;
    /// A wait timed out.
    STATUS_TIMEOUT = 0x0000_0102;
    /// Warning: the buffer is too small for the data (`QueryInterface`: the
    /// caller's table is smaller than the version it asked for).
    STATUS_BUFFER_OVERFLOW = 0x8000_0005;
    /// Generic failure (GNTTAB: access could not be revoked, the remote end
    /// still maps the page).
    STATUS_UNSUCCESSFUL = 0xC000_0001;
    /// The operation is not implemented (`ENOSYS`).
    STATUS_NOT_IMPLEMENTED = 0xC000_0002;
    /// A parameter is invalid (`EINVAL`).
    STATUS_INVALID_PARAMETER = 0xC000_000D;
    /// Out of memory (`ENOMEM`).
    STATUS_NO_MEMORY = 0xC000_0017;
    /// The name is malformed (an invalid xenstore path).
    STATUS_OBJECT_NAME_INVALID = 0xC000_0033;
    /// Access denied (`EACCES`, `EPERM`).
    STATUS_ACCESS_DENIED = 0xC000_0022;
    /// The buffer is too small.
    STATUS_BUFFER_TOO_SMALL = 0xC000_0023;
    /// The object is not of the expected type (an unexpected xenstore value).
    STATUS_OBJECT_TYPE_MISMATCH = 0xC000_0024;
    /// No such object (`ENOENT`).
    STATUS_OBJECT_NAME_NOT_FOUND = 0xC000_0034;
    /// A quota was exceeded (xenstore `EQUOTA`).
    STATUS_QUOTA_EXCEEDED = 0xC000_0044;
    /// Insufficient resources (`ENOSPC`).
    STATUS_INSUFFICIENT_RESOURCES = 0xC000_009A;
    /// Write protected (`EROFS`).
    STATUS_MEDIA_WRITE_PROTECTED = 0xC000_00A2;
    /// The device is not ready (the connection is gone).
    STATUS_DEVICE_NOT_READY = 0xC000_00A3;
    /// Busy (`EBUSY`).
    STATUS_PIPE_BUSY = 0xC000_00AE;
    /// Already connected (`EISCONN`).
    STATUS_PIPE_CONNECTED = 0xC000_00B2;
    /// A device I/O timed out.
    STATUS_IO_TIMEOUT = 0xC000_00B5;
    /// Is a directory (`EISDIR`).
    STATUS_FILE_IS_A_DIRECTORY = 0xC000_00BA;
    /// Not supported (`QueryInterface`: unknown interface GUID or version).
    STATUS_NOT_SUPPORTED = 0xC000_00BB;
    /// Too many requests at once.
    STATUS_TOO_MANY_COMMANDS = 0xC000_00C1;
    /// The peer broke the protocol.
    STATUS_INVALID_NETWORK_RESPONSE = 0xC000_00C3;
    /// I/O error (`EIO`).
    STATUS_UNEXPECTED_IO_ERROR = 0xC000_00E9;
    /// Not empty (`ENOTEMPTY`).
    STATUS_DIRECTORY_NOT_EMPTY = 0xC000_0101;
    /// Invalid buffer size (a xenstore path or value over the limit).
    STATUS_INVALID_BUFFER_SIZE = 0xC000_0206;
    /// Exists (`EEXIST`).
    STATUS_OBJECTID_EXISTS = 0xC000_022B;
    /// Retry (`EAGAIN`: a xenstore transaction conflicted).
    STATUS_RETRY = 0xC000_022D;
}

/// `GUID`: identifies an interface.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid {
    /// First 32 bits.
    pub data1: u32,
    /// Next 16 bits.
    pub data2: u16,
    /// Next 16 bits.
    pub data3: u16,
    /// Last 64 bits, as bytes.
    pub data4: [u8; 8],
}

impl Guid {
    /// A GUID from its `DEFINE_GUID` parts.
    pub const fn new(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Self {
        Self {
            data1,
            data2,
            data3,
            data4,
        }
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Guid {
    /// The registry form: `{86824C3B-D34E-4753-B281-2F1E3AD214D7}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.data4;
        write!(
            f,
            "{{{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}}}",
            self.data1, self.data2, self.data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
        )
    }
}

/// `PINTERFACE_REFERENCE` / `PINTERFACE_DEREFERENCE`: called with the
/// interface's `Context`.
pub type InterfaceReferenceFn = Option<unsafe extern "C" fn(context: Pvoid)>;

/// The WDM `INTERFACE` header every table starts with.
///
/// `size` and `version` say which table the bus wrote; `context` is the bus's
/// own state, passed back (through the header) to every method.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Interface {
    /// `Size`: the size in bytes of the whole table.
    pub size: u16,
    /// `Version`: the interface version of the table.
    pub version: u16,
    /// `Context`: the provider's state.
    pub context: Pvoid,
    /// `InterfaceReference`: takes a reference on `context` (may be null: the
    /// Xen Project C bus leaves it null and counts in `Acquire`).
    pub interface_reference: InterfaceReferenceFn,
    /// `InterfaceDereference`: drops that reference.
    pub interface_dereference: InterfaceReferenceFn,
}

impl Interface {
    /// A header for a table of `size` bytes and version `version`, with no
    /// context (the bus fills it when it serves the table).
    pub const fn new(size: u16, version: u16) -> Self {
        Self {
            size,
            version,
            context: core::ptr::null_mut(),
            interface_reference: None,
            interface_dereference: None,
        }
    }
}

/// `PINTERFACE`: what every table method gets first.
pub type Pinterface = *mut Interface;

/// Declares an opaque handle type: only ever used behind a raw pointer, owned
/// by whichever side made it.
macro_rules! opaque {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            pub struct $name {
                _data: [u8; 0],
                _marker: ::core::marker::PhantomData<(*mut u8, ::core::marker::PhantomPinned)>,
            }

            impl ::core::fmt::Debug for $name {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.write_str(stringify!($name))
                }
            }
        )*
    };
}
pub(crate) use opaque;

opaque! {
    /// `KEVENT`: a kernel event object (STORE watches, CONSOLE wakeups).
    KEvent;
    /// `KINTERRUPT`: passed to an event channel callback (always null from XENBUS).
    KInterrupt;
    /// `MDL`: a memory descriptor list (XENVIF packets).
    Mdl;
}

/// `PKSERVICE_ROUTINE`: an event channel callback, `BOOLEAN (PKINTERRUPT, PVOID)`.
pub type KServiceRoutine =
    Option<unsafe extern "C" fn(interrupt: *mut KInterrupt, context: Pvoid) -> Boolean>;

/// `LIST_ENTRY`: a doubly linked list link.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ListEntry {
    /// `Flink`.
    pub flink: *mut ListEntry,
    /// `Blink`.
    pub blink: *mut ListEntry,
}

/// `PROCESSOR_NUMBER`: a CPU by group and number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessorNumber {
    /// `Group`.
    pub group: u16,
    /// `Number` within the group.
    pub number: u8,
    /// `Reserved`.
    pub reserved: u8,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn scalar_layouts_match_the_wdk_on_x86_64() {
        assert_eq!(size_of::<Interface>(), 32);
        assert_eq!(offset_of!(Interface, size), 0);
        assert_eq!(offset_of!(Interface, version), 2);
        assert_eq!(offset_of!(Interface, context), 8);
        assert_eq!(offset_of!(Interface, interface_reference), 16);
        assert_eq!(offset_of!(Interface, interface_dereference), 24);
        assert_eq!(size_of::<Guid>(), 16);
        assert_eq!(size_of::<LargeInteger>(), 8);
        assert_eq!(core::mem::align_of::<LargeInteger>(), 8);
        assert_eq!(size_of::<NtStatus>(), 4);
        assert_eq!(size_of::<ListEntry>(), 16);
        assert_eq!(size_of::<ProcessorNumber>(), 4);
        assert_eq!(size_of::<KServiceRoutine>(), 8);
    }

    #[test]
    fn statuses_have_the_wdk_values() {
        assert_eq!(STATUS_BUFFER_OVERFLOW.code(), 0x8000_0005);
        assert_eq!(STATUS_NOT_SUPPORTED.code(), 0xC000_00BB);
        assert!(STATUS_SUCCESS.is_success());
        assert!(STATUS_TIMEOUT.is_success());
        assert!(!STATUS_BUFFER_OVERFLOW.is_success());
        assert!(!STATUS_NOT_SUPPORTED.is_success());
    }

    #[test]
    fn guid_prints_in_registry_form() {
        let g = Guid::new(
            0x8682_4c3b,
            0xd34e,
            0x4753,
            [0xb2, 0x81, 0x2f, 0x1e, 0x3a, 0xd2, 0x14, 0xd7],
        );
        assert_eq!(
            alloc::format!("{g}"),
            "{86824C3B-D34E-4753-B281-2F1E3AD214D7}"
        );
    }
}
