//! `io/console.h`: the PV console's shared page (two byte rings).

use core::mem::size_of;

/// `XENCONS_RING_IDX`: a free-running console ring index.
pub type XenconsRingIdx = u32;

/// Bytes in the input (backend to guest) ring.
pub const XENCONS_IN_SIZE: usize = 1024;
/// Bytes in the output (guest to backend) ring.
pub const XENCONS_OUT_SIZE: usize = 2048;

/// `struct xencons_interface`: the console page.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenconsInterface {
    /// Input ring (written by the backend).
    pub r#in: [u8; XENCONS_IN_SIZE],
    /// Output ring (written by the guest).
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Input consumer index (guest).
    pub in_cons: XenconsRingIdx,
    /// Input producer index (backend).
    pub in_prod: XenconsRingIdx,
    /// Output consumer index (backend).
    pub out_cons: XenconsRingIdx,
    /// Output producer index (guest).
    pub out_prod: XenconsRingIdx,
}

const _: () = assert!(size_of::<XenconsInterface>() == 3088);

/// `MASK_XENCONS_IDX(idx, in)`: the input ring offset of index `idx`.
pub const fn mask_xencons_in_idx(idx: XenconsRingIdx) -> usize {
    idx as usize & (XENCONS_IN_SIZE - 1)
}

/// `MASK_XENCONS_IDX(idx, out)`: the output ring offset of index `idx`.
pub const fn mask_xencons_out_idx(idx: XenconsRingIdx) -> usize {
    idx as usize & (XENCONS_OUT_SIZE - 1)
}
