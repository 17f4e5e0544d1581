//! Layout snapshots: every released interface version, frozen.
//!
//! Sizes and offsets are the C layout of the Xen Project drivers' headers on
//! x86_64 (`INTERFACE` header of 32 bytes, then one 8-byte function pointer
//! per member in header order). A released version never changes: if one of
//! these fails, the change is wrong, not the test.

use core::mem::{align_of, offset_of, size_of};
use xenbus_interface::table::InterfaceTable;
use xenbus_interface::*;

macro_rules! frozen {
    ($ty:ty, version $version:literal, size $size:literal, { $($field:ident @ $offset:literal),* $(,)? }) => {{
        assert_eq!(size_of::<$ty>(), $size, "size of {}", stringify!($ty));
        assert_eq!(align_of::<$ty>(), 8, "alignment of {}", stringify!($ty));
        assert_eq!(<$ty as InterfaceTable>::VERSION, $version);
        assert_eq!(usize::from(<$ty as InterfaceTable>::size()), $size);
        assert_eq!(offset_of!($ty, header), 0);
        $(assert_eq!(offset_of!($ty, $field), $offset, "{}::{}", stringify!($ty), stringify!($field));)*
    }};
}

#[test]
fn store_versions_are_frozen() {
    frozen!(store::StoreInterfaceV2, version 2, size 136, {
        acquire @ 32,
        release @ 40,
        free @ 48,
        read @ 56,
        printf @ 64,
        permissions_set @ 72,
        remove @ 80,
        directory @ 88,
        transaction_start @ 96,
        transaction_end @ 104,
        watch_add @ 112,
        watch_remove @ 120,
        poll @ 128,
    });
}

#[test]
fn evtchn_versions_are_frozen() {
    frozen!(evtchn::EvtchnInterfaceV5, version 5, size 112, {
        acquire @ 32,
        release @ 40,
        open @ 48,
        bind @ 56,
        unmask_v4 @ 64,
        send_v1 @ 72,
        trigger @ 80,
        wait_v5 @ 88,
        get_port @ 96,
        close @ 104,
    });
    frozen!(evtchn::EvtchnInterfaceV6, version 6, size 112, {
        acquire @ 32,
        release @ 40,
        open @ 48,
        bind @ 56,
        unmask_v4 @ 64,
        send @ 72,
        trigger @ 80,
        wait_v5 @ 88,
        get_port @ 96,
        close @ 104,
    });
    frozen!(evtchn::EvtchnInterfaceV7, version 7, size 120, {
        acquire @ 32,
        release @ 40,
        open @ 48,
        bind @ 56,
        unmask_v4 @ 64,
        send @ 72,
        trigger @ 80,
        get_count @ 88,
        wait @ 96,
        get_port @ 104,
        close @ 112,
    });
    frozen!(evtchn::EvtchnInterfaceV8, version 8, size 120, {
        acquire @ 32,
        release @ 40,
        open @ 48,
        bind @ 56,
        unmask @ 64,
        send @ 72,
        trigger @ 80,
        get_count @ 88,
        wait @ 96,
        get_port @ 104,
        close @ 112,
    });
    frozen!(evtchn::EvtchnInterfaceV9, version 9, size 120, {
        acquire @ 32,
        release @ 40,
        open @ 48,
        bind @ 56,
        unmask @ 64,
        send @ 72,
        trigger @ 80,
        get_count @ 88,
        wait @ 96,
        get_port @ 104,
        close @ 112,
    });
}

#[test]
fn gnttab_versions_are_frozen() {
    frozen!(gnttab::GnttabInterfaceV2, version 2, size 104, {
        acquire @ 32,
        release @ 40,
        create_cache_v1 @ 48,
        permit_foreign_access @ 56,
        revoke_foreign_access @ 64,
        get_reference @ 72,
        destroy_cache @ 80,
        map_foreign_pages @ 88,
        unmap_foreign_pages @ 96,
    });
    frozen!(gnttab::GnttabInterfaceV3, version 3, size 112, {
        acquire @ 32,
        release @ 40,
        create_cache_v1 @ 48,
        permit_foreign_access @ 56,
        revoke_foreign_access @ 64,
        get_reference @ 72,
        query_reference @ 80,
        destroy_cache @ 88,
        map_foreign_pages @ 96,
        unmap_foreign_pages @ 104,
    });
    frozen!(gnttab::GnttabInterfaceV4, version 4, size 112, {
        acquire @ 32,
        release @ 40,
        create_cache @ 48,
        permit_foreign_access @ 56,
        revoke_foreign_access @ 64,
        get_reference @ 72,
        query_reference @ 80,
        destroy_cache @ 88,
        map_foreign_pages @ 96,
        unmap_foreign_pages @ 104,
    });
}

#[test]
fn suspend_versions_are_frozen() {
    frozen!(suspend::SuspendInterfaceV1, version 1, size 80, {
        acquire @ 32,
        release @ 40,
        register @ 48,
        deregister @ 56,
        trigger @ 64,
        get_count @ 72,
    });
}

#[test]
fn debug_versions_are_frozen() {
    frozen!(debug::DebugInterfaceV1, version 1, size 80, {
        acquire @ 32,
        release @ 40,
        register @ 48,
        printf @ 56,
        trigger @ 64,
        deregister @ 72,
    });
}

#[test]
fn unplug_versions_are_frozen() {
    frozen!(unplug::UnplugInterfaceV1, version 1, size 56, {
        acquire @ 32,
        release @ 40,
        request @ 48,
    });
    frozen!(unplug::UnplugInterfaceV2, version 2, size 64, {
        acquire @ 32,
        release @ 40,
        request @ 48,
        is_requested @ 56,
    });
    frozen!(unplug::UnplugInterfaceV3, version 3, size 80, {
        acquire @ 32,
        release @ 40,
        request @ 48,
        is_requested @ 56,
        boot_emulated @ 64,
        reboot @ 72,
    });
}

#[test]
fn shared_info_versions_are_frozen() {
    frozen!(shared_info::SharedInfoInterfaceV2, version 2, size 96, {
        acquire @ 32,
        release @ 40,
        upcall_pending @ 48,
        evtchn_poll @ 56,
        evtchn_ack @ 64,
        evtchn_mask @ 72,
        evtchn_unmask @ 80,
        get_time_v2 @ 88,
    });
    frozen!(shared_info::SharedInfoInterfaceV3, version 3, size 96, {
        acquire @ 32,
        release @ 40,
        upcall_pending @ 48,
        evtchn_poll @ 56,
        evtchn_ack @ 64,
        evtchn_mask @ 72,
        evtchn_unmask @ 80,
        get_time @ 88,
    });
    frozen!(shared_info::SharedInfoInterfaceV4, version 4, size 104, {
        acquire @ 32,
        release @ 40,
        upcall_supported @ 48,
        upcall_pending @ 56,
        evtchn_poll @ 64,
        evtchn_ack @ 72,
        evtchn_mask @ 80,
        evtchn_unmask @ 88,
        get_time @ 96,
    });
}

#[test]
fn console_versions_are_frozen() {
    frozen!(console::ConsoleInterfaceV1, version 1, size 96, {
        acquire @ 32,
        release @ 40,
        can_read @ 48,
        read @ 56,
        can_write @ 64,
        write @ 72,
        wakeup_add @ 80,
        wakeup_remove @ 88,
    });
}

#[test]
fn range_set_versions_are_frozen() {
    frozen!(range_set::RangeSetInterfaceV1, version 1, size 88, {
        acquire @ 32,
        release @ 40,
        create @ 48,
        put @ 56,
        pop @ 64,
        get @ 72,
        destroy @ 80,
    });
}

#[test]
fn cache_versions_are_frozen() {
    frozen!(cache::CacheInterfaceV1, version 1, size 80, {
        acquire @ 32,
        release @ 40,
        create_v1 @ 48,
        get @ 56,
        put @ 64,
        destroy @ 72,
    });
    frozen!(cache::CacheInterfaceV2, version 2, size 80, {
        acquire @ 32,
        release @ 40,
        create @ 48,
        get @ 56,
        put @ 64,
        destroy @ 72,
    });
}

#[test]
fn emulated_versions_are_frozen() {
    frozen!(emulated::EmulatedInterfaceV1, version 1, size 64, {
        acquire @ 32,
        release @ 40,
        is_device_present_v1 @ 48,
        is_disk_present_v1 @ 56,
    });
    frozen!(emulated::EmulatedInterfaceV2, version 2, size 64, {
        acquire @ 32,
        release @ 40,
        is_device_present_v1 @ 48,
        is_disk_present @ 56,
    });
    frozen!(emulated::EmulatedInterfaceV3, version 3, size 64, {
        acquire @ 32,
        release @ 40,
        is_device_present @ 48,
        is_disk_present @ 56,
    });
}

#[test]
fn vif_versions_are_frozen() {
    frozen!(vif::VifInterfaceV8, version 8, size 240, {
        acquire @ 32,
        release @ 40,
        enable_v8 @ 48,
        disable @ 56,
        query_statistic @ 64,
        query_ring_count @ 72,
        update_hash_mapping @ 80,
        receiver_return_packet @ 88,
        receiver_set_offload_options @ 96,
        receiver_set_backfill_size @ 104,
        receiver_query_ring_size @ 112,
        receiver_set_hash_algorithm @ 120,
        receiver_query_hash_capabilities @ 128,
        receiver_update_hash_parameters @ 136,
        transmitter_queue_packet @ 144,
        transmitter_query_offload_options @ 152,
        transmitter_query_large_packet_size @ 160,
        transmitter_query_ring_size @ 168,
        mac_query_state @ 176,
        mac_query_maximum_frame_size @ 184,
        mac_query_permanent_address @ 192,
        mac_query_current_address @ 200,
        mac_query_multicast_addresses @ 208,
        mac_set_multicast_addresses @ 216,
        mac_set_filter_level @ 224,
        mac_query_filter_level @ 232,
    });
    frozen!(vif::VifInterfaceV9, version 9, size 240, {
        acquire @ 32,
        release @ 40,
        enable_v9 @ 48,
        disable @ 56,
        query_statistic @ 64,
        query_ring_count @ 72,
        update_hash_mapping @ 80,
        receiver_return_packet @ 88,
        receiver_set_offload_options @ 96,
        receiver_set_backfill_size @ 104,
        receiver_query_ring_size @ 112,
        receiver_set_hash_algorithm @ 120,
        receiver_query_hash_capabilities @ 128,
        receiver_update_hash_parameters @ 136,
        transmitter_queue_packet @ 144,
        transmitter_query_offload_options @ 152,
        transmitter_query_large_packet_size @ 160,
        transmitter_query_ring_size @ 168,
        mac_query_state @ 176,
        mac_query_maximum_frame_size @ 184,
        mac_query_permanent_address @ 192,
        mac_query_current_address @ 200,
        mac_query_multicast_addresses @ 208,
        mac_set_multicast_addresses @ 216,
        mac_set_filter_level @ 224,
        mac_query_filter_level @ 232,
    });
    frozen!(vif::VifInterfaceV10, version 10, size 240, {
        acquire @ 32,
        release @ 40,
        enable @ 48,
        disable @ 56,
        query_statistic @ 64,
        query_ring_count @ 72,
        update_hash_mapping @ 80,
        receiver_return_packet @ 88,
        receiver_set_offload_options @ 96,
        receiver_set_backfill_size @ 104,
        receiver_query_ring_size @ 112,
        receiver_set_hash_algorithm @ 120,
        receiver_query_hash_capabilities @ 128,
        receiver_update_hash_parameters @ 136,
        transmitter_queue_packet @ 144,
        transmitter_query_offload_options @ 152,
        transmitter_query_large_packet_size @ 160,
        transmitter_query_ring_size @ 168,
        mac_query_state @ 176,
        mac_query_maximum_frame_size @ 184,
        mac_query_permanent_address @ 192,
        mac_query_current_address @ 200,
        mac_query_multicast_addresses @ 208,
        mac_set_multicast_addresses @ 216,
        mac_set_filter_level @ 224,
        mac_query_filter_level @ 232,
    });
}
#[test]
fn guids_are_the_c_headers() {
    let guids = [
        (store::GUID, "{86824C3B-D34E-4753-B281-2F1E3AD214D7}"),
        (evtchn::GUID, "{BE2440AC-1098-4150-AF4D-452FADCEF923}"),
        (gnttab::GUID, "{763679C5-E5C2-4A6D-8B88-6BB02EC42D8E}"),
        (suspend::GUID, "{0554F2AF-B510-4C71-AC03-1C503E394238}"),
        (debug::GUID, "{0DF600AE-6B20-4227-BF94-03DA9A26A114}"),
        (unplug::GUID, "{73DB6517-3D06-4937-989F-199B7501E229}"),
        (shared_info::GUID, "{7E73C34F-1640-4649-A8F3-263BC930A004}"),
        (console::GUID, "{04C4F738-034A-4268-BD20-A92AC90D4F82}"),
        (range_set::GUID, "{EE7E78A2-6847-48C5-B123-BB012F0EABF4}"),
        (cache::GUID, "{A98DFD78-416A-4949-92A5-E084F2F4B44E}"),
        (emulated::GUID, "{959027A1-FCCE-4E78-BCF4-637384F499C5}"),
        (vif::GUID, "{76F279CD-CA11-418B-92E8-C57F77DE0E2E}"),
    ];
    for (guid, text) in guids {
        assert_eq!(format!("{guid}"), text);
    }
}

#[test]
fn version_ranges_are_the_c_headers() {
    assert_eq!((store::VERSION_MIN, store::VERSION_MAX), (2, 2));
    assert_eq!((evtchn::VERSION_MIN, evtchn::VERSION_MAX), (5, 9));
    assert_eq!((gnttab::VERSION_MIN, gnttab::VERSION_MAX), (2, 4));
    assert_eq!((suspend::VERSION_MIN, suspend::VERSION_MAX), (1, 1));
    assert_eq!((debug::VERSION_MIN, debug::VERSION_MAX), (1, 1));
    assert_eq!((unplug::VERSION_MIN, unplug::VERSION_MAX), (1, 3));
    assert_eq!((shared_info::VERSION_MIN, shared_info::VERSION_MAX), (2, 4));
    assert_eq!((console::VERSION_MIN, console::VERSION_MAX), (1, 1));
    assert_eq!((range_set::VERSION_MIN, range_set::VERSION_MAX), (1, 1));
    assert_eq!((cache::VERSION_MIN, cache::VERSION_MAX), (1, 2));
    assert_eq!((emulated::VERSION_MIN, emulated::VERSION_MAX), (1, 3));
    assert_eq!((vif::VERSION_MIN, vif::VERSION_MAX), (8, 10));
}

#[test]
fn exchanged_structures_are_frozen() {
    use store::StorePermission;
    use vif::*;
    assert_eq!(size_of::<types::Interface>(), 32);
    assert_eq!(size_of::<StorePermission>(), 8);
    assert_eq!(offset_of!(StorePermission, domain), 0);
    assert_eq!(offset_of!(StorePermission, mask), 4);

    assert_eq!(size_of::<EthernetAddress>(), 6);
    assert_eq!(size_of::<PacketHash>(), 12);
    assert_eq!(offset_of!(PacketHash, algorithm), 0);
    assert_eq!(offset_of!(PacketHash, kind), 4);
    assert_eq!(offset_of!(PacketHash, value), 8);
    assert_eq!(size_of::<PacketHeader>(), 8);
    assert_eq!(size_of::<PacketInfo>(), 64);
    assert_eq!(offset_of!(PacketInfo, length), 0);
    assert_eq!(offset_of!(PacketInfo, is_a_fragment), 4);
    assert_eq!(offset_of!(PacketInfo, ethernet_header), 8);
    assert_eq!(offset_of!(PacketInfo, llc_snap_header), 16);
    assert_eq!(offset_of!(PacketInfo, ip_header), 24);
    assert_eq!(offset_of!(PacketInfo, ip_options), 32);
    assert_eq!(offset_of!(PacketInfo, tcp_header), 40);
    assert_eq!(offset_of!(PacketInfo, tcp_options), 48);
    assert_eq!(offset_of!(PacketInfo, udp_header), 56);
    assert_eq!(size_of::<ChecksumFlags>(), 4);
    assert_eq!(size_of::<OffloadOptions>(), 2);

    // pack(1) in the C header.
    assert_eq!(size_of::<TransmitterPacketSendInfo>(), 6);
    assert_eq!(align_of::<TransmitterPacketSendInfo>(), 1);
    assert_eq!(
        offset_of!(TransmitterPacketSendInfo, maximum_segment_size),
        2
    );
    assert_eq!(
        offset_of!(TransmitterPacketSendInfo, tag_control_information),
        4
    );
    assert_eq!(size_of::<TransmitterPacketCompletionInfo>(), 6);
    assert_eq!(align_of::<TransmitterPacketCompletionInfo>(), 1);
    assert_eq!(offset_of!(TransmitterPacketCompletionInfo, status), 1);
    assert_eq!(
        offset_of!(TransmitterPacketCompletionInfo, packet_length),
        2
    );
    assert_eq!(
        offset_of!(TransmitterPacketCompletionInfo, payload_length),
        4
    );

    assert_eq!(size_of::<TransmitterPacketV2>(), 56);
    assert_eq!(offset_of!(TransmitterPacketV2, list_entry), 0);
    assert_eq!(offset_of!(TransmitterPacketV2, cookie), 16);
    assert_eq!(offset_of!(TransmitterPacketV2, value), 24);
    assert_eq!(offset_of!(TransmitterPacketV2, send), 28);
    assert_eq!(offset_of!(TransmitterPacketV2, completion), 34);
    assert_eq!(offset_of!(TransmitterPacketV2, mdl), 40);
    assert_eq!(offset_of!(TransmitterPacketV2, offset), 48);
    assert_eq!(offset_of!(TransmitterPacketV2, length), 52);

    assert_eq!(size_of::<TransmitterReturnPacketParameters>(), 16);
    assert_eq!(offset_of!(TransmitterReturnPacketParameters, completion), 8);
    assert_eq!(size_of::<ReceiverQueuePacketParametersV9>(), 64);
    assert_eq!(size_of::<ReceiverQueuePacketParametersV10>(), 72);
    macro_rules! receiver_queue_packet {
        ($ty:ty) => {
            assert_eq!(offset_of!($ty, index), 0);
            assert_eq!(offset_of!($ty, mdl), 8);
            assert_eq!(offset_of!($ty, offset), 16);
            assert_eq!(offset_of!($ty, length), 20);
            assert_eq!(offset_of!($ty, flags), 24);
            assert_eq!(offset_of!($ty, maximum_segment_size), 28);
            assert_eq!(offset_of!($ty, tag_control_information), 30);
            assert_eq!(offset_of!($ty, info), 32);
            assert_eq!(offset_of!($ty, hash), 40);
            assert_eq!(offset_of!($ty, more), 48);
            assert_eq!(offset_of!($ty, cookie), 56);
        };
    }
    receiver_queue_packet!(ReceiverQueuePacketParametersV9);
    receiver_queue_packet!(ReceiverQueuePacketParametersV10);
    assert_eq!(offset_of!(ReceiverQueuePacketParametersV9, cookie), 56);
    assert_eq!(offset_of!(ReceiverQueuePacketParametersV10, pause), 64);
    assert_eq!(size_of::<CallbackParametersV9>(), 64);
    assert_eq!(size_of::<CallbackParametersV10>(), 72);
    assert_eq!(size_of::<types::ProcessorNumber>(), 4);
}
