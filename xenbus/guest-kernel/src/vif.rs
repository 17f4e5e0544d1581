//! The guest's network device: `xenvif-core`'s netfront connected to dom0's
//! netback with the guest platform's own event channels and grant table, and
//! a small packet responder on top (ARP for our address, ICMP echo, a UDP
//! echo port, and the acknowledgements of dom0's sink).
//!
//! The device runs in poll mode: [`Device::pump`] consumes its ports' pending
//! bits itself (`SCHEDOP_poll` wakes on them, see [`Device::ports`]) and never
//! walks the event queues, so it cannot take another device's events.
//! Nothing on the data path allocates: frames are copied into pages and
//! scratch buffers made at connect time.
//!
//! Datagram format shared with dom0 (`build/rig-tests/src/suites/guest_vif.rs`):
//! `seq` (u32, big-endian), `len` (u16, big-endian, the whole payload),
//! then [`payload_byte`]`(seq, i)` for every further byte `i`.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::time::Duration;

use xenbus_core::guest::api::{GuestChannel, GuestEventChannels, GuestGrantTable};
use xenbus_core::guest::evtchn::{EventChannels, PendingFlag};
use xenbus_core::guest::gnttab::GrantTable;
use xenbus_interface::api::{self as bus, Memory, PAGE_SIZE, Pages, Pfn, Store, XenbusState};
use xenvif_core::netfront::{MemoryRings, Netfront, Platform, QueueChannels, wait_state};
use xenvif_core::rx::RxEvent;
use xenvif_core::settings::Settings;
use xenvif_core::stats::Statistics;
use xenvif_core::tx::{TxBuffer, TxOffload, TxPacket, TxStatus};
use xenvif_core::wire::checksum::{self, pseudo_header};
use xenvif_core::wire::ethernet::{self, EtherType, MacAddress};
use xenvif_core::wire::ip::{IpAddress, Ipv4Address, Protocol};
use xenvif_core::wire::{ipv4, udp};

use crate::pool::PagePool;
use crate::x86::X86;

/// The UDP port the guest echoes on.
pub const ECHO_PORT: u16 = 7;
/// The UDP port the guest sends its datagrams from; dom0's sink acknowledges
/// to it.
pub const SOURCE_PORT: u16 = 4000;
/// Largest UDP payload in one 1500-byte IPv4 packet.
pub const MAX_PAYLOAD: usize = 1500 - ipv4::MIN_HEADER_LEN - udp::HEADER_LEN;
/// Smallest datagram payload: its sequence number and length.
pub const MIN_PAYLOAD: usize = 6;
/// Receive pages posted to netback (one full one-page rx ring).
pub const RX_PAGES: usize = 256;
/// Transmit pages (at most this many frames in flight; netback answers a
/// slot whose data it mapped only once dom0 freed the packet).
pub const TX_PAGES: usize = 128;
/// Frames taken off the rx ring per batch.
const BATCH: usize = 64;
/// Largest frame kept from the rx ring (a 1500-byte MTU frame plus VLAN tags).
const FRAME_MAX: usize = 2048;
/// Ethernet header.
const ETH: usize = ethernet::HEADER_LEN;
/// An ARP packet for IPv4 over Ethernet.
const ARP_LEN: usize = 28;
/// Frames shorter than this (without FCS) are padded.
const MIN_FRAME: usize = 60;

/// Byte `i` (counted from the start of the payload) of datagram `seq`.
pub fn payload_byte(seq: u32, i: usize) -> u8 {
    let s = seq.to_le_bytes();
    let i = i.to_le_bytes();
    (s[0] ^ s[1].rotate_left(3))
        .wrapping_add(i[0].wrapping_mul(7))
        .wrapping_add(i[1].wrapping_mul(13))
}

/// Payload size of datagram `seq`: mixed sizes, the extremes included.
pub fn datagram_len(seq: u32) -> usize {
    match seq % 50 {
        0 => MAX_PAYLOAD,
        1 => MIN_PAYLOAD,
        _ => {
            let span = u32::try_from(MAX_PAYLOAD - MIN_PAYLOAD + 1).unwrap_or(1);
            MIN_PAYLOAD + usize::try_from(seq.wrapping_mul(7919) % span).unwrap_or(0)
        }
    }
}

/// Fills `out` with datagram `seq` (`out.len()` bytes).
pub fn fill_datagram(seq: u32, out: &mut [u8]) {
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    for (i, b) in out.iter_mut().enumerate() {
        *b = match i {
            0..4 => seq.to_be_bytes()[i],
            4..6 => len.to_be_bytes()[i - 4],
            _ => payload_byte(seq, i),
        };
    }
}

/// Whether `data` is a well-formed datagram ([`fill_datagram`]): its length
/// field matches and every byte is the pattern's.
pub fn datagram_ok(data: &[u8]) -> bool {
    let (Some(seq), Some(len)) = (data.get(..4), data.get(4..6)) else {
        return false;
    };
    let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
    usize::from(u16::from_be_bytes([len[0], len[1]])) == data.len()
        && data
            .iter()
            .enumerate()
            .skip(MIN_PAYLOAD)
            .all(|(i, &b)| b == payload_byte(seq, i))
}

/// Addresses of both ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// Ours (the backend's `mac` node).
    pub mac: MacAddress,
    /// Ours (told by dom0).
    pub ip: Ipv4Address,
    /// dom0's (told by dom0, refreshed from its ARP traffic).
    pub peer_mac: MacAddress,
    /// dom0's.
    pub peer_ip: Ipv4Address,
}

/// What the responder saw and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// ARP requests answered.
    pub arp_replies: u64,
    /// ICMP echo requests answered.
    pub icmp_replies: u64,
    /// UDP datagrams echoed.
    pub udp_echoed: u64,
    /// Their payload bytes.
    pub udp_echoed_bytes: u64,
    /// Echo requests whose payload was not dom0's pattern (echoed anyway:
    /// dom0 judges; this tells on which leg a corruption happened).
    pub echo_pattern_bad: u64,
    /// Frames not for us or of no interest (IPv6 neighbour discovery...).
    pub ignored: u64,
    /// Malformed frames, bad IP/ICMP/UDP checksums.
    pub bad: u64,
    /// Received with the checksum blank (`NETRXF_csum_blank`).
    pub rx_csum_blank: u64,
    /// Received with only `NETRXF_data_validated`.
    pub rx_validated: u64,
    /// Received checksums verified in software.
    pub rx_csum_verified: u64,
    /// Sent with a partial UDP checksum for netback to complete.
    pub tx_csum_offloaded: u64,
    /// Sent with the UDP checksum computed here.
    pub tx_csum_full: u64,
    /// Replies dropped because no transmit page or slot was free.
    pub tx_busy: u64,
    /// Transmits netback did not answer `NETIF_RSP_OKAY`.
    pub tx_errors: u64,
    /// Frames dropped because they exceed the batch slot.
    pub rx_oversize: u64,
    /// Highest count dom0's sink acknowledged.
    pub sink_acked: u32,
    /// Acknowledgements received.
    pub sink_acks: u64,
}

/// How a frame's UDP checksum is to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpChecksum {
    /// Computed here.
    Full,
    /// Pseudo-header sum only, completed by the backend (`NETTXF_csum_blank`).
    Partial,
}

/// Writes an Ethernet + IPv4 + UDP frame carrying `payload` into `out`;
/// returns its length (`None` when `out` is too small).
#[allow(
    clippy::too_many_arguments,
    reason = "the addresses of both ends, named"
)]
pub fn build_udp(
    out: &mut [u8],
    net: &NetConfig,
    dst_mac: MacAddress,
    dst_ip: Ipv4Address,
    ports: (u16, u16),
    payload: &[u8],
    ident: u16,
    sum: UdpChecksum,
) -> Option<usize> {
    let udp_len = udp::HEADER_LEN.checked_add(payload.len())?;
    let ip_len = ipv4::MIN_HEADER_LEN.checked_add(udp_len)?;
    let total = ETH.checked_add(ip_len)?;
    let frame = out.get_mut(..total.max(MIN_FRAME))?;
    frame.fill(0);
    write_eth(frame, dst_mac, net.mac, EtherType::IPV4);
    write_ipv4(
        frame.get_mut(ETH..ETH + ip_len)?,
        net.ip,
        dst_ip,
        Protocol::UDP,
        ident,
    )?;
    let segment = frame.get_mut(ETH + ipv4::MIN_HEADER_LEN..total)?;
    segment.get_mut(udp::HEADER_LEN..)?.copy_from_slice(payload);
    let mut packet = udp::Packet::new_checked(&mut *segment).ok()?;
    packet.set_ports(ports.0, ports.1);
    packet.set_len(u16::try_from(udp_len).ok()?);
    let pseudo = pseudo_header(
        &IpAddress::V4(net.ip),
        &IpAddress::V4(dst_ip),
        Protocol::UDP,
        u32::try_from(udp_len).ok()?,
    );
    match sum {
        UdpChecksum::Full => packet.fill_checksum(pseudo),
        // What Linux leaves for CHECKSUM_PARTIAL: the folded pseudo-header
        // sum, not complemented; netback completes it.
        UdpChecksum::Partial => packet.set_checksum(pseudo.folded()),
    }
    Some(total.max(MIN_FRAME))
}

fn write_eth(frame: &mut [u8], dst: MacAddress, src: MacAddress, ethertype: EtherType) {
    if let Ok(mut eth) = ethernet::Frame::new_checked(frame) {
        eth.set_dst(dst);
        eth.set_src(src);
        eth.set_ethertype(ethertype);
    }
}

/// A 20-byte IPv4 header at the start of `datagram` (whose length is the
/// packet's), checksum filled in.
fn write_ipv4(
    datagram: &mut [u8],
    src: Ipv4Address,
    dst: Ipv4Address,
    protocol: Protocol,
    ident: u16,
) -> Option<()> {
    let total = u16::try_from(datagram.len()).ok()?;
    let header = datagram.get_mut(..ipv4::MIN_HEADER_LEN)?;
    header.fill(0);
    header[0] = 0x45;
    header[6] = 0x40; // don't fragment
    header[8] = 64;
    header[9] = protocol.0;
    header[12..16].copy_from_slice(&src.0);
    header[16..20].copy_from_slice(&dst.0);
    let mut packet = ipv4::Packet::new_unchecked(&mut *datagram);
    packet.set_total_len(total);
    packet.set_ident(ident);
    packet.fill_checksum();
    Some(())
}

/// What the receive side knows about a frame's checksums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxFlags {
    /// `NETRXF_csum_blank`: the TCP/UDP checksum field holds only the
    /// pseudo-header sum; the data is good.
    pub checksum_blank: bool,
    /// `NETRXF_data_validated`.
    pub data_validated: bool,
}

/// Answers one received frame into `out`: `Some(len, offload)` is a frame to
/// send. `partial` says whether a UDP reply may leave its checksum to the
/// backend. Every length comes from the frame and is checked.
pub fn respond(
    frame: &[u8],
    flags: RxFlags,
    net: &mut NetConfig,
    out: &mut [u8],
    counters: &mut Counters,
    partial: bool,
) -> Option<(usize, TxOffload)> {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        counters.bad += 1;
        return None;
    };
    if eth.dst() != net.mac && !eth.dst().is_broadcast() {
        counters.ignored += 1;
        return None;
    }
    let src = eth.src();
    match eth.ethertype() {
        EtherType::ARP => arp(eth.payload(), src, net, out, counters),
        EtherType::IPV4 => ip(eth.payload(), src, flags, net, out, counters, partial),
        _ => {
            counters.ignored += 1;
            None
        }
    }
}

fn arp(
    packet: &[u8],
    src: MacAddress,
    net: &mut NetConfig,
    out: &mut [u8],
    counters: &mut Counters,
) -> Option<(usize, TxOffload)> {
    let Some(arp) = packet.get(..ARP_LEN) else {
        counters.bad += 1;
        return None;
    };
    // Ethernet (1), IPv4, 6-byte and 4-byte addresses.
    if arp[0..6] != [0, 1, 8, 0, 6, 4] {
        counters.ignored += 1;
        return None;
    }
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    let mut sha = [0u8; 6];
    sha.copy_from_slice(&arp[8..14]);
    let mut spa = [0u8; 4];
    spa.copy_from_slice(&arp[14..18]);
    let tpa = &arp[24..28];
    if spa == net.peer_ip.0 && sha == src.0 && !src.is_multicast() {
        net.peer_mac = src;
    }
    if op != 1 || tpa != net.ip.0 {
        counters.ignored += 1;
        return None;
    }
    let reply = out.get_mut(..MIN_FRAME)?;
    reply.fill(0);
    write_eth(reply, MacAddress(sha), net.mac, EtherType::ARP);
    let body = reply.get_mut(ETH..ETH + ARP_LEN)?;
    body[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
    body[6..8].copy_from_slice(&2u16.to_be_bytes());
    body[8..14].copy_from_slice(&net.mac.0);
    body[14..18].copy_from_slice(&net.ip.0);
    body[18..24].copy_from_slice(&sha);
    body[24..28].copy_from_slice(&spa);
    counters.arp_replies += 1;
    Some((MIN_FRAME, TxOffload::default()))
}

#[allow(clippy::too_many_arguments, reason = "the frame's context, named")]
fn ip(
    datagram: &[u8],
    src_mac: MacAddress,
    flags: RxFlags,
    net: &mut NetConfig,
    out: &mut [u8],
    counters: &mut Counters,
    partial: bool,
) -> Option<(usize, TxOffload)> {
    let Ok(packet) = ipv4::Packet::new_checked(datagram) else {
        counters.bad += 1;
        return None;
    };
    if packet.version() != 4 || !packet.verify_checksum() {
        counters.bad += 1;
        return None;
    }
    if packet.dst() != net.ip || packet.is_fragment() {
        counters.ignored += 1;
        return None;
    }
    let peer = packet.src();
    let payload = packet.payload();
    match packet.protocol() {
        Protocol::ICMP => {
            // Type 8 (echo request), code 0, then a checksum over the message.
            if payload.len() < 8 || payload[0] != 8 || payload[1] != 0 {
                counters.ignored += 1;
                return None;
            }
            if checksum::checksum(payload) != 0 {
                counters.bad += 1;
                return None;
            }
            let ip_len = ipv4::MIN_HEADER_LEN.checked_add(payload.len())?;
            let total = ETH + ip_len;
            let reply = out.get_mut(..total.max(MIN_FRAME))?;
            reply.fill(0);
            write_eth(reply, src_mac, net.mac, EtherType::IPV4);
            let icmp = reply.get_mut(ETH + ipv4::MIN_HEADER_LEN..total)?;
            icmp.copy_from_slice(payload);
            icmp[0] = 0;
            icmp[2..4].fill(0);
            let sum = checksum::checksum(icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            write_ipv4(
                reply.get_mut(ETH..total)?,
                net.ip,
                peer,
                Protocol::ICMP,
                packet.ident(),
            )?;
            counters.icmp_replies += 1;
            Some((total.max(MIN_FRAME), TxOffload::default()))
        }
        Protocol::UDP => udp_in(
            payload,
            (src_mac, peer),
            flags,
            net,
            out,
            counters,
            partial,
            packet.ident(),
        ),
        _ => {
            counters.ignored += 1;
            None
        }
    }
}

#[allow(clippy::too_many_arguments, reason = "the datagram's context, named")]
fn udp_in(
    segment: &[u8],
    (src_mac, peer): (MacAddress, Ipv4Address),
    flags: RxFlags,
    net: &NetConfig,
    out: &mut [u8],
    counters: &mut Counters,
    partial: bool,
    ident: u16,
) -> Option<(usize, TxOffload)> {
    let Ok(packet) = udp::Packet::new_checked(segment) else {
        counters.bad += 1;
        return None;
    };
    let len = usize::from(packet.len());
    let Some(datagram) = segment.get(..len).filter(|_| len >= udp::HEADER_LEN) else {
        counters.bad += 1;
        return None;
    };
    if flags.checksum_blank {
        counters.rx_csum_blank += 1;
    } else if flags.data_validated {
        counters.rx_validated += 1;
    } else {
        let pseudo = pseudo_header(
            &IpAddress::V4(peer),
            &IpAddress::V4(net.ip),
            Protocol::UDP,
            u32::try_from(len).ok()?,
        );
        if !udp::Packet::new_unchecked(datagram).verify_checksum(pseudo) {
            counters.bad += 1;
            return None;
        }
        counters.rx_csum_verified += 1;
    }
    let data = datagram.get(udp::HEADER_LEN..)?;
    match packet.dst_port() {
        ECHO_PORT => {
            if !datagram_ok(data) {
                counters.echo_pattern_bad += 1;
            }
            let sum = if partial && counters.udp_echoed % 2 == 0 {
                UdpChecksum::Partial
            } else {
                UdpChecksum::Full
            };
            let n = build_udp(
                out,
                net,
                src_mac,
                peer,
                (ECHO_PORT, packet.src_port()),
                data,
                ident,
                sum,
            )?;
            counters.udp_echoed += 1;
            counters.udp_echoed_bytes += u64::try_from(data.len()).unwrap_or(0);
            Some((n, offload_of(sum, counters)))
        }
        SOURCE_PORT if peer == net.peer_ip => {
            // `ack <count>` from dom0's sink.
            let count = core::str::from_utf8(data)
                .ok()
                .and_then(|t| t.strip_prefix("ack "))
                .and_then(|n| n.trim().parse::<u32>().ok());
            match count {
                Some(n) => {
                    counters.sink_acks += 1;
                    counters.sink_acked = counters.sink_acked.max(n);
                }
                None => counters.bad += 1,
            }
            None
        }
        _ => {
            counters.ignored += 1;
            None
        }
    }
}

fn offload_of(sum: UdpChecksum, counters: &mut Counters) -> TxOffload {
    match sum {
        UdpChecksum::Partial => {
            counters.tx_csum_offloaded += 1;
            TxOffload {
                checksum_blank: true,
                data_validated: true,
                gso: None,
            }
        }
        UdpChecksum::Full => {
            counters.tx_csum_full += 1;
            TxOffload::default()
        }
    }
}

/// The platform tables lent to the device for one call.
#[derive(Debug)]
pub struct Env<'a, 'b, S> {
    /// xenstore.
    pub store: &'a S,
    /// The platform's event channel table.
    pub evtchn: &'a RefCell<&'b mut EventChannels<X86, &'static PagePool>>,
    /// The platform's grant table.
    pub gnttab: &'a RefCell<&'b mut GrantTable<X86>>,
    /// Ring and data pages.
    pub pool: &'static PagePool,
}

type Events<'a, 'b> =
    GuestEventChannels<'a, X86, &'static PagePool, &'b mut EventChannels<X86, &'static PagePool>>;
type Grants<'a, 'b> = GuestGrantTable<'a, X86, &'b mut GrantTable<X86>>;

/// How long one handshake step may take.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// One received frame in the batch.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    len: usize,
    flags: RxFlags,
}

/// The connected device.
#[derive(Debug)]
pub struct Device {
    dev: Netfront<Pages, GuestChannel>,
    rx_pages: Option<Pages>,
    tx_pages: Option<Pages>,
    /// rx pages not posted.
    rx_spare: Vec<Pfn>,
    /// Indices of free tx pages.
    tx_free: Vec<u16>,
    batch: Vec<u8>,
    slots: Vec<Slot>,
    out: Vec<u8>,
    tx_stats: Statistics,
    ident: u16,
    /// Pending flags of the queue's ports (one or two).
    flags: Vec<(u32, PendingFlag<X86>)>,
    /// Grant references available before connecting.
    grants_before: usize,
    /// Addresses.
    pub net: NetConfig,
    /// Counters.
    pub counters: Counters,
}

fn pfn_index(pages: Option<&Pages>, pfn: Pfn, count: usize) -> Option<usize> {
    let base = pages?.pfn(0)?.0;
    let index = usize::try_from(pfn.0.checked_sub(base)?).ok()?;
    (index < count).then_some(index)
}

impl Device {
    /// Connects `frontend` (e.g. `device/vif/0`) with one queue and no
    /// control ring, and posts [`RX_PAGES`] receive pages.
    pub fn connect<S: Store>(env: &Env<'_, '_, S>, frontend: &str) -> Result<Self, String> {
        let events: Events<'_, '_> = GuestEventChannels::new(env.evtchn);
        let grants: Grants<'_, '_> = GuestGrantTable::new(env.gnttab);
        let rings = MemoryRings(&env.pool);
        let platform = Platform {
            store: env.store,
            evtchn: &events,
            grants: &grants,
            rings: &rings,
        };
        let settings = Settings {
            frontend_max_queues: 1,
            frontend_disable_toeplitz: true,
            transmitter_disable_multicast_control: true,
            ..Settings::default()
        };
        let grants_before = bus::GrantTable::available(&grants);
        let dev = Netfront::connect(platform, frontend, settings, HANDSHAKE)
            .map_err(|e| format!("connect: {e}"))?;
        let mut this = Self {
            dev,
            rx_pages: None,
            tx_pages: None,
            rx_spare: Vec::with_capacity(RX_PAGES),
            tx_free: Vec::with_capacity(TX_PAGES),
            batch: vec![0; BATCH * FRAME_MAX],
            slots: Vec::with_capacity(BATCH),
            out: vec![0; FRAME_MAX],
            tx_stats: Statistics::default(),
            ident: 1,
            flags: Vec::new(),
            grants_before,
            net: NetConfig::default(),
            counters: Counters::default(),
        };
        this.net.mac = this.dev.mac();
        let setup = this.setup(env);
        if let Err(e) = setup {
            let _ = this.close(env);
            return Err(e);
        }
        Ok(this)
    }

    fn setup<S: Store>(&mut self, env: &Env<'_, '_, S>) -> Result<(), String> {
        let rx = (&env.pool)
            .alloc(RX_PAGES)
            .map_err(|_| "no pages for rx buffers")?;
        self.rx_spare.extend_from_slice(rx.pfns());
        self.rx_pages = Some(rx);
        let tx = (&env.pool)
            .alloc(TX_PAGES)
            .map_err(|_| "no pages for tx buffers")?;
        self.tx_free
            .extend((0..TX_PAGES).rev().filter_map(|i| u16::try_from(i).ok()));
        self.tx_pages = Some(tx);
        let queue = self.dev.queues.first().ok_or("no queue")?;
        let events: Events<'_, '_> = GuestEventChannels::new(env.evtchn);
        let ports = match &queue.channels {
            QueueChannels::Shared(c) => vec![bus::EventChannels::port(&events, c).0],
            QueueChannels::Split { tx, rx } => vec![
                bus::EventChannels::port(&events, tx).0,
                bus::EventChannels::port(&events, rx).0,
            ],
        };
        for port in ports {
            let flag = env
                .evtchn
                .borrow()
                .pending_flag(port)
                .map_err(|e| format!("pending flag of port {port}: {e:?}"))?;
            self.flags.push((port, flag));
        }
        self.refill(env);
        Ok(())
    }

    /// Grant references that were available before connecting (all of them
    /// must be again after [`Device::close`]).
    pub fn grants_before(&self) -> usize {
        self.grants_before
    }

    /// The queue's event channel ports, for `SCHEDOP_poll`.
    pub fn ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.flags.iter().map(|(p, _)| *p)
    }

    /// A one-line summary of what was negotiated.
    pub fn describe(&self) -> String {
        let f = self.dev.features();
        let caps = self
            .dev
            .queues
            .first()
            .map(|q| q.tx.capabilities())
            .map_or_else(String::new, |c| {
                format!(
                    "max_slots {} csum_ipv4 {} csum_ipv6 {} gso_tcpv4 {}",
                    c.max_slots, c.csum_ipv4, c.csum_ipv6, c.gso_tcpv4
                )
            });
        let split = self
            .dev
            .queues
            .first()
            .is_some_and(|q| matches!(q.channels, QueueChannels::Split { .. }));
        format!(
            "backend {} (dom{}), mac {}, mtu {}; backend offers sg {} rx-copy {} gso-tcpv4 {} gso-tcpv6 {} no-csum-offload {} ipv6-csum {} split-evtchn {} ctrl-ring {} max-queues {}; using 1 queue, {} event channel(s) {:?}, {caps}; {RX_PAGES} rx pages posted",
            self.dev.backend_path(),
            self.dev.backend_id().0,
            mac_text(self.dev.mac()),
            self.dev.mtu(),
            u8::from(f.sg),
            u8::from(f.rx_copy),
            u8::from(f.gso_tcpv4),
            u8::from(f.gso_tcpv6),
            u8::from(f.no_csum_offload),
            u8::from(f.ipv6_csum_offload),
            u8::from(f.split_event_channels),
            u8::from(f.ctrl_ring),
            f.max_queues,
            if split { 2 } else { 1 },
            self.ports().collect::<Vec<_>>(),
        )
    }

    /// Whether transmit may leave UDP checksums to the backend.
    pub fn checksum_offload(&self) -> bool {
        self.dev
            .queues
            .first()
            .is_some_and(|q| q.tx.capabilities().csum_ipv4)
    }

    /// Frames sent and not yet answered by netback.
    pub fn tx_in_flight(&self) -> usize {
        TX_PAGES.saturating_sub(self.tx_free.len())
    }

    /// The core's receive statistics (packets, bytes, errors).
    pub fn rx_stats(&self) -> Statistics {
        self.dev.stats
    }

    /// Posts every spare rx page the ring takes.
    fn refill<S: Store>(&mut self, env: &Env<'_, '_, S>) {
        let events: Events<'_, '_> = GuestEventChannels::new(env.evtchn);
        let grants: Grants<'_, '_> = GuestGrantTable::new(env.gnttab);
        let Some(queue) = self.dev.queues.first_mut() else {
            return;
        };
        let mut posted = false;
        while queue.rx.free_slots() > 0 {
            let Some(pfn) = self.rx_spare.pop() else {
                break;
            };
            if queue.rx.post(&grants, pfn).is_err() {
                self.rx_spare.push(pfn);
                break;
            }
            posted = true;
        }
        if posted && queue.rx.push() {
            bus::EventChannels::notify(&events, queue.channels.rx());
        }
    }

    /// Runs the data path until it has nothing left to do: completes
    /// transmits, takes received frames, answers them, posts pages again.
    /// Returns the responses consumed. A broken queue is an error.
    pub fn pump<S: Store>(&mut self, env: &Env<'_, '_, S>) -> Result<usize, String> {
        // Clear our pending bits first: an event from now on wakes the next
        // SCHEDOP_poll.
        for (_, flag) in &self.flags {
            flag.take();
        }
        let mut total = 0;
        loop {
            let got = self.pump_once(env)?;
            total += got;
            let Some(queue) = self.dev.queues.first_mut() else {
                return Err("no queue".into());
            };
            // Without a free tx page received frames wait in the ring (their
            // replies could not be sent): the next tx completion wakes us.
            let rx_blocked = self.tx_free.is_empty();
            if got == 0 && (rx_blocked || !queue.rx.more_to_do()) && !queue.tx.more_to_do() {
                return Ok(total);
            }
        }
    }

    fn pump_once<S: Store>(&mut self, env: &Env<'_, '_, S>) -> Result<usize, String> {
        let grants: Grants<'_, '_> = GuestGrantTable::new(env.gnttab);
        let mut got = self.complete_tx(&grants);
        let Some(queue) = self.dev.queues.first_mut() else {
            return Err("no queue".into());
        };
        self.slots.clear();
        // Every frame may need a reply: take no more than can be sent.
        let budget = BATCH.min(self.tx_free.len());
        let rx_pages = self.rx_pages.as_ref();
        let batch = &mut self.batch;
        let slots = &mut self.slots;
        let spare = &mut self.rx_spare;
        let counters = &mut self.counters;
        got += queue.rx.poll(
            &grants,
            budget,
            &mut self.dev.stats,
            &mut |event| match event {
                RxEvent::Recycle(pfn) => spare.push(pfn),
                RxEvent::Packet(p) => {
                    let at = slots.len() * FRAME_MAX;
                    let mut len = 0usize;
                    let mut fits = p.len <= FRAME_MAX && slots.len() < BATCH;
                    for f in p.fragments {
                        let (offset, flen) = (usize::from(f.offset), usize::from(f.len));
                        match (pfn_index(rx_pages, f.pfn, RX_PAGES), rx_pages) {
                            (Some(index), Some(pages)) if fits && offset + flen <= PAGE_SIZE => {
                                // SAFETY: the page is one of ours (index
                                // checked), its grant ended (the core hands
                                // it back revoked) and `offset + flen` lies
                                // inside it; nothing else writes it now.
                                let src = unsafe {
                                    core::slice::from_raw_parts(
                                        pages
                                            .as_ptr()
                                            .as_ptr()
                                            .wrapping_add(index * PAGE_SIZE + offset),
                                        flen,
                                    )
                                };
                                if let Some(dst) = batch.get_mut(at + len..at + len + flen) {
                                    dst.copy_from_slice(src);
                                    len += flen;
                                } else {
                                    fits = false;
                                }
                            }
                            _ => fits = false,
                        }
                        spare.push(f.pfn);
                    }
                    if fits && len == p.len {
                        slots.push(Slot {
                            len,
                            flags: RxFlags {
                                checksum_blank: p.checksum_blank,
                                data_validated: p.data_validated,
                            },
                        });
                    } else {
                        counters.rx_oversize += 1;
                    }
                }
            },
        );
        if let Some(v) = queue.rx.broken().or(queue.tx.broken()) {
            return Err(format!("queue broken: {v}"));
        }
        let partial = self.checksum_offload();
        let mut pushed = false;
        for i in 0..self.slots.len() {
            let slot = self.slots[i];
            let at = i * FRAME_MAX;
            let frame = &self.batch[at..at + slot.len];
            self.counters.rx_frames += 1;
            self.counters.rx_bytes += u64::try_from(slot.len).unwrap_or(0);
            if let Some((len, offload)) = respond(
                frame,
                slot.flags,
                &mut self.net,
                &mut self.out,
                &mut self.counters,
                partial,
            ) {
                let out = core::mem::take(&mut self.out);
                let sent = self.transmit(&grants, out.get(..len).unwrap_or(&[]), offload);
                self.out = out;
                if sent {
                    pushed = true;
                } else {
                    self.counters.tx_busy += 1;
                }
            }
        }
        if pushed {
            self.push_tx(env);
        }
        self.refill(env);
        Ok(got)
    }

    fn complete_tx(&mut self, grants: &Grants<'_, '_>) -> usize {
        let Some(queue) = self.dev.queues.first_mut() else {
            return 0;
        };
        let free = &mut self.tx_free;
        let counters = &mut self.counters;
        queue.tx.poll(grants, 256, &mut self.tx_stats, &mut |c| {
            if c.status != TxStatus::Okay {
                counters.tx_errors += 1;
            }
            if let Ok(index) = u16::try_from(c.tag) {
                free.push(index);
            }
        })
    }

    /// Copies `frame` into a free tx page and queues it; `false` when no page
    /// or slot is free (nothing was queued).
    fn transmit(&mut self, grants: &Grants<'_, '_>, frame: &[u8], offload: TxOffload) -> bool {
        let (Some(pages), Some(queue)) = (self.tx_pages.as_ref(), self.dev.queues.first_mut())
        else {
            return false;
        };
        let Some(index) = self.tx_free.pop() else {
            return false;
        };
        let (Some(pfn), Ok(len)) = (pages.pfn(usize::from(index)), u16::try_from(frame.len()))
        else {
            self.tx_free.push(index);
            return false;
        };
        if frame.len() > PAGE_SIZE {
            self.tx_free.push(index);
            return false;
        }
        // SAFETY: page `index` of our tx run is free (not granted: its last
        // transmit completed and its grant was revoked), and the frame fits.
        let dst = unsafe {
            core::slice::from_raw_parts_mut(
                pages
                    .as_ptr()
                    .as_ptr()
                    .wrapping_add(usize::from(index) * PAGE_SIZE),
                frame.len(),
            )
        };
        dst.copy_from_slice(frame);
        let buffers = [TxBuffer {
            pfn,
            offset: 0,
            len,
        }];
        let packet = TxPacket {
            buffers: &buffers,
            offload,
            tag: u64::from(index),
        };
        if queue
            .tx
            .submit(grants, &packet, &mut self.tx_stats)
            .is_err()
        {
            self.tx_free.push(index);
            return false;
        }
        self.counters.tx_frames += 1;
        self.counters.tx_bytes += u64::from(len);
        true
    }

    fn push_tx<S: Store>(&mut self, env: &Env<'_, '_, S>) {
        let events: Events<'_, '_> = GuestEventChannels::new(env.evtchn);
        if let Some(queue) = self.dev.queues.first_mut() {
            if queue.tx.push() {
                bus::EventChannels::notify(&events, queue.channels.tx());
            }
        }
    }

    /// Sends datagram `seq` ([`fill_datagram`], [`datagram_len`] bytes) from
    /// [`SOURCE_PORT`] to dom0's `port`, alternating full and partial
    /// checksums when the backend offers the offload. `false` when no page or
    /// slot is free now (pump and retry).
    pub fn send_datagram<S: Store>(&mut self, env: &Env<'_, '_, S>, seq: u32, port: u16) -> bool {
        let grants: Grants<'_, '_> = GuestGrantTable::new(env.gnttab);
        if self.tx_free.is_empty() {
            self.complete_tx(&grants);
        }
        let len = datagram_len(seq);
        let mut payload = [0u8; MAX_PAYLOAD];
        let Some(payload) = payload.get_mut(..len) else {
            return false;
        };
        fill_datagram(seq, payload);
        let sum = if self.checksum_offload() && seq % 2 == 0 {
            UdpChecksum::Partial
        } else {
            UdpChecksum::Full
        };
        self.ident = self.ident.wrapping_add(1);
        let mut out = core::mem::take(&mut self.out);
        let n = build_udp(
            &mut out,
            &self.net,
            self.net.peer_mac,
            self.net.peer_ip,
            (SOURCE_PORT, port),
            payload,
            self.ident,
            sum,
        );
        let sent = match n {
            Some(n) => {
                let mut scratch = Counters::default();
                let offload = offload_of(sum, &mut scratch);
                let sent = self.transmit(&grants, out.get(..n).unwrap_or(&[]), offload);
                if sent {
                    self.counters.tx_csum_offloaded += scratch.tx_csum_offloaded;
                    self.counters.tx_csum_full += scratch.tx_csum_full;
                }
                sent
            }
            None => false,
        };
        self.out = out;
        if sent {
            self.push_tx(env);
        }
        sent
    }

    /// Closes the device (`Closing`, the backend's `Closed`, every grant
    /// ended, `Closed`) and frees its pages; pages the backend still maps
    /// are kept, never reused. Returns the backend's final state.
    pub fn close<S: Store>(&mut self, env: &Env<'_, '_, S>) -> Result<XenbusState, String> {
        let events: Events<'_, '_> = GuestEventChannels::new(env.evtchn);
        let grants: Grants<'_, '_> = GuestGrantTable::new(env.gnttab);
        let rings = MemoryRings(&env.pool);
        let platform = Platform {
            store: env.store,
            evtchn: &events,
            grants: &grants,
            rings: &rings,
        };
        let mut failed_tx = 0u32;
        let mut returned = Vec::with_capacity(RX_PAGES);
        let free = &mut self.tx_free;
        let closed = self.dev.close(
            platform,
            HANDSHAKE,
            &mut |c| {
                failed_tx += 1;
                if let Ok(index) = u16::try_from(c.tag) {
                    free.push(index);
                }
            },
            &mut |pfn| returned.push(pfn),
        );
        self.rx_spare.extend(returned);
        closed.map_err(|e| format!("close: {e}"))?;
        // netback left `Connected` (and unmapped everything) before its
        // `Closing`; after our `Closed` it says `Closed`.
        let state = wait_state(
            env.store,
            self.dev.backend_path(),
            XenbusState::Closed,
            HANDSHAKE,
            |s| matches!(s, XenbusState::Closed | XenbusState::Unknown),
        )
        .map_err(|e| format!("backend state: {e}"))?;
        let rx_back = self.rx_spare.len();
        let tx_back = self.tx_free.len();
        let quarantined = self.dev.quarantined_rings();
        if rx_back == RX_PAGES {
            if let Some(pages) = self.rx_pages.take() {
                (&env.pool).free(pages);
            }
            self.rx_spare.clear();
        }
        if tx_back == TX_PAGES {
            if let Some(pages) = self.tx_pages.take() {
                (&env.pool).free(pages);
            }
        }
        if rx_back != RX_PAGES || tx_back != TX_PAGES || quarantined != 0 {
            return Err(format!(
                "pages still held by the backend: rx {rx_back}/{RX_PAGES} back, tx {tx_back}/{TX_PAGES} back, {quarantined} ring page(s) quarantined"
            ));
        }
        let _ = failed_tx;
        Ok(state)
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: MacAddress) -> String {
    let m = mac.0;
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Parses `a.b.c.d`.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Address> {
    let mut out = [0u8; 4];
    let mut parts = text.trim().split('.');
    for b in &mut out {
        *b = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Address(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenvif_core::wire::headers::verify_checksums;

    fn net() -> NetConfig {
        NetConfig {
            mac: MacAddress([0, 0x16, 0x3e, 0, 0, 0x20]),
            ip: Ipv4Address([10, 99, 0, 20]),
            peer_mac: MacAddress([2, 0, 0, 0, 0, 1]),
            peer_ip: Ipv4Address([10, 99, 0, 1]),
        }
    }

    fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].fill(0xff);
        f[6..12].copy_from_slice(&sha);
        f[12..14].copy_from_slice(&[8, 6]);
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&sha);
        f[28..32].copy_from_slice(&spa);
        f[38..42].copy_from_slice(&tpa);
        f
    }

    #[test]
    fn answers_arp_for_our_address_only_and_learns_the_peer() {
        let mut n = net();
        n.peer_mac = MacAddress::default();
        let mut c = Counters::default();
        let mut out = vec![0u8; FRAME_MAX];
        let sha = [2, 0, 0, 0, 0, 9];
        let req = arp_request(sha, [10, 99, 0, 1], [10, 99, 0, 20]);
        let (len, offload) =
            respond(&req, RxFlags::default(), &mut n, &mut out, &mut c, true).unwrap();
        assert_eq!(len, 60);
        assert_eq!(offload, TxOffload::default());
        assert_eq!(&out[0..6], &sha);
        assert_eq!(&out[6..12], &n.mac.0);
        assert_eq!(&out[20..22], &[0, 2]);
        assert_eq!(&out[28..32], &[10, 99, 0, 20]);
        assert_eq!(&out[32..38], &sha);
        assert_eq!(&out[38..42], &[10, 99, 0, 1]);
        assert_eq!(n.peer_mac, MacAddress(sha));
        assert_eq!(c.arp_replies, 1);
        let other = arp_request(sha, [10, 99, 0, 1], [10, 99, 0, 21]);
        assert!(respond(&other, RxFlags::default(), &mut n, &mut out, &mut c, true).is_none());
        assert!(
            respond(
                &req[..30],
                RxFlags::default(),
                &mut n,
                &mut out,
                &mut c,
                true
            )
            .is_none()
        );
        assert_eq!(c.arp_replies, 1);
    }

    fn ipv4_frame(n: &NetConfig, protocol: Protocol, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ETH + 20 + payload.len()];
        write_eth(&mut f, n.mac, n.peer_mac, EtherType::IPV4);
        f[ETH + 20..].copy_from_slice(payload);
        write_ipv4(&mut f[ETH..], n.peer_ip, n.ip, protocol, 77).unwrap();
        f
    }

    #[test]
    fn answers_icmp_echo_with_the_same_data() {
        let mut n = net();
        let mut c = Counters::default();
        let mut icmp = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 5];
        icmp.extend((0..1472 - 8).map(|i| u8::try_from(i % 251).unwrap()));
        let sum = checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let req = ipv4_frame(&n, Protocol::ICMP, &icmp);
        let mut out = vec![0u8; FRAME_MAX];
        let (len, _) = respond(&req, RxFlags::default(), &mut n, &mut out, &mut c, true).unwrap();
        assert_eq!(len, req.len());
        let reply = &out[..len];
        assert_eq!(&reply[0..6], &n.peer_mac.0);
        let ip = ipv4::Packet::new_checked(&reply[ETH..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst(), n.peer_ip);
        let body = ip.payload();
        assert_eq!(body[0], 0);
        assert_eq!(checksum::checksum(body), 0);
        assert_eq!(&body[4..], &icmp[4..]);
        // A corrupted request is not answered.
        let mut bad = req.clone();
        bad[ETH + 20 + 100] ^= 1;
        assert!(respond(&bad, RxFlags::default(), &mut n, &mut out, &mut c, true).is_none());
        assert_eq!((c.icmp_replies, c.bad), (1, 1));
    }

    fn udp_frame(n: &NetConfig, dst_port: u16, data: &[u8], sum: UdpChecksum) -> Vec<u8> {
        // A frame from dom0 to us: swap the roles.
        let from = NetConfig {
            mac: n.peer_mac,
            ip: n.peer_ip,
            peer_mac: n.mac,
            peer_ip: n.ip,
        };
        let mut out = vec![0u8; FRAME_MAX];
        let len = build_udp(&mut out, &from, n.mac, n.ip, (5555, dst_port), data, 9, sum).unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn echoes_udp_alternating_checksum_modes() {
        let mut n = net();
        let mut c = Counters::default();
        let mut out = vec![0u8; FRAME_MAX];
        for seq in 0..6 {
            let mut data = vec![0u8; datagram_len(seq)];
            fill_datagram(seq, &mut data);
            let req = udp_frame(&n, ECHO_PORT, &data, UdpChecksum::Full);
            assert_eq!(verify_checksums(&req).unwrap(), (Some(true), Some(true)));
            let (len, offload) =
                respond(&req, RxFlags::default(), &mut n, &mut out, &mut c, true).unwrap();
            let reply = &out[..len];
            let ip = ipv4::Packet::new_checked(&reply[ETH..]).unwrap();
            let seg = udp::Packet::new_checked(ip.payload()).unwrap();
            assert_eq!((seg.src_port(), seg.dst_port()), (ECHO_PORT, 5555));
            assert_eq!(&ip.payload()[8..], &data[..]);
            if offload.checksum_blank {
                // Complete it as the backend would, then it verifies.
                let mut done = reply.to_vec();
                xenvif_core::wire::headers::fill_checksums(
                    &mut done,
                    xenvif_core::wire::headers::ChecksumRequest {
                        ipv4_header: false,
                        transport: true,
                    },
                )
                .unwrap();
                assert_eq!(verify_checksums(&done).unwrap(), (Some(true), Some(true)));
                // The partial field is the pseudo-header sum.
                let pseudo = pseudo_header(
                    &IpAddress::V4(n.ip),
                    &IpAddress::V4(n.peer_ip),
                    Protocol::UDP,
                    u32::from(seg.len()),
                );
                assert_eq!(seg.checksum(), pseudo.folded());
            } else {
                assert_eq!(verify_checksums(reply).unwrap(), (Some(true), Some(true)));
            }
        }
        assert_eq!(c.udp_echoed, 6);
        assert_eq!((c.tx_csum_offloaded, c.tx_csum_full), (3, 3));
        // Without the offload every reply is complete.
        let req = udp_frame(&n, ECHO_PORT, b"hello!", UdpChecksum::Full);
        let (_, offload) =
            respond(&req, RxFlags::default(), &mut n, &mut out, &mut c, false).unwrap();
        assert!(!offload.checksum_blank);
        // A bad checksum is dropped unless the backend vouches for the data.
        let mut bad = req.clone();
        bad[ETH + 20 + 8] ^= 0x40;
        assert!(respond(&bad, RxFlags::default(), &mut n, &mut out, &mut c, true).is_none());
        let blank = RxFlags {
            checksum_blank: true,
            data_validated: true,
        };
        assert!(respond(&bad, blank, &mut n, &mut out, &mut c, true).is_some());
        assert_eq!(c.rx_csum_blank, 1);
    }

    #[test]
    fn records_sink_acks_from_the_peer_only() {
        let mut n = net();
        let mut c = Counters::default();
        let mut out = vec![0u8; FRAME_MAX];
        let ack = udp_frame(&n, SOURCE_PORT, b"ack 64", UdpChecksum::Full);
        assert!(respond(&ack, RxFlags::default(), &mut n, &mut out, &mut c, true).is_none());
        let older = udp_frame(&n, SOURCE_PORT, b"ack 32", UdpChecksum::Full);
        assert!(respond(&older, RxFlags::default(), &mut n, &mut out, &mut c, true).is_none());
        assert_eq!((c.sink_acked, c.sink_acks), (64, 2));
        let junk = udp_frame(&n, SOURCE_PORT, b"nope", UdpChecksum::Full);
        respond(&junk, RxFlags::default(), &mut n, &mut out, &mut c, true);
        assert_eq!(c.bad, 1);
    }

    #[test]
    fn ignores_other_traffic_and_survives_garbage() {
        let mut n = net();
        let mut c = Counters::default();
        let mut out = vec![0u8; FRAME_MAX];
        let mut other = udp_frame(&n, ECHO_PORT, b"x", UdpChecksum::Full);
        other[0..6].copy_from_slice(&[0, 0x16, 0x3e, 1, 2, 3]);
        assert!(respond(&other, RxFlags::default(), &mut n, &mut out, &mut c, true).is_none());
        assert_eq!(c.ignored, 1);
        let mut seed = 0x1234_5678u32;
        for len in 0..300 {
            let mut f = udp_frame(&n, ECHO_PORT, &[7; 40], UdpChecksum::Full);
            for b in f.iter_mut().skip(12) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if seed >> 28 == 0 {
                    *b = seed.to_le_bytes()[2];
                }
            }
            f.truncate(len % f.len());
            let _ = respond(&f, RxFlags::default(), &mut n, &mut out, &mut c, true);
        }
    }

    #[test]
    fn datagrams_cover_the_size_range() {
        let sizes: Vec<usize> = (0..3000).map(datagram_len).collect();
        assert!(
            sizes
                .iter()
                .all(|&s| (MIN_PAYLOAD..=MAX_PAYLOAD).contains(&s))
        );
        assert!(sizes.contains(&MIN_PAYLOAD) && sizes.contains(&MAX_PAYLOAD));
        let mut d = vec![0u8; datagram_len(77)];
        fill_datagram(77, &mut d);
        assert_eq!(&d[0..4], &77u32.to_be_bytes());
        assert_eq!(usize::from(u16::from_be_bytes([d[4], d[5]])), d.len());
        assert_eq!(d[10], payload_byte(77, 10));
        assert!(datagram_ok(&d));
        d[9] ^= 1;
        assert!(!datagram_ok(&d));
        assert!(!datagram_ok(&d[..3]));
        assert_eq!(parse_ipv4("10.99.0.20"), Some(Ipv4Address([10, 99, 0, 20])));
        assert_eq!(parse_ipv4("10.99.0"), None);
        assert_eq!(mac_text(net().mac), "00:16:3e:00:00:20");
    }
}
