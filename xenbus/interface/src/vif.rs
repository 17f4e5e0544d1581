//! XENVIF VIF: the network interface XENVIF serves to XENNET (win-xenvif's
//! `vif_interface.h`), versions 8 to 10, with the packet structures the
//! methods and callbacks exchange.

use crate::table::interface_table;
use crate::types::{Boolean, Guid, ListEntry, Mdl, NtStatus, Pinterface, ProcessorNumber, Pvoid};
use core::fmt;

/// `GUID_XENVIF_VIF_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x76f2_79cd,
    0xca11,
    0x418b,
    [0x92, 0xe8, 0xc5, 0x7f, 0x77, 0xde, 0x0e, 0x2e],
);
/// `XENVIF_VIF_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 8;
/// `XENVIF_VIF_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 10;
/// `XENVIF_VIF_HASH_KEY_SIZE`: bytes in a Toeplitz key.
pub const HASH_KEY_SIZE: usize = 40;

/// `XENVIF_PACKET_HASH_ALGORITHM_NONE`.
pub const HASH_ALGORITHM_NONE: u32 = 0;
/// `XENVIF_PACKET_HASH_ALGORITHM_UNSPECIFIED`.
pub const HASH_ALGORITHM_UNSPECIFIED: u32 = 1;
/// `XENVIF_PACKET_HASH_ALGORITHM_TOEPLITZ`.
pub const HASH_ALGORITHM_TOEPLITZ: u32 = 2;

/// `XENVIF_PACKET_HASH_TYPE_NONE`.
pub const HASH_TYPE_NONE: u32 = 0;
/// `XENVIF_PACKET_HASH_TYPE_IPV4`.
pub const HASH_TYPE_IPV4: u32 = 1;
/// `XENVIF_PACKET_HASH_TYPE_IPV4_TCP`.
pub const HASH_TYPE_IPV4_TCP: u32 = 2;
/// `XENVIF_PACKET_HASH_TYPE_IPV6`.
pub const HASH_TYPE_IPV6: u32 = 3;
/// `XENVIF_PACKET_HASH_TYPE_IPV6_TCP`.
pub const HASH_TYPE_IPV6_TCP: u32 = 4;

/// `XENVIF_TRANSMITTER_PACKET_OK`.
pub const TRANSMITTER_PACKET_OK: u8 = 2;
/// `XENVIF_TRANSMITTER_PACKET_DROPPED`.
pub const TRANSMITTER_PACKET_DROPPED: u8 = 3;
/// `XENVIF_TRANSMITTER_PACKET_ERROR`.
pub const TRANSMITTER_PACKET_ERROR: u8 = 4;

/// `XENVIF_VIF_STATISTIC_COUNT`: statistics `QueryStatistic` knows, indexed
/// `XENVIF_TRANSMITTER_PACKETS_DROPPED` (0) to `XENVIF_RECEIVER_UDP_CHECKSUM_NOT_VALIDATED` (49).
pub const STATISTIC_COUNT: u32 = 50;

/// `XENVIF_MAC_FILTER_NONE`.
pub const MAC_FILTER_NONE: u32 = 0;
/// `XENVIF_MAC_FILTER_MATCHING`.
pub const MAC_FILTER_MATCHING: u32 = 1;
/// `XENVIF_MAC_FILTER_ALL`.
pub const MAC_FILTER_ALL: u32 = 2;

/// `ETHERNET_ADDRESS_UNICAST`.
pub const ETHERNET_ADDRESS_UNICAST: u32 = 1;
/// `ETHERNET_ADDRESS_MULTICAST`.
pub const ETHERNET_ADDRESS_MULTICAST: u32 = 2;
/// `ETHERNET_ADDRESS_BROADCAST`.
pub const ETHERNET_ADDRESS_BROADCAST: u32 = 3;

/// `XENVIF_TRANSMITTER_RETURN_PACKET`: callback type.
pub const CALLBACK_TRANSMITTER_RETURN_PACKET: u32 = 0;
/// `XENVIF_RECEIVER_QUEUE_PACKET`: callback type.
pub const CALLBACK_RECEIVER_QUEUE_PACKET: u32 = 1;
/// `XENVIF_MAC_STATE_CHANGE`: callback type.
pub const CALLBACK_MAC_STATE_CHANGE: u32 = 2;

/// `ETHERNET_ADDRESS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthernetAddress {
    /// `Byte`.
    pub bytes: [u8; 6],
}

/// `XENVIF_PACKET_HASH_V2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketHash {
    /// `Algorithm`: `HASH_ALGORITHM_*`.
    pub algorithm: u32,
    /// `Type`: `HASH_TYPE_*`.
    pub kind: u32,
    /// `Value`.
    pub value: u32,
}

/// `XENVIF_PACKET_HEADER_V1`: where a header is in a packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketHeader {
    /// `Offset`.
    pub offset: u32,
    /// `Length`.
    pub length: u32,
}

/// `XENVIF_PACKET_INFO_V2`: a parsed packet's headers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketInfo {
    /// `Length`.
    pub length: u32,
    /// `IsAFragment`.
    pub is_a_fragment: Boolean,
    /// `EthernetHeader`.
    pub ethernet_header: PacketHeader,
    /// `LLCSnapHeader`.
    pub llc_snap_header: PacketHeader,
    /// `IpHeader`.
    pub ip_header: PacketHeader,
    /// `IpOptions`.
    pub ip_options: PacketHeader,
    /// `TcpHeader`.
    pub tcp_header: PacketHeader,
    /// `TcpOptions`.
    pub tcp_options: PacketHeader,
    /// `UdpHeader`.
    pub udp_header: PacketHeader,
}

/// `XENVIF_PACKET_CHECKSUM_FLAGS_V1`: a `ULONG` of bits, lowest first:
/// IP succeeded/failed/not validated, TCP (same three), UDP (same three).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChecksumFlags(pub u32);

/// `XENVIF_VIF_OFFLOAD_OPTIONS_V1`: a `USHORT` of bits, lowest first: tag
/// manipulation, IPv4 LSO, IPv4 header checksum, IPv4 TCP checksum, IPv4 UDP
/// checksum, IPv6 LSO, IPv6 TCP checksum, IPv6 UDP checksum, need checksum
/// value, need large packet split. Passed by value.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffloadOptions(pub u16);

/// `XENVIF_TRANSMITTER_PACKET_SEND_INFO_V1` (packed).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TransmitterPacketSendInfo {
    /// `OffloadOptions`.
    pub offload_options: OffloadOptions,
    /// `MaximumSegmentSize`.
    pub maximum_segment_size: u16,
    /// `TagControlInformation`.
    pub tag_control_information: u16,
}

/// `XENVIF_TRANSMITTER_PACKET_COMPLETION_INFO_V1` (packed).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TransmitterPacketCompletionInfo {
    /// `Type`: an `ETHERNET_ADDRESS_*` value.
    pub kind: u8,
    /// `Status`: `TRANSMITTER_PACKET_*`.
    pub status: u8,
    /// `PacketLength`.
    pub packet_length: u16,
    /// `PayloadLength`.
    pub payload_length: u16,
}

/// `XENVIF_TRANSMITTER_PACKET_V2`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TransmitterPacketV2 {
    /// `ListEntry`.
    pub list_entry: ListEntry,
    /// `Cookie`.
    pub cookie: Pvoid,
    /// `Value`.
    pub value: u32,
    /// `Send`.
    pub send: TransmitterPacketSendInfo,
    /// `Completion`.
    pub completion: TransmitterPacketCompletionInfo,
    /// `Mdl`.
    pub mdl: *mut Mdl,
    /// `Offset`.
    pub offset: u32,
    /// `Length`.
    pub length: u32,
}

/// The `TransmitterReturnPacket` member of the callback parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TransmitterReturnPacketParameters {
    /// `Cookie`: what the child passed to `TransmitterQueuePacket`.
    pub cookie: Pvoid,
    /// `Completion`.
    pub completion: *mut TransmitterPacketCompletionInfo,
}

/// The `ReceiverQueuePacket` member of `XENVIF_VIF_CALLBACK_PARAMETERS_V9`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReceiverQueuePacketParametersV9 {
    /// `Index`: the receive queue.
    pub index: u32,
    /// `Mdl`.
    pub mdl: *mut Mdl,
    /// `Offset`.
    pub offset: u32,
    /// `Length`.
    pub length: u32,
    /// `Flags`.
    pub flags: ChecksumFlags,
    /// `MaximumSegmentSize`.
    pub maximum_segment_size: u16,
    /// `TagControlInformation`.
    pub tag_control_information: u16,
    /// `Info`.
    pub info: *mut PacketInfo,
    /// `Hash`.
    pub hash: *mut PacketHash,
    /// `More`: more packets follow in this batch.
    pub more: Boolean,
    /// `Cookie`: given back with `ReceiverReturnPacket`.
    pub cookie: Pvoid,
}

/// The `ReceiverQueuePacket` member of `XENVIF_VIF_CALLBACK_PARAMETERS_V10`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReceiverQueuePacketParametersV10 {
    /// `Index`: the receive queue.
    pub index: u32,
    /// `Mdl`.
    pub mdl: *mut Mdl,
    /// `Offset`.
    pub offset: u32,
    /// `Length`.
    pub length: u32,
    /// `Flags`.
    pub flags: ChecksumFlags,
    /// `MaximumSegmentSize`.
    pub maximum_segment_size: u16,
    /// `TagControlInformation`.
    pub tag_control_information: u16,
    /// `Info`.
    pub info: *mut PacketInfo,
    /// `Hash`.
    pub hash: *mut PacketHash,
    /// `More`: more packets follow in this batch.
    pub more: Boolean,
    /// `Cookie`: given back with `ReceiverReturnPacket`.
    pub cookie: Pvoid,
    /// `Pause`: set by the callee to stop the queue.
    pub pause: Boolean,
}

/// `union _XENVIF_VIF_CALLBACK_PARAMETERS_V9`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union CallbackParametersV9 {
    /// For `CALLBACK_TRANSMITTER_RETURN_PACKET`.
    pub transmitter_return_packet: TransmitterReturnPacketParameters,
    /// For `CALLBACK_RECEIVER_QUEUE_PACKET`.
    pub receiver_queue_packet: ReceiverQueuePacketParametersV9,
}

/// `union _XENVIF_VIF_CALLBACK_PARAMETERS_V10`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union CallbackParametersV10 {
    /// For `CALLBACK_TRANSMITTER_RETURN_PACKET`.
    pub transmitter_return_packet: TransmitterReturnPacketParameters,
    /// For `CALLBACK_RECEIVER_QUEUE_PACKET`.
    pub receiver_queue_packet: ReceiverQueuePacketParametersV10,
}

impl fmt::Debug for CallbackParametersV9 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackParametersV9 { .. }")
    }
}

impl fmt::Debug for CallbackParametersV10 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackParametersV10 { .. }")
    }
}

/// `XENVIF_VIF_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENVIF_VIF_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENVIF_VIF_CALLBACK_V8` (variadic: the type's parameters follow).
pub type CallbackV8Fn = Option<unsafe extern "C" fn(argument: Pvoid, kind: u32, ...)>;
/// `XENVIF_VIF_CALLBACK_V9`.
pub type CallbackV9Fn =
    Option<unsafe extern "C" fn(argument: Pvoid, kind: u32, parameters: *mut CallbackParametersV9)>;
/// `XENVIF_VIF_CALLBACK` (version 10).
pub type CallbackFn = Option<
    unsafe extern "C" fn(argument: Pvoid, kind: u32, parameters: *mut CallbackParametersV10),
>;
/// `XENVIF_VIF_ENABLE_V8`.
pub type EnableV8Fn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        callback: CallbackV8Fn,
        argument: Pvoid,
    ) -> NtStatus,
>;
/// `XENVIF_VIF_ENABLE_V9`.
pub type EnableV9Fn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        callback: CallbackV9Fn,
        argument: Pvoid,
    ) -> NtStatus,
>;
/// `XENVIF_VIF_ENABLE` (version 10).
pub type EnableFn = Option<
    unsafe extern "C" fn(interface: Pinterface, callback: CallbackFn, argument: Pvoid) -> NtStatus,
>;
/// `XENVIF_VIF_DISABLE`.
pub type DisableFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENVIF_VIF_QUERY_STATISTIC`.
pub type QueryStatisticFn =
    Option<unsafe extern "C" fn(interface: Pinterface, index: u32, value: *mut u64) -> NtStatus>;
/// `XENVIF_VIF_QUERY_RING_COUNT` (and the `..._QUERY_RING_SIZE`,
/// `MAC_QUERY_MAXIMUM_FRAME_SIZE` getters of the same shape).
pub type QueryU32Fn = Option<unsafe extern "C" fn(interface: Pinterface, value: *mut u32)>;
/// `XENVIF_VIF_UPDATE_HASH_MAPPING`.
pub type UpdateHashMappingFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        mapping: *mut ProcessorNumber,
        size: u32,
    ) -> NtStatus,
>;
/// `XENVIF_VIF_RECEIVER_RETURN_PACKET`.
pub type ReceiverReturnPacketFn =
    Option<unsafe extern "C" fn(interface: Pinterface, cookie: Pvoid)>;
/// `XENVIF_VIF_TRANSMITTER_QUEUE_PACKET`.
pub type TransmitterQueuePacketFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        mdl: *mut Mdl,
        offset: u32,
        length: u32,
        offload_options: OffloadOptions,
        maximum_segment_size: u16,
        tag_control_information: u16,
        hash: *mut PacketHash,
        more: Boolean,
        cookie: Pvoid,
    ) -> NtStatus,
>;
/// `XENVIF_VIF_TRANSMITTER_QUERY_OFFLOAD_OPTIONS`.
pub type TransmitterQueryOffloadOptionsFn =
    Option<unsafe extern "C" fn(interface: Pinterface, options: *mut OffloadOptions)>;
/// `XENVIF_VIF_RECEIVER_SET_OFFLOAD_OPTIONS`.
pub type ReceiverSetOffloadOptionsFn =
    Option<unsafe extern "C" fn(interface: Pinterface, options: OffloadOptions)>;
/// `XENVIF_VIF_RECEIVER_SET_BACKFILL_SIZE`.
pub type ReceiverSetBackfillSizeFn = Option<unsafe extern "C" fn(interface: Pinterface, size: u32)>;
/// `XENVIF_VIF_TRANSMITTER_QUERY_LARGE_PACKET_SIZE`: per IP version.
pub type TransmitterQueryLargePacketSizeFn =
    Option<unsafe extern "C" fn(interface: Pinterface, version: u8, size: *mut u32)>;
/// `XENVIF_VIF_RECEIVER_SET_HASH_ALGORITHM`.
pub type ReceiverSetHashAlgorithmFn =
    Option<unsafe extern "C" fn(interface: Pinterface, algorithm: u32) -> NtStatus>;
/// `XENVIF_VIF_RECEIVER_QUERY_HASH_CAPABILITIES` / `_UPDATE_HASH_PARAMETERS`
/// (variadic: algorithm-specific parameters follow).
pub type ReceiverHashVariadicFn =
    Option<unsafe extern "C" fn(interface: Pinterface, ...) -> NtStatus>;
/// `XENVIF_VIF_MAC_QUERY_STATE`: `NET_IF_MEDIA_CONNECT_STATE`, link speed,
/// `NET_IF_MEDIA_DUPLEX_STATE`; each output optional.
pub type MacQueryStateFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        media_connect_state: *mut u32,
        link_speed: *mut u64,
        media_duplex_state: *mut u32,
    ),
>;
/// `XENVIF_VIF_MAC_QUERY_PERMANENT_ADDRESS` / `_CURRENT_ADDRESS`.
pub type MacQueryAddressFn =
    Option<unsafe extern "C" fn(interface: Pinterface, address: *mut EthernetAddress)>;
/// `XENVIF_VIF_MAC_QUERY_MULTICAST_ADDRESSES`: `count` in: room, out: needed.
pub type MacQueryMulticastAddressesFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        address: *mut EthernetAddress,
        count: *mut u32,
    ) -> NtStatus,
>;
/// `XENVIF_VIF_MAC_SET_MULTICAST_ADDRESSES`.
pub type MacSetMulticastAddressesFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        address: *mut EthernetAddress,
        count: u32,
    ) -> NtStatus,
>;
/// `XENVIF_VIF_MAC_SET_FILTER_LEVEL`.
pub type MacSetFilterLevelFn =
    Option<unsafe extern "C" fn(interface: Pinterface, kind: u32, level: u32) -> NtStatus>;
/// `XENVIF_VIF_MAC_QUERY_FILTER_LEVEL`.
pub type MacQueryFilterLevelFn =
    Option<unsafe extern "C" fn(interface: Pinterface, kind: u32, level: *mut u32) -> NtStatus>;

/// Declares a VIF table: versions differ only in the `Enable` member.
macro_rules! vif_table {
    ($(#[$doc:meta])* $name:ident, $version:literal, $enable:ident : $enable_ty:ty, $enable_doc:literal) => {
        interface_table! {
            $(#[$doc])*
            $name = (GUID, $version, "VIF") {
                /// `Acquire`.
                acquire: AcquireFn,
                /// `Release`.
                release: ReleaseFn,
                #[doc = $enable_doc]
                $enable: $enable_ty,
                /// `Disable`.
                disable: DisableFn,
                /// `QueryStatistic`.
                query_statistic: QueryStatisticFn,
                /// `QueryRingCount`.
                query_ring_count: QueryU32Fn,
                /// `UpdateHashMapping`.
                update_hash_mapping: UpdateHashMappingFn,
                /// `ReceiverReturnPacket`.
                receiver_return_packet: ReceiverReturnPacketFn,
                /// `ReceiverSetOffloadOptions`.
                receiver_set_offload_options: ReceiverSetOffloadOptionsFn,
                /// `ReceiverSetBackfillSize`.
                receiver_set_backfill_size: ReceiverSetBackfillSizeFn,
                /// `ReceiverQueryRingSize`.
                receiver_query_ring_size: QueryU32Fn,
                /// `ReceiverSetHashAlgorithm`.
                receiver_set_hash_algorithm: ReceiverSetHashAlgorithmFn,
                /// `ReceiverQueryHashCapabilities`.
                receiver_query_hash_capabilities: ReceiverHashVariadicFn,
                /// `ReceiverUpdateHashParameters`.
                receiver_update_hash_parameters: ReceiverHashVariadicFn,
                /// `TransmitterQueuePacket`.
                transmitter_queue_packet: TransmitterQueuePacketFn,
                /// `TransmitterQueryOffloadOptions`.
                transmitter_query_offload_options: TransmitterQueryOffloadOptionsFn,
                /// `TransmitterQueryLargePacketSize`.
                transmitter_query_large_packet_size: TransmitterQueryLargePacketSizeFn,
                /// `TransmitterQueryRingSize`.
                transmitter_query_ring_size: QueryU32Fn,
                /// `MacQueryState`.
                mac_query_state: MacQueryStateFn,
                /// `MacQueryMaximumFrameSize`.
                mac_query_maximum_frame_size: QueryU32Fn,
                /// `MacQueryPermanentAddress`.
                mac_query_permanent_address: MacQueryAddressFn,
                /// `MacQueryCurrentAddress`.
                mac_query_current_address: MacQueryAddressFn,
                /// `MacQueryMulticastAddresses`.
                mac_query_multicast_addresses: MacQueryMulticastAddressesFn,
                /// `MacSetMulticastAddresses`.
                mac_set_multicast_addresses: MacSetMulticastAddressesFn,
                /// `MacSetFilterLevel`.
                mac_set_filter_level: MacSetFilterLevelFn,
                /// `MacQueryFilterLevel`.
                mac_query_filter_level: MacQueryFilterLevelFn,
            }
        }
    };
}

vif_table! {
    /// `struct _XENVIF_VIF_INTERFACE_V8`.
    VifInterfaceV8, 8, enable_v8: EnableV8Fn, "`EnableVersion8`."
}
vif_table! {
    /// `struct _XENVIF_VIF_INTERFACE_V9`.
    VifInterfaceV9, 9, enable_v9: EnableV9Fn, "`EnableVersion9`."
}
vif_table! {
    /// `struct _XENVIF_VIF_INTERFACE_V10`.
    VifInterfaceV10, 10, enable: EnableFn, "`Enable`."
}
