//! Interface negotiation across versions, as the C bus and children do it.
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "a test plays a C child: one SAFETY note covers a call sequence"
)]

use xenbus_interface::api::{DomId, EventChannels, GrantTable, Pfn, Store, Txn};
use xenbus_interface::evtchn::bus::EvtchnProvider;
use xenbus_interface::evtchn::child::ChildEvtchn;
use xenbus_interface::evtchn::{self, EvtchnInterfaceV7, EvtchnInterfaceV9};
use xenbus_interface::fake::{FakeEvtchn, FakeGnttab, FakeStore};
use xenbus_interface::gnttab::bus::GnttabProvider;
use xenbus_interface::gnttab::child::ChildGnttab;
use xenbus_interface::serve::{
    AlreadyServed, Bus, QueryError, QueryInterface, ServeInterface, query, query_newest,
};
use xenbus_interface::store::bus::StoreProvider;
use xenbus_interface::store::child::ChildStore;
use xenbus_interface::store::events::Loopback;
use xenbus_interface::table::InterfaceTable;
use xenbus_interface::types::{
    Guid, Interface, NtStatus, STATUS_BUFFER_OVERFLOW, STATUS_NO_MEMORY, STATUS_NOT_SUPPORTED,
    STATUS_SUCCESS,
};
use xenbus_interface::{gnttab, store};

/// A bus of an older release: it knows only versions up to `max` of every
/// interface (newer ones get `STATUS_NOT_SUPPORTED`, as from a C bus built
/// before they existed).
struct OlderBus<'a> {
    bus: &'a Bus<'a>,
    max: u16,
}

// SAFETY: forwards to a bus whose tables live as long as `'a`.
unsafe impl QueryInterface for OlderBus<'_> {
    unsafe fn query_interface(
        &self,
        guid: &Guid,
        version: u16,
        buffer: *mut Interface,
        size: u16,
    ) -> NtStatus {
        if version > self.max {
            return STATUS_NOT_SUPPORTED;
        }
        // SAFETY: the caller's guarantee, passed on.
        unsafe { self.bus.query_interface(guid, version, buffer, size) }
    }
}

/// A bus that always answers with `status`, writing `table` on success.
struct OddBus {
    status: NtStatus,
    header: Interface,
}

// SAFETY: it never reports success with a table whose methods are called
// (the tests check the child refuses it first).
unsafe impl QueryInterface for OddBus {
    unsafe fn query_interface(
        &self,
        _guid: &Guid,
        _version: u16,
        buffer: *mut Interface,
        size: u16,
    ) -> NtStatus {
        if self.status.is_success() && usize::from(size) >= size_of::<Interface>() {
            // SAFETY: the caller's buffer has room for the header.
            unsafe { buffer.write(self.header) };
        }
        self.status
    }
}

fn evtchn_bus(provider: &EvtchnProvider<FakeEvtchn>) -> Bus<'_> {
    let mut bus = Bus::new();
    bus.serve(provider).unwrap();
    bus
}

#[test]
fn unknown_guid_and_unknown_versions_are_not_supported() {
    let provider = EvtchnProvider::new(FakeEvtchn::default());
    let bus = evtchn_bus(&provider);
    let mut table = EvtchnInterfaceV9::zeroed();
    let buffer = core::ptr::from_mut(&mut table).cast::<Interface>();
    // SAFETY: `buffer` is a live table of the size passed.
    unsafe {
        assert_eq!(
            bus.get_interface(&store::GUID, 2, buffer, EvtchnInterfaceV9::size()),
            STATUS_NOT_SUPPORTED
        );
        for version in [0, 1, 4, 10, u16::MAX] {
            assert_eq!(
                bus.get_interface(&evtchn::GUID, version, buffer, EvtchnInterfaceV9::size()),
                STATUS_NOT_SUPPORTED,
                "version {version}"
            );
        }
    }
    assert!(table.open.is_none(), "nothing written on failure");
    assert_eq!(provider.versions(), 5..=9);
}

#[test]
fn a_short_buffer_overflows_and_is_left_alone() {
    let provider = EvtchnProvider::new(FakeEvtchn::default());
    let bus = evtchn_bus(&provider);
    // Room for a V9 table and a bit more, filled with a pattern.
    let mut buffer = [0xa5a5_a5a5_a5a5_a5a5_u64; 20];
    let ptr = buffer.as_mut_ptr().cast::<Interface>();
    let v9 = EvtchnInterfaceV9::size();
    for size in [0, 1, 31, 32, v9 - 8, v9 - 1] {
        // SAFETY: `buffer` has 160 bytes, more than any `size` here.
        let status = unsafe { bus.get_interface(&evtchn::GUID, 9, ptr, size) };
        assert_eq!(status, STATUS_BUFFER_OVERFLOW, "size {size}");
        assert!(buffer.iter().all(|w| *w == 0xa5a5_a5a5_a5a5_a5a5));
    }
    // A bigger buffer is fine: the table is written, the rest left alone.
    // SAFETY: as above.
    let status = unsafe { bus.get_interface(&evtchn::GUID, 9, ptr, 160) };
    assert_eq!(status, STATUS_SUCCESS);
    // SAFETY: a V9 table was just written at the start of `buffer`.
    let header = unsafe { ptr.read() };
    assert_eq!((header.size, header.version), (v9, 9));
    assert!(!header.context.is_null());
    assert!(
        buffer[usize::from(v9) / 8..]
            .iter()
            .all(|w| *w == 0xa5a5_a5a5_a5a5_a5a5)
    );
    // An older version's table is smaller: its exact size suffices.
    // SAFETY: as above.
    let status = unsafe { bus.get_interface(&evtchn::GUID, 5, ptr, 112) };
    assert_eq!(status, STATUS_SUCCESS);
}

#[test]
fn older_child_on_newer_bus_gets_its_own_version() {
    let provider = EvtchnProvider::new(FakeEvtchn::default());
    let bus = evtchn_bus(&provider);
    // A child built when EVTCHN 7 was the newest.
    let table = query_newest("EVTCHN", 5..=7, |v| match v {
        7 => query::<EvtchnInterfaceV7>(&bus).map(|t| t.map(|t| t.header.version)),
        _ => Ok(None),
    })
    .unwrap();
    assert_eq!(table, 7);
    // The same child, asking only for version 5 (a C child of that era).
    let v5 = query::<evtchn::EvtchnInterfaceV5>(&bus).unwrap().unwrap();
    assert_eq!(v5.header.version, 5);
    assert!(v5.send_v1.is_some() && v5.wait_v5.is_some());
}

#[test]
fn newer_child_on_older_bus_falls_back_and_works() {
    let provider = EvtchnProvider::new(FakeEvtchn::default());
    let bus = evtchn_bus(&provider);
    for max in 5..=9 {
        let older = OlderBus { bus: &bus, max };
        let child = ChildEvtchn::new(&older, 5).unwrap();
        assert_eq!(child.version(), max);
        let channel = child.open_unbound(DomId(0)).unwrap();
        let port = child.port(&channel);
        child.notify(&channel);
        child.unmask(&channel);
        assert_eq!(provider.evtchn().port_state(port), Some((DomId(0), 1, 1)));
        child.close(channel);
        assert_eq!(provider.evtchn().open_count(), 0);
    }
}

#[test]
fn a_child_refuses_a_bus_older_than_it_supports() {
    let provider = EvtchnProvider::new(FakeEvtchn::default());
    let bus = evtchn_bus(&provider);
    let older = OlderBus { bus: &bus, max: 7 };
    assert_eq!(
        ChildEvtchn::new(&older, 8)
            .map(|c| c.version())
            .unwrap_err(),
        QueryError::NotSupported {
            name: "EVTCHN",
            min: 8,
            max: 9
        }
    );
    assert!(provider.references().idle(), "nothing acquired");
    // No STORE on this bus at all.
    assert!(matches!(
        ChildStore::new(&bus, Loopback),
        Err(QueryError::NotSupported { name: "STORE", .. })
    ));
}

#[test]
fn gnttab_falls_back_to_create_cache_version_1() {
    let provider = GnttabProvider::new(FakeGnttab::new(64));
    let mut bus = Bus::new();
    bus.serve(&provider).unwrap();
    for max in [2, 3, 4] {
        let older = OlderBus { bus: &bus, max };
        let child = ChildGnttab::new(&older, c"test", 4).unwrap();
        assert_eq!(child.version(), max);
        let gref = child.grant(DomId(0), Pfn(0x1234), true).unwrap();
        assert_eq!(
            provider.gnttab().grant_of(gref),
            Some((DomId(0), Pfn(0x1234), true))
        );
        child.revoke(gref).unwrap();
    }
    assert_eq!(provider.outstanding(), (0, 0));
    assert_eq!((gnttab::VERSION_MIN, gnttab::VERSION_MAX), (2, 4));
}

#[test]
fn a_failing_bus_stops_the_search() {
    let odd = OddBus {
        status: STATUS_NO_MEMORY,
        header: Interface::new(0, 0),
    };
    assert_eq!(
        ChildEvtchn::new(&odd, 5).map(|c| c.version()).unwrap_err(),
        QueryError::Failed {
            name: "EVTCHN",
            version: 9,
            status: STATUS_NO_MEMORY
        }
    );
}

#[test]
fn a_table_with_the_wrong_header_is_refused() {
    let wrong_version = OddBus {
        status: STATUS_SUCCESS,
        header: Interface::new(EvtchnInterfaceV9::size(), 8),
    };
    assert!(matches!(
        ChildEvtchn::new(&wrong_version, 5),
        Err(QueryError::BadTable { version: 9, .. })
    ));
    let wrong_size = OddBus {
        status: STATUS_SUCCESS,
        header: Interface::new(EvtchnInterfaceV7::size(), 9),
    };
    assert!(matches!(
        ChildEvtchn::new(&wrong_size, 5),
        Err(QueryError::BadTable { version: 9, .. })
    ));
    // Right header, no methods: refused before any call.
    let empty = OddBus {
        status: STATUS_SUCCESS,
        header: Interface::new(store::StoreInterfaceV2::size(), 2),
    };
    assert!(matches!(
        ChildStore::new(&empty, Loopback),
        Err(QueryError::BadTable { .. })
    ));
}

#[test]
fn one_provider_per_guid() {
    let a = StoreProvider::new(FakeStore::default(), Loopback);
    let b = StoreProvider::new(FakeStore::default(), Loopback);
    let mut bus = Bus::new();
    bus.serve(&a).unwrap();
    assert_eq!(bus.serve(&b), Err(AlreadyServed(store::GUID)));
}

#[test]
fn children_acquire_and_release_and_wdm_references_count() {
    let provider = StoreProvider::new(FakeStore::default(), Loopback);
    let mut bus = Bus::new();
    bus.serve(&provider).unwrap();
    {
        let one = ChildStore::new(&bus, Loopback).unwrap();
        let two = ChildStore::new(&bus, Loopback).unwrap();
        assert_eq!(provider.references().acquired(), 2);
        one.write(Txn::NONE, "a", b"1").unwrap();
        assert_eq!(two.read(Txn::NONE, "a").unwrap(), b"1");
    }
    assert!(provider.references().idle());

    // A WDM-style consumer uses InterfaceReference / InterfaceDereference.
    let table = query::<store::StoreInterfaceV2>(&bus).unwrap().unwrap();
    let (reference, dereference) = (
        table.header.interface_reference.unwrap(),
        table.header.interface_dereference.unwrap(),
    );
    // SAFETY: the provider's own functions with its context.
    unsafe { reference(table.header.context) };
    assert_eq!(provider.references().referenced(), 1);
    assert!(!provider.references().idle());
    // SAFETY: as above.
    unsafe { dereference(table.header.context) };
    // SAFETY: an unbalanced dereference is ignored, not wrapped.
    unsafe { dereference(table.header.context) };
    assert_eq!(provider.references().referenced(), 0);
    assert!(provider.references().idle());
}
