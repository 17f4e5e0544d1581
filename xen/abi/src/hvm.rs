//! `hvm/hvm_op.h` and `hvm/params.h`: the `hvm_op` hypercall and HVM parameters
//! (where the xenstore and console rings are, how events are delivered).

use crate::hypercall::DomId;

/// `HVMOP_set_param`: set an HVM parameter, a [`XenHvmParam`].
pub const HVMOP_SET_PARAM: u32 = 0;
/// `HVMOP_get_param`: read an HVM parameter, a [`XenHvmParam`].
pub const HVMOP_GET_PARAM: u32 = 1;
/// `HVMOP_pagetable_dying`: a guest page table is being torn down.
pub const HVMOP_PAGETABLE_DYING: u32 = 9;
/// `HVMOP_get_time`: the current Xen system time.
pub const HVMOP_GET_TIME: u32 = 10;
/// `HVMOP_set_evtchn_upcall_vector`: per-vCPU event delivery vector (x86), a
/// [`XenHvmEvtchnUpcallVector`].
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmParam {
    /// The domain ([`crate::hypercall::DOMID_SELF`]).
    pub domid: DomId,
    /// Padding; zero.
    pub pad: u16,
    /// `HVM_PARAM_*`.
    pub index: u32,
    /// The value (in for set, out for get).
    pub value: u64,
}

/// `struct xen_hvm_evtchn_upcall_vector`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmEvtchnUpcallVector {
    /// The vCPU.
    pub vcpu: u32,
    /// The interrupt vector events are delivered on.
    pub vector: u8,
}

const _: () = assert!(core::mem::size_of::<XenHvmParam>() == 16);
const _: () = assert!(core::mem::size_of::<XenHvmEvtchnUpcallVector>() == 8);

/// `HVM_PARAM_CALLBACK_IRQ`: how vCPU 0's event notifications are delivered (see
/// [`callback_via_gsi`], [`callback_via_pci_intx`], [`callback_via_vector`]).
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_STORE_PFN`: the xenstore ring's guest frame.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`: the xenstore ring's event channel.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_CONSOLE_PFN`: the PV console ring's guest frame.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`: the PV console ring's event channel.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_NR_PARAMS`: number of HVM parameters.
pub const HVM_NR_PARAMS: u32 = 39;

/// `HVM_PARAM_CALLBACK_IRQ_TYPE_MASK`: the delivery type bits (63:56).
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xff00_0000_0000_0000;
/// `HVM_PARAM_CALLBACK_TYPE_GSI`: deliver on a GSI (bits 55:0; not 0).
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;
/// `HVM_PARAM_CALLBACK_TYPE_PCI_INTX`: deliver on a PCI INTx line.
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;
/// `HVM_PARAM_CALLBACK_TYPE_VECTOR`: deliver on an interrupt vector (bits 7:0;
/// needs `XENFEAT_hvm_callback_vector`).
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// Bit position of the delivery type in an `HVM_PARAM_CALLBACK_IRQ` value.
const CALLBACK_TYPE_SHIFT: u32 = 56;

/// `HVM_PARAM_CALLBACK_IRQ` value for delivery on GSI `gsi` (not 0, which
/// disables delivery; at most 56 bits).
pub const fn callback_via_gsi(gsi: u32) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_GSI << CALLBACK_TYPE_SHIFT) | gsi as u64
}

/// `HVM_PARAM_CALLBACK_IRQ` value for delivery on a PCI INTx line: domain in
/// bits 47:32, bus in 31:16, devfn in 15:8, INTx pin (0 = INTA) in 1:0.
pub const fn callback_via_pci_intx(domain: u16, bus: u8, devfn: u8, intx: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_PCI_INTX << CALLBACK_TYPE_SHIFT)
        | ((domain as u64) << 32)
        | ((bus as u64) << 16)
        | ((devfn as u64) << 8)
        | (intx as u64 & 0x3)
}

/// `HVM_PARAM_CALLBACK_IRQ` value for delivery on interrupt vector `vector`.
pub const fn callback_via_vector(vector: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_VECTOR << CALLBACK_TYPE_SHIFT) | vector as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_via_encodings() {
        assert_eq!(callback_via_gsi(28), 28);
        assert_eq!(callback_via_vector(0xf3), 0x0200_0000_0000_00f3);
        // 0000:00:03.0 INTA, as QEMU's Xen platform device sits.
        assert_eq!(
            callback_via_pci_intx(0, 0, 3 << 3, 0),
            0x0100_0000_0000_1800
        );
        assert_eq!(
            callback_via_pci_intx(1, 2, 0x18, 7) & !HVM_PARAM_CALLBACK_IRQ_TYPE_MASK,
            0x0001_0002_1803
        );
    }
}
