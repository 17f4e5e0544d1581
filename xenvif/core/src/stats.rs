//! Counters, shaped after what NDIS reports (`NDIS_STATISTICS_INFO`): packets
//! and octets per direction split into unicast, multicast and broadcast, plus
//! discards and errors; and the ring-level counts behind them.

use crate::wire::ethernet::MacAddress;

/// Every counter of one device (sum over its queues).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Packets handed to the tx ring.
    pub tx_packets_queued: u64,
    /// Of those, packets copied into the queue's pool first (too many
    /// fragments, or `TransmitterAlwaysCopy`).
    pub tx_packets_coalesced: u64,
    /// Packets the backend sent (`NETIF_RSP_OKAY`).
    pub tx_packets_ok: u64,
    /// Packets the backend dropped (`NETIF_RSP_DROPPED`): NDIS `ifOutDiscards`.
    pub tx_packets_dropped: u64,
    /// Packets that failed (`NETIF_RSP_ERROR`, or in flight when the device
    /// failed): NDIS `ifOutErrors`.
    pub tx_packets_error: u64,
    /// NDIS `ifHCOutUcastPkts`.
    pub tx_unicast_packets: u64,
    /// NDIS `ifHCOutUcastOctets`.
    pub tx_unicast_octets: u64,
    /// NDIS `ifHCOutMulticastPkts`.
    pub tx_multicast_packets: u64,
    /// NDIS `ifHCOutMulticastOctets`.
    pub tx_multicast_octets: u64,
    /// NDIS `ifHCOutBroadcastPkts`.
    pub tx_broadcast_packets: u64,
    /// NDIS `ifHCOutBroadcastOctets`.
    pub tx_broadcast_octets: u64,
    /// Packets received whole.
    pub rx_packets: u64,
    /// Bytes received in those packets.
    pub rx_bytes: u64,
    /// Received packets the backend flagged as failed, or dropped by the
    /// filter: NDIS `ifInDiscards`.
    pub rx_discards: u64,
    /// Received packets with errors: NDIS `ifInErrors`.
    pub rx_errors: u64,
    /// NDIS `ifHCInUcastPkts`.
    pub rx_unicast_packets: u64,
    /// NDIS `ifHCInUcastOctets`.
    pub rx_unicast_octets: u64,
    /// NDIS `ifHCInMulticastPkts`.
    pub rx_multicast_packets: u64,
    /// NDIS `ifHCInMulticastOctets`.
    pub rx_multicast_octets: u64,
    /// NDIS `ifHCInBroadcastPkts`.
    pub rx_broadcast_packets: u64,
    /// NDIS `ifHCInBroadcastOctets`.
    pub rx_broadcast_octets: u64,
    /// Received packets whose checksum the backend left blank.
    pub rx_checksum_blank: u64,
    /// Received GSO (large) packets.
    pub rx_gso_packets: u64,
    /// Received packets carrying a hash.
    pub rx_hashed_packets: u64,
    /// Backend resets survived.
    pub reconnects: u64,
}

impl Statistics {
    /// Counts a sent frame of `len` bytes by its destination class.
    pub fn count_tx_frame(&mut self, dst: MacAddress, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let (packets, octets) = if dst.is_broadcast() {
            (
                &mut self.tx_broadcast_packets,
                &mut self.tx_broadcast_octets,
            )
        } else if dst.is_multicast() {
            (
                &mut self.tx_multicast_packets,
                &mut self.tx_multicast_octets,
            )
        } else {
            (&mut self.tx_unicast_packets, &mut self.tx_unicast_octets)
        };
        *packets += 1;
        *octets = octets.saturating_add(len);
    }

    /// Counts a received frame of `len` bytes by its destination class.
    pub fn count_rx_frame(&mut self, dst: MacAddress, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let (packets, octets) = if dst.is_broadcast() {
            (
                &mut self.rx_broadcast_packets,
                &mut self.rx_broadcast_octets,
            )
        } else if dst.is_multicast() {
            (
                &mut self.rx_multicast_packets,
                &mut self.rx_multicast_octets,
            )
        } else {
            (&mut self.rx_unicast_packets, &mut self.rx_unicast_octets)
        };
        *packets += 1;
        *octets = octets.saturating_add(len);
    }
}
