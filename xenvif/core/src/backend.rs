//! What the backend offers, read from its xenstore directory, and the pure
//! decisions taken from it.

use alloc::string::String;
use alloc::vec::Vec;

use xenbus_interface::api::{Store, StoreError, Txn};

use crate::settings::Settings;
use crate::tx::{MAX_FRAGMENTS, TxCapabilities};

/// The backend's `feature-*` and `multi-queue-*` keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools, reason = "one flag per xenstore key")]
pub struct BackendFeatures {
    /// `feature-sg`: multi-slot packets.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// `feature-rx-copy`: the only receive mode we speak.
    pub rx_copy: bool,
    /// `feature-no-csum-offload`: the backend cannot take blank IPv4 checksums.
    pub no_csum_offload: bool,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum_offload: bool,
    /// `feature-split-event-channels`.
    pub split_event_channels: bool,
    /// `multi-queue-max-queues` (0 when absent: one queue, flat layout).
    pub max_queues: u32,
    /// `feature-ctrl-ring`.
    pub ctrl_ring: bool,
    /// `feature-dynamic-multicast-control`.
    pub dynamic_multicast_control: bool,
    /// `feature-rx-notify` (always on in netback since 2.6.x).
    pub rx_notify: bool,
}

/// Parses a xenstore boolean/number the way the Xen drivers do: decimal,
/// surrounding white space and a trailing NUL tolerated; `None` otherwise.
pub fn parse_u32(bytes: &[u8]) -> Option<u32> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes).trim_ascii();
    if bytes.is_empty() || bytes.len() > 10 {
        return None;
    }
    let mut value: u32 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(value)
}

impl BackendFeatures {
    /// Reads every key under `backend` (absent or unparsable keys mean "not
    /// offered": the backend is not trusted to write sense).
    pub fn read(store: &impl Store, backend: &str) -> Result<Self, StoreError> {
        let flag = |key: &str| -> Result<bool, StoreError> {
            Ok(read_u32(store, backend, key)?.is_some_and(|v| v != 0))
        };
        Ok(Self {
            sg: flag("feature-sg")?,
            gso_tcpv4: flag("feature-gso-tcpv4")?,
            gso_tcpv6: flag("feature-gso-tcpv6")?,
            rx_copy: flag("feature-rx-copy")?,
            no_csum_offload: flag("feature-no-csum-offload")?,
            ipv6_csum_offload: flag("feature-ipv6-csum-offload")?,
            split_event_channels: flag("feature-split-event-channels")?,
            max_queues: read_u32(store, backend, "multi-queue-max-queues")?.unwrap_or(0),
            ctrl_ring: flag("feature-ctrl-ring")?,
            dynamic_multicast_control: flag("feature-dynamic-multicast-control")?,
            rx_notify: flag("feature-rx-notify")?,
        })
    }

    /// How many queues to use: at most ours, at most the backend's, at least 1.
    pub fn queues(&self, settings: &Settings) -> u32 {
        self.max_queues
            .max(1)
            .min(settings.frontend_max_queues.max(1))
    }

    /// Whether to use split event channels.
    pub fn split(&self, settings: &Settings) -> bool {
        self.split_event_channels && !settings.frontend_disable_split_event_channels
    }

    /// Whether to request multicast control.
    pub fn multicast_control(&self, settings: &Settings) -> bool {
        self.dynamic_multicast_control && !settings.transmitter_disable_multicast_control
    }

    /// What transmit may use.
    pub fn tx_capabilities(&self, settings: &Settings) -> TxCapabilities {
        TxCapabilities {
            max_slots: if self.sg { MAX_FRAGMENTS } else { 1 },
            csum_ipv4: !self.no_csum_offload,
            csum_ipv6: self.ipv6_csum_offload,
            // GSO needs scatter-gather: a 64 KiB packet never fits one slot.
            gso_tcpv4: self.sg && self.gso_tcpv4 && !settings.transmitter_disable_ip_version4_gso,
            gso_tcpv6: self.sg && self.gso_tcpv6 && !settings.transmitter_disable_ip_version6_gso,
            multicast_control: self.multicast_control(settings),
            always_copy: settings.transmitter_always_copy,
        }
    }
}

/// Reads `<dir>/<key>` as a number; `Ok(None)` when absent (`ENOENT`) or not a
/// number.
pub fn read_u32(store: &impl Store, dir: &str, key: &str) -> Result<Option<u32>, StoreError> {
    match store.read(Txn::NONE, &join(dir, key)) {
        Ok(bytes) => Ok(parse_u32(&bytes)),
        Err(StoreError::Xs(xen_abi::xs_wire::XsError::Enoent)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `dir/key`.
pub fn join(dir: &str, key: &str) -> String {
    let mut path = String::with_capacity(dir.len() + 1 + key.len());
    path.push_str(dir);
    path.push('/');
    path.push_str(key);
    path
}

/// The keys a frontend writes for one connection, in order (the pure part of
/// the handshake: tested without a store, written in one transaction).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrontendKeys {
    /// `(relative path, value)` pairs.
    pub entries: Vec<(String, String)>,
}

impl FrontendKeys {
    /// Adds one key.
    pub fn push(&mut self, key: impl Into<String>, value: impl core::fmt::Display) {
        self.entries.push((key.into(), alloc::format!("{value}")));
    }

    /// The value written for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"1"), Some(1));
        assert_eq!(parse_u32(b" 8\0"), Some(8));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        for bad in [&b""[..], b"x", b"-1", b"4294967296", b"1 2"] {
            assert_eq!(parse_u32(bad), None);
        }
    }

    #[test]
    fn decisions() {
        let mut s = Settings::default();
        let mut f = BackendFeatures {
            sg: true,
            gso_tcpv4: true,
            gso_tcpv6: true,
            max_queues: 4,
            ..BackendFeatures::default()
        };
        assert_eq!(f.queues(&s), 4);
        s.frontend_max_queues = 2;
        assert_eq!(f.queues(&s), 2);
        f.max_queues = 0;
        assert_eq!(f.queues(&s), 1);
        let caps = f.tx_capabilities(&s);
        assert!(caps.gso_tcpv4 && caps.gso_tcpv6 && caps.csum_ipv4 && !caps.csum_ipv6);
        assert_eq!(caps.max_slots, MAX_FRAGMENTS);
        f.sg = false;
        let caps = f.tx_capabilities(&s);
        assert!(!caps.gso_tcpv4 && caps.max_slots == 1);
        s.transmitter_disable_ip_version6_gso = true;
        f.sg = true;
        assert!(!f.tx_capabilities(&s).gso_tcpv6);
        assert!(!f.tx_capabilities(&s).always_copy);
        s.transmitter_always_copy = true;
        assert!(f.tx_capabilities(&s).always_copy);
    }
}
