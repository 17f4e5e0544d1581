//! Receive filtering: which received frames reach the stack, by destination
//! address class (unicast, multicast, broadcast) and a level for each: none,
//! matching (our MAC / the multicast list) or all. This is what NDIS sets with
//! `OID_GEN_CURRENT_PACKET_FILTER` and `OID_802_3_MULTICAST_LIST`, and what
//! the C driver's `XENVIF_MAC` filter levels express; promiscuous is "all"
//! for every class.
//!
//! netback already forwards only what the bridge sends the vif, so the check
//! is opt-in: the caller applies [`ReceiveFilter::admit`] to each packet
//! [`crate::rx`] hands it. The multicast list mirrors what the backend was
//! told through `MCAST_ADD`/`MCAST_DEL` extras
//! ([`crate::tx::TxQueue::submit_multicast`]): every change here reports the
//! addresses to add or remove there.

use alloc::vec::Vec;

use crate::stats::Statistics;
use crate::wire::ethernet::MacAddress;

/// How much of one address class is delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FilterLevel {
    /// Nothing.
    #[default]
    None,
    /// Frames to our address (unicast), to a listed group (multicast); every
    /// broadcast frame (broadcast has one address).
    Matching,
    /// Everything of the class.
    All,
}

/// One level per destination class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FilterLevels {
    /// Frames to a unicast address.
    pub unicast: FilterLevel,
    /// Frames to a group address other than broadcast.
    pub multicast: FilterLevel,
    /// Frames to `ff:ff:ff:ff:ff:ff`.
    pub broadcast: FilterLevel,
}

/// `NDIS_PACKET_TYPE_DIRECTED`.
pub const NDIS_PACKET_TYPE_DIRECTED: u32 = 0x0000_0001;
/// `NDIS_PACKET_TYPE_MULTICAST`.
pub const NDIS_PACKET_TYPE_MULTICAST: u32 = 0x0000_0002;
/// `NDIS_PACKET_TYPE_ALL_MULTICAST`.
pub const NDIS_PACKET_TYPE_ALL_MULTICAST: u32 = 0x0000_0004;
/// `NDIS_PACKET_TYPE_BROADCAST`.
pub const NDIS_PACKET_TYPE_BROADCAST: u32 = 0x0000_0008;
/// `NDIS_PACKET_TYPE_PROMISCUOUS`.
pub const NDIS_PACKET_TYPE_PROMISCUOUS: u32 = 0x0000_0020;

impl FilterLevels {
    /// Everything (promiscuous).
    pub const PROMISCUOUS: Self = Self {
        unicast: FilterLevel::All,
        multicast: FilterLevel::All,
        broadcast: FilterLevel::All,
    };

    /// Directed, listed multicast and broadcast: what a stack usually asks.
    pub const MATCHING: Self = Self {
        unicast: FilterLevel::Matching,
        multicast: FilterLevel::Matching,
        broadcast: FilterLevel::All,
    };

    /// The levels an NDIS packet filter (`OID_GEN_CURRENT_PACKET_FILTER`)
    /// asks for; bits we do not filter on (source routing, all-local,
    /// functional...) add nothing.
    pub fn from_ndis_packet_filter(filter: u32) -> Self {
        if filter & NDIS_PACKET_TYPE_PROMISCUOUS != 0 {
            return Self::PROMISCUOUS;
        }
        let unicast = if filter & NDIS_PACKET_TYPE_DIRECTED != 0 {
            FilterLevel::Matching
        } else {
            FilterLevel::None
        };
        let multicast = if filter & NDIS_PACKET_TYPE_ALL_MULTICAST != 0 {
            FilterLevel::All
        } else if filter & NDIS_PACKET_TYPE_MULTICAST != 0 {
            FilterLevel::Matching
        } else {
            FilterLevel::None
        };
        let broadcast = if filter & NDIS_PACKET_TYPE_BROADCAST != 0 {
            FilterLevel::All
        } else {
            FilterLevel::None
        };
        Self {
            unicast,
            multicast,
            broadcast,
        }
    }

    /// Whether every class is delivered whole.
    pub fn is_promiscuous(&self) -> bool {
        *self == Self::PROMISCUOUS
    }
}

/// Frames the filter refused, by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterCounters {
    /// Unicast frames dropped.
    pub unicast_dropped: u64,
    /// Multicast frames dropped.
    pub multicast_dropped: u64,
    /// Broadcast frames dropped.
    pub broadcast_dropped: u64,
    /// Frames too short to carry a destination address.
    pub runt_dropped: u64,
}

impl FilterCounters {
    /// Every frame dropped.
    pub fn total(&self) -> u64 {
        self.unicast_dropped
            .saturating_add(self.multicast_dropped)
            .saturating_add(self.broadcast_dropped)
            .saturating_add(self.runt_dropped)
    }
}

/// Why a multicast list change was refused (nothing was changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterError {
    /// A unicast or the broadcast address given as a multicast group.
    NotMulticast(MacAddress),
    /// More groups than [`MAX_MULTICAST`].
    ListFull,
}

/// Most multicast groups the list holds (NDIS's usual
/// `MaxMulticastListSize`); the list is allocated once, at this size.
pub const MAX_MULTICAST: usize = 32;

/// The receive filter of one device.
#[derive(Clone, Debug)]
pub struct ReceiveFilter {
    mac: MacAddress,
    levels: FilterLevels,
    multicast: Vec<MacAddress>,
    counters: FilterCounters,
}

impl ReceiveFilter {
    /// A filter for `mac` at [`FilterLevels::MATCHING`] with an empty list.
    pub fn new(mac: MacAddress) -> Self {
        Self {
            mac,
            levels: FilterLevels::MATCHING,
            multicast: Vec::with_capacity(MAX_MULTICAST),
            counters: FilterCounters::default(),
        }
    }

    /// Our unicast address.
    pub fn mac(&self) -> MacAddress {
        self.mac
    }

    /// Changes our unicast address (a new `NetworkAddress`, a reconnect).
    pub fn set_mac(&mut self, mac: MacAddress) {
        self.mac = mac;
    }

    /// The levels in force.
    pub fn levels(&self) -> FilterLevels {
        self.levels
    }

    /// Sets the levels.
    pub fn set_levels(&mut self, levels: FilterLevels) {
        self.levels = levels;
    }

    /// The multicast groups listed, in the order they were added.
    pub fn multicast_list(&self) -> &[MacAddress] {
        &self.multicast
    }

    /// Lists `group`. `Ok(true)` when it is new: tell the backend
    /// (`submit_multicast(group, true, ..)`); `Ok(false)` when already listed.
    pub fn add_multicast(&mut self, group: MacAddress) -> Result<bool, FilterError> {
        if !group.is_multicast() || group.is_broadcast() {
            return Err(FilterError::NotMulticast(group));
        }
        if self.multicast.contains(&group) {
            return Ok(false);
        }
        if self.multicast.len() >= MAX_MULTICAST {
            return Err(FilterError::ListFull);
        }
        self.multicast.push(group);
        Ok(true)
    }

    /// Unlists `group`; `true` when it was listed: tell the backend
    /// (`submit_multicast(group, false, ..)`).
    pub fn remove_multicast(&mut self, group: MacAddress) -> bool {
        match self.multicast.iter().position(|&g| g == group) {
            Some(at) => {
                self.multicast.remove(at);
                true
            }
            None => false,
        }
    }

    /// Replaces the whole list (`OID_802_3_MULTICAST_LIST`), reporting each
    /// group to remove (`false`) then to add (`true`) to `change`, so the
    /// backend's list follows. Checked first: on error nothing changed.
    pub fn set_multicast_list(
        &mut self,
        groups: &[MacAddress],
        change: &mut impl FnMut(MacAddress, bool),
    ) -> Result<(), FilterError> {
        let mut distinct = 0usize;
        for (i, &group) in groups.iter().enumerate() {
            if !group.is_multicast() || group.is_broadcast() {
                return Err(FilterError::NotMulticast(group));
            }
            if !groups[..i].contains(&group) {
                distinct += 1;
            }
        }
        if distinct > MAX_MULTICAST {
            return Err(FilterError::ListFull);
        }
        let mut i = 0;
        while i < self.multicast.len() {
            let group = self.multicast[i];
            if groups.contains(&group) {
                i += 1;
            } else {
                self.multicast.remove(i);
                change(group, false);
            }
        }
        for &group in groups {
            if !self.multicast.contains(&group) {
                self.multicast.push(group);
                change(group, true);
            }
        }
        Ok(())
    }

    /// Whether a frame to `dst` is delivered (no counting).
    pub fn accepts(&self, dst: MacAddress) -> bool {
        if dst.is_broadcast() {
            self.levels.broadcast != FilterLevel::None
        } else if dst.is_multicast() {
            match self.levels.multicast {
                FilterLevel::None => false,
                FilterLevel::Matching => self.multicast.contains(&dst),
                FilterLevel::All => true,
            }
        } else {
            match self.levels.unicast {
                FilterLevel::None => false,
                FilterLevel::Matching => dst == self.mac,
                FilterLevel::All => true,
            }
        }
    }

    /// Decides for a frame to `dst`, counting a drop here and in
    /// `stats.rx_discards` (NDIS `ifInDiscards`).
    pub fn admit(&mut self, dst: MacAddress, stats: &mut Statistics) -> bool {
        if self.accepts(dst) {
            return true;
        }
        let counter = if dst.is_broadcast() {
            &mut self.counters.broadcast_dropped
        } else if dst.is_multicast() {
            &mut self.counters.multicast_dropped
        } else {
            &mut self.counters.unicast_dropped
        };
        *counter = counter.saturating_add(1);
        stats.rx_discards = stats.rx_discards.saturating_add(1);
        false
    }

    /// [`ReceiveFilter::admit`] on a frame's first bytes (at least its
    /// destination address); shorter is dropped as a runt.
    pub fn admit_frame(&mut self, head: &[u8], stats: &mut Statistics) -> bool {
        if let Some(dst) = head.get(..6).and_then(|d| <[u8; 6]>::try_from(d).ok()) {
            self.admit(MacAddress(dst), stats)
        } else {
            self.counters.runt_dropped = self.counters.runt_dropped.saturating_add(1);
            stats.rx_discards = stats.rx_discards.saturating_add(1);
            false
        }
    }

    /// Drops counted so far.
    pub fn counters(&self) -> FilterCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use proptest::prelude::*;

    const OURS: MacAddress = MacAddress([0x00, 0x16, 0x3e, 0x01, 0x02, 0x03]);
    const OTHER: MacAddress = MacAddress([0x00, 0x16, 0x3e, 0x0a, 0x0b, 0x0c]);
    const LISTED: MacAddress = MacAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    const UNLISTED: MacAddress = MacAddress([0x33, 0x33, 0x00, 0x00, 0x00, 0x01]);
    const LEVELS: [FilterLevel; 3] = [FilterLevel::None, FilterLevel::Matching, FilterLevel::All];

    #[test]
    fn every_level_combination() {
        for unicast in LEVELS {
            for multicast in LEVELS {
                for broadcast in LEVELS {
                    let mut f = ReceiveFilter::new(OURS);
                    assert_eq!(f.add_multicast(LISTED), Ok(true));
                    let levels = FilterLevels {
                        unicast,
                        multicast,
                        broadcast,
                    };
                    f.set_levels(levels);
                    let mut stats = Statistics::default();
                    let cases = [
                        (OURS, unicast != FilterLevel::None),
                        (OTHER, unicast == FilterLevel::All),
                        (LISTED, multicast != FilterLevel::None),
                        (UNLISTED, multicast == FilterLevel::All),
                        (MacAddress::BROADCAST, broadcast != FilterLevel::None),
                    ];
                    let mut dropped = 0;
                    for (dst, want) in cases {
                        assert_eq!(f.accepts(dst), want, "{levels:?} {dst}");
                        assert_eq!(f.admit(dst, &mut stats), want);
                        dropped += u64::from(!want);
                    }
                    let c = f.counters();
                    assert_eq!(c.total(), dropped);
                    assert_eq!(stats.rx_discards, dropped);
                    assert_eq!(
                        c.unicast_dropped,
                        u64::from(unicast == FilterLevel::None)
                            + u64::from(unicast != FilterLevel::All)
                    );
                    assert_eq!(
                        c.broadcast_dropped,
                        u64::from(broadcast == FilterLevel::None)
                    );
                }
            }
        }
    }

    #[test]
    fn ndis_packet_filters() {
        assert_eq!(
            FilterLevels::from_ndis_packet_filter(0),
            FilterLevels::default()
        );
        assert_eq!(
            FilterLevels::from_ndis_packet_filter(
                NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_MULTICAST | NDIS_PACKET_TYPE_BROADCAST
            ),
            FilterLevels::MATCHING
        );
        let all_multi = FilterLevels::from_ndis_packet_filter(
            NDIS_PACKET_TYPE_ALL_MULTICAST | NDIS_PACKET_TYPE_MULTICAST,
        );
        assert_eq!(
            all_multi,
            FilterLevels {
                unicast: FilterLevel::None,
                multicast: FilterLevel::All,
                broadcast: FilterLevel::None
            }
        );
        assert!(
            FilterLevels::from_ndis_packet_filter(NDIS_PACKET_TYPE_PROMISCUOUS).is_promiscuous()
        );
        assert!(!FilterLevels::MATCHING.is_promiscuous());
    }

    #[test]
    fn multicast_list_and_backend_changes() {
        let mut f = ReceiveFilter::new(OURS);
        assert_eq!(f.add_multicast(OURS), Err(FilterError::NotMulticast(OURS)));
        assert_eq!(
            f.add_multicast(MacAddress::BROADCAST),
            Err(FilterError::NotMulticast(MacAddress::BROADCAST))
        );
        assert_eq!(f.add_multicast(LISTED), Ok(true));
        assert_eq!(f.add_multicast(LISTED), Ok(false));
        assert!(f.remove_multicast(LISTED));
        assert!(!f.remove_multicast(LISTED));
        for i in 0..MAX_MULTICAST {
            let g = MacAddress([0x01, 0, 0x5e, 0, 1, u8::try_from(i).unwrap()]);
            assert_eq!(f.add_multicast(g), Ok(true));
        }
        assert_eq!(f.add_multicast(LISTED), Err(FilterError::ListFull));
        let mut changes = Vec::new();
        f.set_multicast_list(&[LISTED, UNLISTED, LISTED], &mut |g, add| {
            changes.push((g, add));
        })
        .unwrap();
        assert_eq!(changes.len(), MAX_MULTICAST + 2);
        assert!(changes[..MAX_MULTICAST].iter().all(|&(_, add)| !add));
        assert_eq!(changes[MAX_MULTICAST..], [(LISTED, true), (UNLISTED, true)]);
        assert_eq!(f.multicast_list(), [LISTED, UNLISTED]);
        changes.clear();
        assert_eq!(
            f.set_multicast_list(&[LISTED, OTHER], &mut |g, add| changes.push((g, add))),
            Err(FilterError::NotMulticast(OTHER))
        );
        assert!(changes.is_empty());
        assert_eq!(f.multicast_list(), [LISTED, UNLISTED], "unchanged on error");
        f.set_mac(OTHER);
        assert_eq!(f.mac(), OTHER);
        assert!(f.accepts(OTHER) && !f.accepts(OURS));
    }

    #[test]
    fn runts_are_dropped_and_counted() {
        let mut f = ReceiveFilter::new(OURS);
        f.set_levels(FilterLevels::PROMISCUOUS);
        let mut stats = Statistics::default();
        assert!(!f.admit_frame(&[0xff; 5], &mut stats));
        assert!(f.admit_frame(&[0xff; 14], &mut stats));
        assert!(f.admit_frame(&OTHER.0, &mut stats));
        assert_eq!(f.counters().runt_dropped, 1);
        assert_eq!(stats.rx_discards, 1);
    }

    fn level() -> impl Strategy<Value = FilterLevel> {
        prop_oneof![
            Just(FilterLevel::None),
            Just(FilterLevel::Matching),
            Just(FilterLevel::All)
        ]
    }

    fn group() -> impl Strategy<Value = MacAddress> {
        // A few groups, so adds and removes collide.
        (0u8..6).prop_map(|n| MacAddress([0x01, 0x00, 0x5e, 0x00, 0x00, n]))
    }

    proptest! {
        #[test]
        fn decisions_follow_the_model(
            unicast in level(),
            multicast in level(),
            broadcast in level(),
            mac in any::<[u8; 6]>().prop_map(|mut m| { m[0] &= 0xfe; MacAddress(m) }),
            groups in proptest::collection::vec(group(), 0..8),
            frames in proptest::collection::vec(any::<[u8; 6]>(), 0..32),
        ) {
            let mut f = ReceiveFilter::new(mac);
            f.set_levels(FilterLevels { unicast, multicast, broadcast });
            for &g in &groups {
                f.add_multicast(g).unwrap();
            }
            let mut stats = Statistics::default();
            let mut dropped = 0u64;
            for frame in frames {
                let dst = MacAddress(frame);
                let want = if dst.is_broadcast() {
                    broadcast != FilterLevel::None
                } else if dst.is_multicast() {
                    multicast == FilterLevel::All
                        || (multicast == FilterLevel::Matching && groups.contains(&dst))
                } else {
                    unicast == FilterLevel::All || (unicast == FilterLevel::Matching && dst == mac)
                };
                prop_assert_eq!(f.admit_frame(&frame, &mut stats), want);
                dropped += u64::from(!want);
            }
            prop_assert_eq!(f.counters().total(), dropped);
            prop_assert_eq!(stats.rx_discards, dropped);
        }

        #[test]
        fn list_changes_match_a_set_and_the_backend_view(
            ops in proptest::collection::vec((any::<u8>(), group(), proptest::collection::vec(group(), 0..5)), 0..40),
        ) {
            let mut f = ReceiveFilter::new(OURS);
            let mut model = BTreeSet::new();
            // What the backend was told, replayed from the reported changes.
            let mut backend = BTreeSet::new();
            for (op, g, list) in ops {
                match op % 3 {
                    0 => {
                        if f.add_multicast(g).unwrap() {
                            prop_assert!(backend.insert(g.0));
                        }
                        model.insert(g.0);
                    }
                    1 => {
                        if f.remove_multicast(g) {
                            prop_assert!(backend.remove(&g.0));
                        }
                        model.remove(&g.0);
                    }
                    _ => {
                        f.set_multicast_list(&list, &mut |g, add| {
                            if add { backend.insert(g.0); } else { backend.remove(&g.0); }
                        }).unwrap();
                        model = list.iter().map(|m| m.0).collect();
                    }
                }
                let listed: BTreeSet<_> = f.multicast_list().iter().map(|m| m.0).collect();
                prop_assert_eq!(listed.len(), f.multicast_list().len(), "no duplicates");
                prop_assert_eq!(&listed, &model);
                prop_assert_eq!(&backend, &model);
            }
        }
    }
}
