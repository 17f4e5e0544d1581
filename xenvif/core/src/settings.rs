//! The frontend's own limits, named like the C driver's registry knobs (under
//! `HKLM\SYSTEM\CurrentControlSet\Services\xenvif\Parameters`) so an admin's
//! existing settings carry over; the Windows shell reads the registry, the rig
//! sets them directly.

use crate::wire::ethernet::MacAddress;

/// Frontend settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools, reason = "one flag per registry knob")]
pub struct Settings {
    /// `FrontendMaxQueues`: most queues to ask for (the backend's
    /// `multi-queue-max-queues` and this bound the count).
    pub frontend_max_queues: u32,
    /// `FrontendDisableToeplitz`: never configure the control ring's hash,
    /// even when the backend offers `feature-ctrl-ring`.
    pub frontend_disable_toeplitz: bool,
    /// `FrontendDisableSplitEventChannels` (ours; the C driver always splits
    /// when offered): one event channel per queue even when the backend offers
    /// `feature-split-event-channels`.
    pub frontend_disable_split_event_channels: bool,
    /// `TransmitterDisableMulticastControl`: do not request
    /// `request-multicast-control` even when offered.
    pub transmitter_disable_multicast_control: bool,
    /// `TransmitterDisableIpVersion4Gso`: no TSO over IPv4.
    pub transmitter_disable_ip_version4_gso: bool,
    /// `TransmitterDisableIpVersion6Gso`: no TSO over IPv6.
    pub transmitter_disable_ip_version6_gso: bool,
    /// `TransmitterAlwaysCopy`: copy every packet before sending it
    /// (surfaced as `TxCapabilities::always_copy`; `TxQueue::submit_coalesced`
    /// copies into the queue's pool, plain `TxQueue::submit` never reads data).
    pub transmitter_always_copy: bool,
    /// `ReceiverDisableIpVersion4Gso` / `...6Gso` combined with
    /// `ReceiverAllowGsoPackets = 0`: advertise no large-receive offload, so
    /// netback segments before delivering.
    pub receiver_disable_gso: bool,
    /// `ReceiverCalculateChecksums` off: tell the backend we cannot take
    /// blank checksums (`feature-no-csum-offload` = 1), so it completes them.
    pub receiver_disable_checksum_offload: bool,
    /// `NetworkAddress`: the MAC to use instead of the backend's `mac` node.
    pub mac_address: Option<MacAddress>,
    /// The MTU to use when xenstore has none.
    pub default_mtu: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            frontend_max_queues: 8,
            frontend_disable_toeplitz: false,
            frontend_disable_split_event_channels: false,
            transmitter_disable_multicast_control: false,
            transmitter_disable_ip_version4_gso: false,
            transmitter_disable_ip_version6_gso: false,
            transmitter_always_copy: false,
            receiver_disable_gso: false,
            receiver_disable_checksum_offload: false,
            mac_address: None,
            default_mtu: 1500,
        }
    }
}
