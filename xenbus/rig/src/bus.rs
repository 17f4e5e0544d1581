//! [`RigBus`]: everything a core needs from its bus, in the rig, behind one
//! constructor, reached the way a Windows child reaches XENBUS.
//!
//! The bus side ([`Platform`]) owns the Linux devices and serves them as
//! XENBUS interface tables (`xenbus_interface::store::bus::StoreProvider`
//! over the xenstore client). The child side queries those tables with the C
//! semantics (GUID, newest version first) and wraps them in the safe traits
//! (`ChildStore`). So every rig test that uses [`RigBus::store`] runs the
//! plumbing a child uses on Windows: table query, `Acquire`/`Release`,
//! buffers freed through `Free`, transaction and watch handles, error
//! statuses mapped to `NTSTATUS` and back.
//!
//! Interfaces without a table in `xenbus-interface` yet (EVTCHN, GNTTAB) are
//! handed out directly: [`RigBus::evtchn`], [`RigBus::grants`].

use std::fmt;
use std::io;
use std::sync::Arc;

use xenbus_interface::api::{DomId, Store};
use xenbus_interface::serve::{Bus, QueryInterface};
use xenbus_interface::store::bus::{Outstanding, StoreProvider};
use xenbus_interface::store::child::ChildStore;
use xenbus_interface::store::events::Loopback;
use xenbus_interface::types::{Guid, Interface, NtStatus};

use crate::evtchn::EvtchnDevice;
use crate::gntalloc::GntallocDevice;
use crate::store::{RigStore, open_store};
use crate::stream::Transport;

/// The bus side: the platform's implementations and the tables serving them.
struct Platform {
    store: StoreProvider<RigStore, Loopback>,
    evtchn: EvtchnDevice,
    grants: GntallocDevice,
}

// SAFETY: answers exactly as `Bus` does over the providers this platform owns;
// their tables stay valid while the platform lives, and a child borrows the
// platform for as long as it uses a table.
unsafe impl QueryInterface for Platform {
    unsafe fn query_interface(
        &self,
        guid: &Guid,
        version: u16,
        buffer: *mut Interface,
        size: u16,
    ) -> NtStatus {
        let mut bus = Bus::new();
        // One provider per GUID, and this is the only one: cannot be refused.
        let _ = bus.serve(&self.store);
        // SAFETY: the caller's guarantee about `buffer`, passed on.
        unsafe { bus.get_interface(guid, version, buffer, size) }
    }
}

/// The rig's bus for frontends whose backends run in dom0 too (domain 0 on
/// both ends): xenstore through the STORE table, event channels over
/// `/dev/xen/evtchn`, grants and grantable memory over `/dev/xen/gntalloc`.
pub struct RigBus {
    /// The child's STORE wrapper. It borrows `platform`; declared first so it
    /// is dropped (releasing the interface, removing its watches) before the
    /// platform goes.
    store: ChildStore<'static, Loopback>,
    platform: Arc<Platform>,
}

impl fmt::Debug for RigBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RigBus")
            .field("store", &self.store)
            .field("outstanding", &self.platform.store.outstanding())
            .finish_non_exhaustive()
    }
}

impl RigBus {
    /// Opens `/dev/xen/xenbus`, `/dev/xen/evtchn` and `/dev/xen/gntalloc`
    /// (grants to domain 0), serves xenstore as a STORE table and queries it.
    pub fn open() -> io::Result<Self> {
        Self::open_with(Transport::Xenbus)
    }

    /// Like [`RigBus::open`], reaching xenstored over `transport`.
    pub fn open_with(transport: Transport) -> io::Result<Self> {
        let platform = Arc::new(Platform {
            store: StoreProvider::new(open_store(transport)?, Loopback),
            evtchn: EvtchnDevice::open()?,
            grants: GntallocDevice::open(DomId(0))?,
        });
        // SAFETY: the platform lives in the `Arc` held by the returned
        // `RigBus` until that is dropped, and `store` (the only borrower) is
        // dropped first (field order); an `Arc` never moves its contents. The
        // `'static` borrow never leaves this type: `store()` hands out the
        // wrapper behind `&self` only, as a trait object.
        let platform_ref: &'static Platform = unsafe { &*Arc::as_ptr(&platform) };
        let store = ChildStore::new(platform_ref, Loopback)
            .map_err(|e| io::Error::other(format!("STORE interface query failed: {e}")))?;
        Ok(Self { store, platform })
    }

    /// xenstore as a core sees it: the child-side wrapper of the STORE table.
    pub fn store(&self) -> &dyn Store {
        &self.store
    }

    /// The STORE version negotiated.
    pub fn store_version(&self) -> u16 {
        self.store.version()
    }

    /// The xenstore client behind the table, for what STORE does not carry
    /// (reading permissions, pipelined requests, values with NUL bytes,
    /// statistics).
    pub fn client(&self) -> &RigStore {
        self.platform.store.store()
    }

    /// Buffers, transactions and watches the child still holds of the STORE
    /// provider (all zero between operations when nothing leaks).
    pub fn store_outstanding(&self) -> Outstanding {
        self.platform.store.outstanding()
    }

    /// Event channels (with the rig's wait helpers).
    pub fn evtchn(&self) -> &EvtchnDevice {
        &self.platform.evtchn
    }

    /// Grants and grantable memory (one gntalloc device: it grants at
    /// allocation).
    pub fn grants(&self) -> &GntallocDevice {
        &self.platform.grants
    }
}
