//! PDO revisions: which interface versions a child's hardware ID promises.
//!
//! A bus lists, for each child PDO, one hardware ID per revision it supports,
//! newest first, `<BUS>\VEN_<vendor>&DEV_<device>&REV_<revision as %08X>`; the
//! compatible IDs are the same list followed by a class ID (`XENCLASS` for
//! XENBUS, `XENDEVICE` for XENVIF). A child's INF matches one revision, and so
//! knows every interface version the bus serves to it. Revision numbers
//! carry the driver's major version in the top byte and a sequence number
//! below it (`0x0900000C`: major 9, 12th revision). A new interface version
//! needs a new revision; retiring a version retires every revision that
//! mentions it. The tables are the Xen Project drivers' (`include/revision.h`
//! of win-xenbus and win-xenvif), so our children bind to their bus and the
//! reverse.
//!
//! `<vendor>` is the vendor prefix (`XP` by default, set at packaging time)
//! followed by the PCI device ID of the platform device as four hex digits
//! (`XP0002`; a vendor device such as `0xC000` gives `XPC000`). The device ID
//! (`BusQueryDeviceID`) omits the device ID and the revision:
//! `XENBUS\VEN_XP&DEV_VBD`.

use crate::types::Guid;
use crate::{
    cache, console, debug, emulated, evtchn, gnttab, range_set, shared_info, store, suspend,
    unplug, vif,
};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// `MAX_DEVICE_ID_LEN`: the longest single ID, in characters, with its NUL.
pub const MAX_DEVICE_ID_LEN: usize = 200;
/// `REGSTR_VAL_MAX_HCID_LEN`: the longest hardware or compatible ID list, in
/// characters, with every NUL.
pub const MAX_HCID_LEN: usize = 1024;

/// One XENBUS PDO revision: the version of each interface it implies (0:
/// not served).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenbusRevision {
    /// The revision number (`REV_%08X`).
    pub number: u32,
    /// SUSPEND.
    pub suspend: u16,
    /// SHARED_INFO.
    pub shared_info: u16,
    /// EVTCHN.
    pub evtchn: u16,
    /// DEBUG.
    pub debug: u16,
    /// STORE.
    pub store: u16,
    /// RANGE_SET.
    pub range_set: u16,
    /// CACHE.
    pub cache: u16,
    /// GNTTAB.
    pub gnttab: u16,
    /// UNPLUG.
    pub unplug: u16,
    /// CONSOLE.
    pub console: u16,
    /// XENFILT EMULATED.
    pub emulated: u16,
}

/// Shorthand for the table below, in the C header's column order.
#[allow(clippy::too_many_arguments, reason = "one argument per table column")]
const fn xenbus(
    number: u32,
    suspend: u16,
    shared_info: u16,
    evtchn: u16,
    debug: u16,
    store: u16,
    range_set: u16,
    cache: u16,
    gnttab: u16,
    unplug: u16,
    console: u16,
    emulated: u16,
) -> XenbusRevision {
    XenbusRevision {
        number,
        suspend,
        shared_info,
        evtchn,
        debug,
        store,
        range_set,
        cache,
        gnttab,
        unplug,
        console,
        emulated,
    }
}

/// Every XENBUS revision served, oldest first.
pub const XENBUS_REVISIONS: &[XenbusRevision] = &[
    //     REVISION     S  SI  E  D  ST R  C  G  U  CO EM
    xenbus(0x0900_0008, 1, 3, 9, 1, 2, 1, 2, 4, 1, 1, 2),
    xenbus(0x0900_0009, 1, 4, 9, 1, 2, 1, 2, 4, 1, 1, 2),
    xenbus(0x0900_000A, 1, 4, 9, 1, 2, 1, 2, 4, 2, 1, 2),
    xenbus(0x0900_000B, 1, 4, 9, 1, 2, 1, 2, 4, 3, 1, 2),
    xenbus(0x0900_000C, 1, 4, 9, 1, 2, 1, 2, 4, 3, 1, 3),
];

impl XenbusRevision {
    /// (GUID, version) of every interface the revision implies.
    pub fn versions(&self) -> [(Guid, u16); 11] {
        [
            (suspend::GUID, self.suspend),
            (shared_info::GUID, self.shared_info),
            (evtchn::GUID, self.evtchn),
            (debug::GUID, self.debug),
            (store::GUID, self.store),
            (range_set::GUID, self.range_set),
            (cache::GUID, self.cache),
            (gnttab::GUID, self.gnttab),
            (unplug::GUID, self.unplug),
            (console::GUID, self.console),
            (emulated::GUID, self.emulated),
        ]
    }

    /// The version of interface `guid` the revision implies.
    pub fn version_of(&self, guid: &Guid) -> Option<u16> {
        self.versions()
            .iter()
            .find(|(g, v)| g == guid && *v != 0)
            .map(|(_, v)| *v)
    }

    /// The revision with this number.
    pub fn find(number: u32) -> Option<&'static Self> {
        XENBUS_REVISIONS.iter().find(|r| r.number == number)
    }

    /// Whether every interface version of the revision is served, as
    /// `serves(guid, version)` tells (e.g. [`Bus::serves`](crate::serve::Bus::serves),
    /// plus what the bus passes down to XENFILT).
    pub fn is_served_by(&self, serves: impl Fn(&Guid, u16) -> bool) -> bool {
        self.versions()
            .iter()
            .all(|(guid, version)| *version == 0 || serves(guid, *version))
    }

    /// The newest revision.
    pub fn newest() -> &'static Self {
        // The table is a non-empty constant.
        &XENBUS_REVISIONS[XENBUS_REVISIONS.len() - 1]
    }
}

/// One XENVIF PDO revision (children: XENNET).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenvifRevision {
    /// The revision number.
    pub number: u32,
    /// CACHE (re-exported from XENBUS).
    pub cache: u16,
    /// VIF.
    pub vif: u16,
    /// STORE (re-exported).
    pub store: u16,
    /// SUSPEND (re-exported).
    pub suspend: u16,
    /// UNPLUG (re-exported).
    pub unplug: u16,
}

const fn xenvif(
    number: u32,
    cache: u16,
    vif: u16,
    store: u16,
    suspend: u16,
    unplug: u16,
) -> XenvifRevision {
    XenvifRevision {
        number,
        cache,
        vif,
        store,
        suspend,
        unplug,
    }
}

/// Every XENVIF revision served, oldest first.
pub const XENVIF_REVISIONS: &[XenvifRevision] = &[
    //     REVISION     C  V   ST SU U
    xenvif(0x0900_0001, 2, 8, 2, 1, 1),
    xenvif(0x0900_0002, 2, 9, 2, 1, 1),
    xenvif(0x0900_0003, 2, 10, 2, 1, 1),
    xenvif(0x0900_0004, 2, 10, 2, 1, 2),
    xenvif(0x0900_0005, 2, 10, 2, 1, 3),
];

impl XenvifRevision {
    /// (GUID, version) of every interface the revision implies.
    pub fn versions(&self) -> [(Guid, u16); 5] {
        [
            (cache::GUID, self.cache),
            (vif::GUID, self.vif),
            (store::GUID, self.store),
            (suspend::GUID, self.suspend),
            (unplug::GUID, self.unplug),
        ]
    }

    /// The revision with this number.
    pub fn find(number: u32) -> Option<&'static Self> {
        XENVIF_REVISIONS.iter().find(|r| r.number == number)
    }
}

/// Why IDs could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdError {
    /// The vendor prefix or device name is empty or not ASCII letters and digits.
    BadName(String),
    /// One ID exceeds [`MAX_DEVICE_ID_LEN`].
    IdTooLong(usize),
    /// The list exceeds [`MAX_HCID_LEN`].
    ListTooLong(usize),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(name) => write!(f, "bad name in a device ID: {name:?}"),
            Self::IdTooLong(len) => write!(f, "device ID of {len} characters is too long"),
            Self::ListTooLong(len) => write!(f, "ID list of {len} characters is too long"),
        }
    }
}

/// The bus a PDO hangs off, with the class ID that ends its ID lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enumerator {
    /// `XENBUS\...`, class `XENCLASS` (children: VBD, VIF, IFACE, ...).
    Xenbus,
    /// `XENVIF\...`, class `XENDEVICE` (children: NET).
    Xenvif,
}

impl Enumerator {
    /// The enumerator name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Xenbus => "XENBUS",
            Self::Xenvif => "XENVIF",
        }
    }

    /// The class ID that ends hardware and compatible ID lists.
    pub const fn class_id(self) -> &'static str {
        match self {
            Self::Xenbus => "XENCLASS",
            Self::Xenvif => "XENDEVICE",
        }
    }

    /// Revision numbers newest first.
    pub fn revisions_newest_first(self) -> Vec<u32> {
        match self {
            Self::Xenbus => XENBUS_REVISIONS.iter().rev().map(|r| r.number).collect(),
            Self::Xenvif => XENVIF_REVISIONS.iter().rev().map(|r| r.number).collect(),
        }
    }
}

fn check_name(name: &str) -> Result<(), IdError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IdError::BadName(String::from(name)));
    }
    Ok(())
}

/// The vendor name of a bus: prefix + the platform PCI device ID (`XP0002`).
pub fn vendor_name(prefix: &str, pci_device_id: u16) -> Result<String, IdError> {
    check_name(prefix)?;
    Ok(format!("{prefix}{pci_device_id:04X}"))
}

/// `BusQueryDeviceID`: `XENBUS\VEN_XP&DEV_VBD`.
pub fn device_id(enumerator: Enumerator, prefix: &str, device: &str) -> Result<String, IdError> {
    check_name(prefix)?;
    check_name(device)?;
    let id = format!("{}\\VEN_{prefix}&DEV_{device}", enumerator.name());
    if id.len() + 1 > MAX_DEVICE_ID_LEN {
        return Err(IdError::IdTooLong(id.len()));
    }
    Ok(id)
}

/// `BusQueryHardwareIDs` (and, identical, `BusQueryCompatibleIDs`): one ID per
/// revision of `enumerator`'s table, newest first, then the class ID.
pub fn hardware_ids(
    enumerator: Enumerator,
    vendor: &str,
    device: &str,
) -> Result<Vec<String>, IdError> {
    hardware_ids_for(
        enumerator,
        vendor,
        device,
        &enumerator.revisions_newest_first(),
    )
}

/// Like [`hardware_ids`] for the given revisions only (newest first), e.g.
/// the ones a bus fully serves ([`XenbusRevision::is_served_by`]).
pub fn hardware_ids_for(
    enumerator: Enumerator,
    vendor: &str,
    device: &str,
    revisions: &[u32],
) -> Result<Vec<String>, IdError> {
    check_name(vendor)?;
    check_name(device)?;
    let mut ids = Vec::new();
    for &number in revisions {
        let id = format!(
            "{}\\VEN_{vendor}&DEV_{device}&REV_{number:08X}",
            enumerator.name()
        );
        if id.len() + 1 > MAX_DEVICE_ID_LEN {
            return Err(IdError::IdTooLong(id.len()));
        }
        ids.push(id);
    }
    ids.push(String::from(enumerator.class_id()));
    let total: usize = ids.iter().map(|id| id.len() + 1).sum::<usize>() + 1;
    if total > MAX_HCID_LEN {
        return Err(IdError::ListTooLong(total));
    }
    Ok(ids)
}

/// A `REG_MULTI_SZ` in UTF-16, what `IRP_MN_QUERY_ID` returns: each ID
/// NUL-terminated, then one more NUL.
pub fn multi_sz(ids: &[String]) -> Vec<u16> {
    let mut out = Vec::new();
    for id in ids {
        out.extend(id.encode_utf16());
        out.push(0);
    }
    out.push(0);
    out
}

/// The revision number at the end of a hardware ID (`...&REV_0900000C`).
pub fn revision_of(hardware_id: &str) -> Option<u32> {
    let (_, rev) = hardware_id.rsplit_once("&REV_")?;
    if rev.len() != 8 || !rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(rev, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xenbus_table_is_consistent_with_the_interfaces() {
        let ranges: [(u16, u16); 11] = [
            (suspend::VERSION_MIN, suspend::VERSION_MAX),
            (shared_info::VERSION_MIN, shared_info::VERSION_MAX),
            (evtchn::VERSION_MIN, evtchn::VERSION_MAX),
            (debug::VERSION_MIN, debug::VERSION_MAX),
            (store::VERSION_MIN, store::VERSION_MAX),
            (range_set::VERSION_MIN, range_set::VERSION_MAX),
            (cache::VERSION_MIN, cache::VERSION_MAX),
            (gnttab::VERSION_MIN, gnttab::VERSION_MAX),
            (unplug::VERSION_MIN, unplug::VERSION_MAX),
            (console::VERSION_MIN, console::VERSION_MAX),
            (emulated::VERSION_MIN, emulated::VERSION_MAX),
        ];
        for pair in XENBUS_REVISIONS.windows(2) {
            assert!(pair[0].number < pair[1].number, "numbers increase");
            assert_ne!(
                pair[0].versions(),
                pair[1].versions(),
                "each revision adds something"
            );
        }
        for (index, revision) in XENBUS_REVISIONS.iter().enumerate() {
            assert_eq!(revision.number >> 24, 9, "major version 9");
            for ((_, version), (min, max)) in revision.versions().iter().zip(ranges) {
                assert!((min..=max).contains(version), "{revision:?}");
                if index == XENBUS_REVISIONS.len() - 1 {
                    assert_eq!(
                        *version, max,
                        "the newest revision has every newest version"
                    );
                }
            }
        }
        assert_eq!(XenbusRevision::newest().number, 0x0900_000C);
        assert_eq!(XenbusRevision::find(0x0900_000A).map(|r| r.unplug), Some(2));
        assert_eq!(XenbusRevision::newest().version_of(&evtchn::GUID), Some(9));
        assert_eq!(XenbusRevision::newest().version_of(&vif::GUID), None);
    }

    #[test]
    fn xenvif_table_is_consistent_with_the_interfaces() {
        for pair in XENVIF_REVISIONS.windows(2) {
            assert!(pair[0].number < pair[1].number);
        }
        for revision in XENVIF_REVISIONS {
            assert!((vif::VERSION_MIN..=vif::VERSION_MAX).contains(&revision.vif));
            assert!((unplug::VERSION_MIN..=unplug::VERSION_MAX).contains(&revision.unplug));
            assert_eq!(revision.store, store::VERSION_MAX);
        }
        let newest = XENVIF_REVISIONS.last().unwrap();
        assert_eq!(
            (newest.vif, newest.unplug, newest.cache),
            (vif::VERSION_MAX, 3, 2)
        );
        assert_eq!(XenvifRevision::find(0x0900_0003).map(|r| r.vif), Some(10));
    }

    #[test]
    fn xenbus_ids_are_newest_first_with_the_class_last() {
        let vendor = vendor_name("XP", 0x0002).unwrap();
        assert_eq!(vendor, "XP0002");
        let ids = hardware_ids(Enumerator::Xenbus, &vendor, "VBD").unwrap();
        assert_eq!(
            ids,
            [
                "XENBUS\\VEN_XP0002&DEV_VBD&REV_0900000C",
                "XENBUS\\VEN_XP0002&DEV_VBD&REV_0900000B",
                "XENBUS\\VEN_XP0002&DEV_VBD&REV_0900000A",
                "XENBUS\\VEN_XP0002&DEV_VBD&REV_09000009",
                "XENBUS\\VEN_XP0002&DEV_VBD&REV_09000008",
                "XENCLASS",
            ]
        );
        assert_eq!(
            device_id(Enumerator::Xenbus, "XP", "VBD").unwrap(),
            "XENBUS\\VEN_XP&DEV_VBD"
        );
        assert_eq!(vendor_name("XP", 0xC000).unwrap(), "XPC000");
        for id in &ids[..ids.len() - 1] {
            let revision = revision_of(id).and_then(XenbusRevision::find).unwrap();
            assert!(id.ends_with(&format!("{:08X}", revision.number)));
        }
    }

    #[test]
    fn xenvif_ids_end_with_xendevice() {
        let ids = hardware_ids(Enumerator::Xenvif, "XP0001", "NET").unwrap();
        assert_eq!(
            ids.first().unwrap(),
            "XENVIF\\VEN_XP0001&DEV_NET&REV_09000005"
        );
        assert_eq!(
            ids.get(4).unwrap(),
            "XENVIF\\VEN_XP0001&DEV_NET&REV_09000001"
        );
        assert_eq!(ids.last().unwrap(), "XENDEVICE");
        assert_eq!(ids.len(), XENVIF_REVISIONS.len() + 1);
    }

    #[test]
    fn multi_sz_is_double_nul_terminated_utf16() {
        let ids = hardware_ids(Enumerator::Xenbus, "XP0002", "VIF").unwrap();
        let sz = multi_sz(&ids);
        assert_eq!(&sz[sz.len() - 2..], &[0, 0]);
        let text = String::from_utf16(&sz).unwrap();
        let parts: Vec<&str> = text.split('\0').filter(|s| !s.is_empty()).collect();
        assert_eq!(parts, ids.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(matches!(vendor_name("", 2), Err(IdError::BadName(_))));
        assert!(matches!(
            device_id(Enumerator::Xenbus, "XP", "V&D"),
            Err(IdError::BadName(_))
        ));
        let long = "A".repeat(190);
        assert!(matches!(
            hardware_ids(Enumerator::Xenbus, "XP0002", &long),
            Err(IdError::IdTooLong(_))
        ));
        // The longest name that fits one ID still fits the list (5 revisions).
        let longest =
            "A".repeat(MAX_DEVICE_ID_LEN - 1 - "XENBUS\\VEN_XP0002&DEV_&REV_0900000C".len());
        let ids = hardware_ids(Enumerator::Xenbus, "XP0002", &longest).unwrap();
        assert_eq!(ids[0].len(), MAX_DEVICE_ID_LEN - 1);
    }

    #[test]
    fn a_bus_advertises_the_revisions_it_serves() {
        use crate::fake::{FakeDebug, FakeEvtchn, FakeGnttab, FakeStore, FakeSuspend};
        use crate::serve::Bus;
        use crate::store::events::Loopback;
        let store = crate::store::bus::StoreProvider::new(FakeStore::default(), Loopback);
        let evtchn = crate::evtchn::bus::EvtchnProvider::new(FakeEvtchn::default());
        let gnttab = crate::gnttab::bus::GnttabProvider::new(FakeGnttab::new(8));
        let suspend = crate::suspend::bus::SuspendProvider::new(FakeSuspend::default());
        let debug = crate::debug::bus::DebugProvider::new(FakeDebug::default());
        let mut bus = Bus::new();
        bus.serve(&store).unwrap();
        bus.serve(&evtchn).unwrap();
        bus.serve(&gnttab).unwrap();
        bus.serve(&suspend).unwrap();
        bus.serve(&debug).unwrap();
        assert!(bus.serves(&evtchn::GUID, 5) && bus.serves(&evtchn::GUID, 9));
        assert!(!bus.serves(&evtchn::GUID, 10) && !bus.serves(&unplug::GUID, 1));
        // Five interfaces are not a whole XENBUS revision...
        assert!(!XenbusRevision::newest().is_served_by(|g, v| bus.serves(g, v)));
        // ...with the others (say, UNPLUG 1 and 2 only, the rest in full), the
        // revisions up to UNPLUG 2 are.
        let others = |g: &Guid, v: u16| {
            bus.serves(g, v)
                || (*g == unplug::GUID && v <= 2)
                || (*g != unplug::GUID && !bus.serves(g, 1))
        };
        let served: Vec<u32> = XENBUS_REVISIONS
            .iter()
            .rev()
            .filter(|r| r.is_served_by(others))
            .map(|r| r.number)
            .collect();
        assert_eq!(served, [0x0900_000A, 0x0900_0009, 0x0900_0008]);
        let ids = hardware_ids_for(Enumerator::Xenbus, "XP0001", "VBD", &served).unwrap();
        assert_eq!(
            ids.first().unwrap(),
            "XENBUS\\VEN_XP0001&DEV_VBD&REV_0900000A"
        );
        assert_eq!(ids.len(), 4);
    }

    proptest! {
        #[test]
        fn revision_of_never_panics(id in "\\PC{0,64}") {
            let _ = revision_of(&id);
        }

        #[test]
        fn revision_of_reads_what_hardware_ids_write(number in any::<u32>()) {
            let id = format!("XENBUS\\VEN_XP0002&DEV_VBD&REV_{number:08X}");
            prop_assert_eq!(revision_of(&id), Some(number));
        }
    }
}
