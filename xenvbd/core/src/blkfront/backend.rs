//! What the backend publishes: disk geometry and features, read from its
//! xenstore directory and checked.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::blkif::{VDISK_CDROM, VDISK_READONLY, VDISK_REMOVABLE};
use xenbus_interface::api::{Store, StoreError, Txn};

use crate::scsi::Discard;

/// The disk as the backend describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent features, one per backend key"
)]
pub struct BackendInfo {
    /// `sectors`: size in 512-byte sectors (what Linux's blkback publishes and
    /// its blkfront reads, whatever `sector-size` says).
    pub sectors: u64,
    /// `sector-size`: logical block size.
    pub sector_size: u32,
    /// `physical-sector-size` (default: `sector-size`).
    pub physical_sector_size: u32,
    /// `info`: VDISK_READONLY.
    pub read_only: bool,
    /// `info`: VDISK_REMOVABLE.
    pub removable: bool,
    /// `info`: VDISK_CDROM.
    pub cdrom: bool,
    /// `feature-flush-cache`.
    pub flush_cache: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-discard` with `discard-granularity`, `discard-alignment`,
    /// `discard-secure`.
    pub discard: Option<Discard>,
    /// `feature-max-indirect-segments` (0: none).
    pub max_indirect_segments: u32,
    /// `feature-persistent`.
    pub persistent: bool,
    /// `multi-queue-max-queues` (1 if absent).
    pub max_queues: u32,
    /// `max-ring-page-order` (0 if absent).
    pub max_ring_page_order: u32,
}

/// Why the backend's keys were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendInfoError {
    /// xenstore failed.
    Store(StoreError),
    /// A key is missing, not a number, or out of range.
    BadKey {
        /// The key.
        key: &'static str,
        /// What it held (lossy UTF-8), or empty if absent.
        value: String,
    },
}

impl fmt::Display for BackendInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "reading backend keys: {e}"),
            Self::BadKey { key, value } => write!(f, "backend key {key} has bad value {value:?}"),
        }
    }
}

/// Parses a xenstore number (decimal, like the C drivers' `strtoul(.., 10)`;
/// a trailing NUL or newline is tolerated).
pub fn parse_u64(raw: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(raw).ok()?;
    let text = text.trim_end_matches(['\0', '\n']);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Reads `dir/key`; `Ok(None)` if absent.
pub(crate) fn read_opt(
    store: &(impl Store + ?Sized),
    txn: Txn,
    dir: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut path = String::with_capacity(dir.len() + key.len() + 1);
    path.push_str(dir);
    path.push('/');
    path.push_str(key);
    match store.read(txn, &path) {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Xs(xen_abi::xs_wire::XsError::Enoent)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl BackendInfo {
    /// Reads and checks every key from the backend directory `dir`.
    pub fn read(store: &(impl Store + ?Sized), dir: &str) -> Result<Self, BackendInfoError> {
        Self::from_lookup(|key| read_opt(store, Txn::NONE, dir, key))
    }

    /// The same from any key lookup (`Ok(None)`: absent).
    pub fn from_lookup(
        mut lookup: impl FnMut(&'static str) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Self, BackendInfoError> {
        let mut number = |key: &'static str, default: Option<u64>, max: u64| {
            let raw = lookup(key).map_err(BackendInfoError::Store)?;
            let value = match &raw {
                None => default,
                Some(raw) => parse_u64(raw),
            };
            value
                .filter(|&v| v <= max)
                .ok_or_else(|| BackendInfoError::BadKey {
                    key,
                    value: raw
                        .map(|r| String::from_utf8_lossy(&r).into_owned())
                        .unwrap_or_default(),
                })
        };
        let bad = |key: &'static str, value: u64| BackendInfoError::BadKey {
            key,
            value: alloc::format!("{value}"),
        };

        // The disk must be addressable in bytes by a u64.
        let sectors = number("sectors", None, u64::MAX / 512)?;
        let sector_size = number("sector-size", Some(512), 1 << 16)?;
        if sector_size < 512 || !sector_size.is_power_of_two() {
            return Err(bad("sector-size", sector_size));
        }
        let physical = number("physical-sector-size", Some(sector_size), 1 << 30)?;
        if physical < sector_size || physical % sector_size != 0 {
            return Err(bad("physical-sector-size", physical));
        }
        let info = number("info", Some(0), u64::from(u32::MAX))?;
        let flag = |n: u64| n != 0;
        let flush_cache = flag(number("feature-flush-cache", Some(0), u64::MAX)?);
        let barrier = flag(number("feature-barrier", Some(0), u64::MAX)?);
        let discard = if flag(number("feature-discard", Some(0), u64::MAX)?) {
            let granularity = number(
                "discard-granularity",
                Some(sector_size),
                u64::from(u32::MAX),
            )?;
            let alignment = number("discard-alignment", Some(0), u64::from(u32::MAX))?;
            let secure = flag(number("discard-secure", Some(0), u64::MAX)?);
            Some(Discard {
                granularity: u32::try_from(granularity).unwrap_or(u32::MAX),
                alignment: u32::try_from(alignment).unwrap_or(0),
                secure,
            })
        } else {
            None
        };
        let max_indirect_segments = number(
            "feature-max-indirect-segments",
            Some(0),
            u64::from(u32::MAX),
        )?;
        let persistent = flag(number("feature-persistent", Some(0), u64::MAX)?);
        let max_queues = number("multi-queue-max-queues", Some(1), u64::from(u32::MAX))?;
        let max_ring_page_order = number("max-ring-page-order", Some(0), u64::from(u32::MAX))?;
        Ok(Self {
            sectors,
            sector_size: u32::try_from(sector_size).unwrap_or(512),
            physical_sector_size: u32::try_from(physical).unwrap_or(512),
            read_only: u64::from(VDISK_READONLY) & info != 0,
            removable: u64::from(VDISK_REMOVABLE) & info != 0,
            cdrom: u64::from(VDISK_CDROM) & info != 0,
            flush_cache,
            barrier,
            discard,
            max_indirect_segments: u32::try_from(max_indirect_segments).unwrap_or(u32::MAX),
            persistent,
            max_queues: u32::try_from(max_queues).unwrap_or(u32::MAX),
            max_ring_page_order: u32::try_from(max_ring_page_order).unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn info(keys: &[(&'static str, &str)]) -> Result<BackendInfo, BackendInfoError> {
        let map: BTreeMap<_, _> = keys.iter().copied().collect();
        BackendInfo::from_lookup(|k| Ok(map.get(k).map(|v| v.as_bytes().to_vec())))
    }

    #[test]
    fn defaults_and_features() {
        let i = info(&[("sectors", "2048")]).unwrap();
        assert_eq!(
            (i.sectors, i.sector_size, i.physical_sector_size),
            (2048, 512, 512)
        );
        assert!(!i.flush_cache && i.discard.is_none() && i.max_queues == 1);
        let i = info(&[
            ("sectors", "8"),
            ("sector-size", "4096"),
            ("info", "4"),
            ("feature-flush-cache", "1"),
            ("feature-discard", "1"),
            ("discard-secure", "1"),
            ("feature-max-indirect-segments", "256"),
            ("multi-queue-max-queues", "4"),
            ("max-ring-page-order", "4"),
            ("feature-persistent", "1"),
        ])
        .unwrap();
        assert!(i.read_only && i.flush_cache && i.persistent);
        assert_eq!(
            i.discard,
            Some(Discard {
                granularity: 4096,
                alignment: 0,
                secure: true
            })
        );
        assert_eq!(i.physical_sector_size, 4096);
        assert_eq!(
            (i.max_indirect_segments, i.max_queues, i.max_ring_page_order),
            (256, 4, 4)
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = info(&[]).unwrap_err();
        assert!(matches!(e, BackendInfoError::BadKey { key: "sectors", .. }));
        let e = info(&[("sectors", "12x")]).unwrap_err();
        assert!(matches!(e, BackendInfoError::BadKey { key: "sectors", .. }));
        let e = info(&[("sectors", "1"), ("sector-size", "1000")]).unwrap_err();
        assert!(matches!(
            e,
            BackendInfoError::BadKey {
                key: "sector-size",
                ..
            }
        ));
        let e = info(&[
            ("sectors", "1"),
            ("sector-size", "4096"),
            ("physical-sector-size", "512"),
        ])
        .unwrap_err();
        assert!(matches!(
            e,
            BackendInfoError::BadKey {
                key: "physical-sector-size",
                ..
            }
        ));
        let e = info(&[("sectors", "36028797018963968")]).unwrap_err();
        assert!(matches!(e, BackendInfoError::BadKey { key: "sectors", .. }));
        assert_eq!(parse_u64(b"17\0"), Some(17));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
    }
}
