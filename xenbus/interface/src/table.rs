//! What every interface table has in common.

use crate::types::{Guid, Interface};

/// One released version of one interface: a `#[repr(C)]` table that starts with
/// the [`Interface`] header.
///
/// # Safety
/// The implementing type must be `#[repr(C)]`, start with an [`Interface`]
/// field, consist only of integers, raw pointers and `Option` of function
/// pointers (so the all-zero value is valid), and have exactly the layout the
/// C header gives version [`InterfaceTable::VERSION`] of interface
/// [`InterfaceTable::GUID`].
pub unsafe trait InterfaceTable: Copy {
    /// The interface's GUID.
    const GUID: Guid;
    /// This table's version.
    const VERSION: u16;
    /// The interface's name in the C headers (for logs).
    const NAME: &'static str;

    /// The table with every field zero / null / `None`.
    fn zeroed() -> Self {
        // SAFETY: the trait's contract: all-zero is a valid value of `Self`.
        unsafe { core::mem::zeroed() }
    }

    /// The header.
    fn header(&self) -> &Interface {
        // SAFETY: the trait's contract: `Self` is repr(C) and starts with an
        // `Interface`, so a pointer to `self` is a valid pointer to it.
        unsafe { &*core::ptr::from_ref(self).cast::<Interface>() }
    }

    /// `sizeof` the table, as the header's `Size` field holds it.
    fn size() -> u16 {
        const { assert!(core::mem::size_of::<Self>() <= u16::MAX as usize) };
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked by the const assert"
        )]
        let size = core::mem::size_of::<Self>() as u16;
        size
    }
}

/// Declares one version of an interface table.
macro_rules! interface_table {
    (
        $(#[$doc:meta])*
        $name:ident = ($guid:expr, $version:literal, $label:literal) {
            $($(#[$fdoc:meta])* $field:ident : $ty:ty,)*
        }
    ) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            /// The `INTERFACE` header.
            pub header: $crate::types::Interface,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        // SAFETY: `#[repr(C)]`, starts with the `Interface` header, and every
        // other field is a function pointer `Option` (all-zero is `None`); the
        // field order is the C header's, frozen by the layout tests.
        unsafe impl $crate::table::InterfaceTable for $name {
            const GUID: $crate::types::Guid = $guid;
            const VERSION: u16 = $version;
            const NAME: &'static str = $label;
        }
    };
}
pub(crate) use interface_table;
