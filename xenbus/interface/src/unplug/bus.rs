//! Serving UNPLUG (versions 1 to 3) from any [`Unplug`] implementation.

use super::{
    DEVICE_TYPE_DISKS, DEVICE_TYPE_NICS, UnplugInterfaceV1, UnplugInterfaceV2, UnplugInterfaceV3,
};
use crate::api::{Unplug, UnplugDevices};
use crate::printf;
use crate::serve::{self, Owned, References, ServeInterface, served_header, write_table};
use crate::types::{
    Boolean, FALSE, Guid, Interface, NtStatus, Pinterface, Pstr, STATUS_NOT_SUPPORTED, boolean,
};
use core::fmt;
use core::ops::RangeInclusive;

/// Serves UNPLUG from `U`.
pub struct UnplugProvider<U: Unplug + Sync> {
    context: Owned<Context<U>>,
}

#[repr(C)]
struct Context<U> {
    refs: References,
    unplug: U,
}

impl<U: Unplug + Sync> UnplugProvider<U> {
    /// A provider serving `unplug`.
    pub fn new(unplug: U) -> Self {
        Self {
            context: Owned::new(Context {
                refs: References::default(),
                unplug,
            }),
        }
    }

    /// The implementation served.
    pub fn unplug(&self) -> &U {
        &self.context.unplug
    }
}

impl<U: Unplug + Sync> fmt::Debug for UnplugProvider<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnplugProvider")
            .field("references", &self.context.refs)
            .finish_non_exhaustive()
    }
}

// SAFETY: the only shared state is `U: Sync` and atomics.
unsafe impl<U: Unplug + Sync> Sync for UnplugProvider<U> {}
// SAFETY: the context moves with the provider.
unsafe impl<U: Unplug + Sync + Send> Send for UnplugProvider<U> {}

impl<U: Unplug + Sync> ServeInterface for UnplugProvider<U> {
    fn guid(&self) -> Guid {
        super::GUID
    }

    fn versions(&self) -> RangeInclusive<u16> {
        super::VERSION_MIN..=super::VERSION_MAX
    }

    unsafe fn get_interface(&self, version: u16, buffer: *mut Interface, size: u16) -> NtStatus {
        let context = self.context.as_context();
        match version {
            1 => {
                let table = UnplugInterfaceV1 {
                    header: served_header::<UnplugInterfaceV1>(context),
                    acquire: Some(serve::acquire),
                    release: Some(serve::release),
                    request: Some(request::<U>),
                };
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(table, buffer, size) }
            }
            2 => {
                let table = UnplugInterfaceV2 {
                    header: served_header::<UnplugInterfaceV2>(context),
                    acquire: Some(serve::acquire),
                    release: Some(serve::release),
                    request: Some(request::<U>),
                    is_requested: Some(is_requested::<U>),
                };
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(table, buffer, size) }
            }
            3 => {
                let table = UnplugInterfaceV3 {
                    header: served_header::<UnplugInterfaceV3>(context),
                    acquire: Some(serve::acquire),
                    release: Some(serve::release),
                    request: Some(request::<U>),
                    is_requested: Some(is_requested::<U>),
                    boot_emulated: Some(boot_emulated::<U>),
                    reboot: Some(reboot::<U>),
                };
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(table, buffer, size) }
            }
            _ => STATUS_NOT_SUPPORTED,
        }
    }

    fn references(&self) -> &References {
        &self.context.refs
    }
}

/// # Safety
/// `interface` is the header of a table this module served, provider alive.
unsafe fn context<'a, U>(interface: Pinterface) -> &'a Context<U> {
    // SAFETY: the caller's guarantee.
    unsafe { serve::provider::<Context<U>>(interface) }
}

fn devices(kind: u32) -> Option<UnplugDevices> {
    match kind {
        DEVICE_TYPE_NICS => Some(UnplugDevices::Nics),
        DEVICE_TYPE_DISKS => Some(UnplugDevices::Disks),
        _ => None,
    }
}

unsafe extern "C" fn request<U: Unplug>(interface: Pinterface, kind: u32, make: Boolean) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<U>(interface) };
    // An unknown type is ignored (the C bus asserts).
    if let Some(devices) = devices(kind) {
        context.unplug.request(devices, make != 0);
    }
}

unsafe extern "C" fn is_requested<U: Unplug>(interface: Pinterface, kind: u32) -> Boolean {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<U>(interface) };
    let requested = devices(kind).and_then(|d| context.unplug.is_requested(d));
    boolean(requested.unwrap_or(false))
}

unsafe extern "C" fn boot_emulated<U: Unplug>(interface: Pinterface) -> Boolean {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<U>(interface) };
    context.unplug.boot_emulated().map_or(FALSE, boolean)
}

unsafe extern "C" fn reboot<U: Unplug>(interface: Pinterface, module: Pstr) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<U>(interface) };
    // SAFETY: the C contract: a NUL-terminated module name.
    let module = unsafe { printf::c_str(module) };
    if let Some(module) = module.and_then(|m| core::str::from_utf8(m).ok()) {
        context.unplug.reboot(module);
    }
}
