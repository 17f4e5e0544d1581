//! [`Unplug`] over an UNPLUG table queried from the bus (versions 1 to 3).

use super::{
    DEVICE_TYPE_DISKS, DEVICE_TYPE_NICS, UnplugInterfaceV1, UnplugInterfaceV2, UnplugInterfaceV3,
};
use crate::api::{Unplug, UnplugDevices};
use crate::serve::{QueryError, QueryInterface, method, query, query_newest};
use crate::table::InterfaceTable;
use crate::types::{Boolean, Interface, NtStatus, Pinterface, Pstr, boolean};
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

#[derive(Clone, Copy)]
enum Table {
    V1(UnplugInterfaceV1),
    V2(UnplugInterfaceV2),
    V3(UnplugInterfaceV3),
}

impl Table {
    fn header(&self) -> &Interface {
        match self {
            Self::V1(t) => &t.header,
            Self::V2(t) => &t.header,
            Self::V3(t) => &t.header,
        }
    }
}

#[derive(Clone, Copy)]
struct Methods {
    acquire: unsafe extern "C" fn(Pinterface) -> NtStatus,
    release: unsafe extern "C" fn(Pinterface),
    request: unsafe extern "C" fn(Pinterface, u32, Boolean),
    is_requested: Option<unsafe extern "C" fn(Pinterface, u32) -> Boolean>,
    boot_emulated: Option<unsafe extern "C" fn(Pinterface) -> Boolean>,
    reboot: Option<unsafe extern "C" fn(Pinterface, Pstr)>,
}

/// [`Unplug`] over the bus's UNPLUG table.
pub struct ChildUnplug<'bus> {
    table: Table,
    methods: Methods,
    _bus: PhantomData<&'bus ()>,
}

// SAFETY: the table's methods may be called from any thread (C contract).
unsafe impl Sync for ChildUnplug<'_> {}
// SAFETY: as above.
unsafe impl Send for ChildUnplug<'_> {}

impl fmt::Debug for ChildUnplug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildUnplug")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

const fn kind(devices: UnplugDevices) -> u32 {
    match devices {
        UnplugDevices::Nics => DEVICE_TYPE_NICS,
        UnplugDevices::Disks => DEVICE_TYPE_DISKS,
    }
}

impl<'bus> ChildUnplug<'bus> {
    /// Queries UNPLUG from `bus` (3 down to 1) and acquires it.
    pub fn new(bus: &'bus impl QueryInterface) -> Result<Self, QueryError> {
        let table = query_newest(
            UnplugInterfaceV3::NAME,
            super::VERSION_MIN..=super::VERSION_MAX,
            |v| {
                Ok(match v {
                    3 => query::<UnplugInterfaceV3>(bus)?.map(Table::V3),
                    2 => query::<UnplugInterfaceV2>(bus)?.map(Table::V2),
                    1 => query::<UnplugInterfaceV1>(bus)?.map(Table::V1),
                    _ => None,
                })
            },
        )?;
        let (name, v) = (UnplugInterfaceV3::NAME, table.header().version);
        let methods = match table {
            Table::V1(t) => Methods {
                acquire: method(t.acquire, name, v, "no Acquire")?,
                release: method(t.release, name, v, "no Release")?,
                request: method(t.request, name, v, "no Request")?,
                is_requested: None,
                boot_emulated: None,
                reboot: None,
            },
            Table::V2(t) => Methods {
                acquire: method(t.acquire, name, v, "no Acquire")?,
                release: method(t.release, name, v, "no Release")?,
                request: method(t.request, name, v, "no Request")?,
                is_requested: Some(method(t.is_requested, name, v, "no IsRequested")?),
                boot_emulated: None,
                reboot: None,
            },
            Table::V3(t) => Methods {
                acquire: method(t.acquire, name, v, "no Acquire")?,
                release: method(t.release, name, v, "no Release")?,
                request: method(t.request, name, v, "no Request")?,
                is_requested: Some(method(t.is_requested, name, v, "no IsRequested")?),
                boot_emulated: Some(method(t.boot_emulated, name, v, "no BootEmulated")?),
                reboot: Some(method(t.reboot, name, v, "no Reboot")?),
            },
        };
        let header = core::ptr::from_ref(table.header()).cast_mut();
        // SAFETY: a table the bus wrote; the bus only reads the header.
        let status = unsafe { (methods.acquire)(header) };
        if !status.is_success() {
            return Err(QueryError::Failed {
                name,
                version: v,
                status,
            });
        }
        Ok(Self {
            table,
            methods,
            _bus: PhantomData,
        })
    }

    /// The version in use.
    pub fn version(&self) -> u16 {
        self.table.header().version
    }

    fn interface(&self) -> Pinterface {
        core::ptr::from_ref(self.table.header()).cast_mut()
    }
}

impl Drop for ChildUnplug<'_> {
    fn drop(&mut self) {
        // SAFETY: balances the `Acquire` of `new`.
        unsafe { (self.methods.release)(self.interface()) };
    }
}

impl Unplug for ChildUnplug<'_> {
    fn request(&self, devices: UnplugDevices, make: bool) {
        // SAFETY: a valid table.
        unsafe { (self.methods.request)(self.interface(), kind(devices), boolean(make)) };
    }

    fn is_requested(&self, devices: UnplugDevices) -> Option<bool> {
        let is_requested = self.methods.is_requested?;
        // SAFETY: a valid table.
        Some(unsafe { is_requested(self.interface(), kind(devices)) } != 0)
    }

    fn boot_emulated(&self) -> Option<bool> {
        let boot_emulated = self.methods.boot_emulated?;
        // SAFETY: a valid table.
        Some(unsafe { boot_emulated(self.interface()) } != 0)
    }

    fn reboot(&self, module: &str) -> bool {
        let Some(reboot) = self.methods.reboot else {
            return false;
        };
        let end = module.bytes().position(|b| b == 0).unwrap_or(module.len());
        let mut name: Vec<u8> = module.as_bytes().get(..end).unwrap_or_default().to_vec();
        name.push(0);
        // SAFETY: a valid table; `name` is NUL-terminated and outlives the call.
        unsafe { reboot(self.interface(), name.as_mut_ptr()) };
        true
    }
}
