//! [`RigBus`]: everything a core needs from its bus, in the rig, behind one
//! constructor, reached the way a Windows child reaches XENBUS.
//!
//! The bus side ([`Platform`]) owns the Linux devices and serves them as
//! XENBUS interface tables: STORE (over the xenstore client), EVTCHN (over
//! `/dev/xen/evtchn`) and GNTTAB (over `/dev/xen/gntalloc`). The child side
//! queries those tables with the C semantics (GUID, newest version first) and
//! wraps them in the safe traits (`ChildStore`, `ChildEvtchn`,
//! `ChildGnttab`). So every rig test that goes through [`RigBus::store`],
//! [`RigBus::child_evtchn`] and [`RigBus::child_gnttab`] runs the plumbing a
//! child uses on Windows: table query, `Acquire`/`Release`, buffers given back through
//! `Free`, transaction, watch, channel and grant handles, errors as `NTSTATUS`.
//!
//! Grantable memory is not an interface (a Windows child allocates its own
//! pages): [`RigBus::memory`] hands out the gntalloc device directly. The
//! devices behind EVTCHN and GNTTAB are also reachable directly
//! ([`RigBus::evtchn`], [`RigBus::grants`]) for the rig's event loop and for
//! what the tables do not carry.
//!
//! Event delivery: a child's `Wait` on a channel waits on `/dev/xen/evtchn`
//! for that port (the provider's waiter); a rig event loop may instead call
//! [`RigBus::dispatch_events`], which runs the callbacks of the channels that
//! fired, as the bus's upcall DPC does on Windows.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use xenbus_interface::api::{DomId, GrantTable, Store};
use xenbus_interface::evtchn::bus::EvtchnProvider;
use xenbus_interface::evtchn::child::ChildEvtchn;
use xenbus_interface::gnttab::bus::GnttabProvider;
use xenbus_interface::gnttab::child::ChildGnttab;
use xenbus_interface::serve::{Bus, QueryInterface};
use xenbus_interface::store::bus::{Outstanding, StoreProvider};
use xenbus_interface::store::child::ChildStore;
use xenbus_interface::store::events::Loopback;
use xenbus_interface::types::{Guid, Interface, NtStatus};

use crate::evtchn::EvtchnDevice;
use crate::gntalloc::GntallocDevice;
use crate::store::{RigStore, open_store};
use crate::stream::Transport;

/// The grant cache the rig's child creates: as many grants as gntalloc allows.
const GRANT_CACHE: &core::ffi::CStr = c"xenpv-rig";

/// The bus side: the platform's implementations and the tables serving them.
struct Platform {
    store: StoreProvider<RigStore, Loopback>,
    evtchn: EvtchnProvider<EvtchnDevice>,
    gnttab: GnttabProvider<GntallocDevice>,
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
        // One provider per GUID: the three GUIDs differ, nothing is refused.
        let _ = bus.serve(&self.store);
        let _ = bus.serve(&self.evtchn);
        let _ = bus.serve(&self.gnttab);
        // SAFETY: the caller's guarantee about `buffer`, passed on.
        unsafe { bus.get_interface(guid, version, buffer, size) }
    }
}

/// The rig's bus for frontends whose backends run in dom0 too (domain 0 on
/// both ends).
pub struct RigBus {
    // The child wrappers borrow `platform`; declared before it, so they are
    // dropped (releasing their interfaces, closing what they hold) first.
    store: ChildStore<'static, Loopback>,
    evtchn: ChildEvtchn<'static>,
    gnttab: ChildGnttab<'static>,
    platform: Arc<Platform>,
}

impl fmt::Debug for RigBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RigBus")
            .field("store", &self.store)
            .field("evtchn", &self.evtchn)
            .field("gnttab", &self.gnttab)
            .field("store_outstanding", &self.platform.store.outstanding())
            .finish_non_exhaustive()
    }
}

impl RigBus {
    /// Opens `/dev/xen/xenbus`, `/dev/xen/evtchn` and `/dev/xen/gntalloc`
    /// (grants to domain 0), serves them as STORE, EVTCHN and GNTTAB tables
    /// and queries them as a child does.
    pub fn open() -> io::Result<Self> {
        Self::open_with(Transport::Xenbus)
    }

    /// Like [`RigBus::open`], reaching xenstored over `transport`.
    pub fn open_with(transport: Transport) -> io::Result<Self> {
        let waiter = Box::new(|dev: &EvtchnDevice, port, timeout: Option<Duration>| {
            dev.wait(port, timeout.unwrap_or(Duration::MAX))
                .unwrap_or(false)
        });
        let platform = Arc::new(Platform {
            store: StoreProvider::new(open_store(transport)?, Loopback),
            evtchn: EvtchnProvider::with_waiter(EvtchnDevice::open()?, waiter),
            gnttab: GnttabProvider::new(GntallocDevice::open(DomId(0))?),
        });
        // SAFETY: the platform lives in the `Arc` held by the returned
        // `RigBus` until that is dropped, and the wrappers (its only
        // borrowers) are dropped first (field order); an `Arc` never moves
        // its contents. The `'static` never leaves this type: the accessors
        // hand the wrappers out behind `&self` only, with `self`'s lifetime.
        let platform_ref: &'static Platform = unsafe { &*Arc::as_ptr(&platform) };
        let failed = |what: &'static str| {
            move |e: xenbus_interface::serve::QueryError| {
                io::Error::other(format!("{what} interface query failed: {e}"))
            }
        };
        let store = ChildStore::new(platform_ref, Loopback).map_err(failed("STORE"))?;
        let evtchn = ChildEvtchn::new(platform_ref, xenbus_interface::evtchn::VERSION_MIN)
            .map_err(failed("EVTCHN"))?;
        let capacity = u32::try_from(platform.gnttab.gnttab().available()).unwrap_or(u32::MAX);
        let gnttab =
            ChildGnttab::new(platform_ref, GRANT_CACHE, capacity).map_err(failed("GNTTAB"))?;
        Ok(Self {
            store,
            evtchn,
            gnttab,
            platform,
        })
    }

    /// xenstore as a core sees it: the child-side wrapper of the STORE table.
    pub fn store(&self) -> &dyn Store {
        &self.store
    }

    /// Event channels through the EVTCHN table, as a Windows child gets them
    /// (with its `wait`, `trigger` and event counts).
    pub fn child_evtchn(&self) -> &ChildEvtchn<'_> {
        &self.evtchn
    }

    /// Grant references through the GNTTAB table, as a Windows child gets
    /// them. Frames are those of [`RigBus::memory`]'s pages.
    pub fn child_gnttab(&self) -> &ChildGnttab<'_> {
        &self.gnttab
    }

    /// Event channels directly on the bus side's `/dev/xen/evtchn`: the rig's
    /// event loop (`wait`, `wait_any`) and what EVTCHN does not offer
    /// (binding an interdomain port, the backend's half of a loopback).
    pub fn evtchn(&self) -> &EvtchnDevice {
        self.platform.evtchn.evtchn()
    }

    /// Grants and grantable memory directly on the gntalloc device behind
    /// GNTTAB (it grants at allocation); also `address_of` a frame.
    pub fn grants(&self) -> &GntallocDevice {
        self.platform.gnttab.gnttab()
    }

    /// Grantable memory (the gntalloc device; same as [`RigBus::grants`]).
    pub fn memory(&self) -> &GntallocDevice {
        self.platform.gnttab.gnttab()
    }

    /// The negotiated versions of STORE, EVTCHN and GNTTAB.
    pub fn versions(&self) -> (u16, u16, u16) {
        (
            self.store.version(),
            self.evtchn.version(),
            self.gnttab.version(),
        )
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

    /// Channels the child has open through EVTCHN.
    pub fn open_channels(&self) -> usize {
        self.platform.evtchn.open_channels()
    }

    /// (caches, grants) the child holds through GNTTAB.
    pub fn gnttab_outstanding(&self) -> (usize, usize) {
        self.platform.gnttab.outstanding()
    }

    /// Waits at most `timeout` for events and runs the callbacks of the
    /// child's channels that fired (the rig's stand-in for the upcall DPC).
    /// Returns how many were delivered; ports no child has open are dropped.
    pub fn dispatch_events(&self, timeout: Duration) -> io::Result<usize> {
        let ports = self.evtchn().wait_any(timeout)?;
        Ok(ports
            .into_iter()
            .filter(|&port| self.platform.evtchn.deliver(port))
            .count())
    }
}
