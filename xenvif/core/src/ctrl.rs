//! The control ring (`feature-ctrl-ring`): how a frontend configures netback's
//! receive hash (algorithm, hashed types, Toeplitz key, mapping table).
//!
//! One request is in flight at a time, as in the C driver: configuration is
//! rare and ordered. Keys and mapping tables travel in a granted page the
//! caller fills with [`key_page_bytes`] / [`mapping_page_bytes`] (the core does
//! not touch page contents).

use xen_abi::netif::{
    XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW,
    XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER, XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED,
    XEN_NETIF_CTRL_STATUS_SUCCESS, XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS,
    XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
    XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY,
    XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE,
    XenNetifCtrlFrontRing, XenNetifCtrlRequest,
};
use xen_abi::ring::{RingMemory, RingSetupError};
use xenbus_interface::api::{GrantRef, PAGE_SIZE};

use crate::error::Violation;
use crate::rss::{HashTypes, KEY_LEN, MAX_MAPPING_SIZE};

/// A control request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlRequest {
    /// Use Toeplitz (`true`) or no hash (`false`).
    SetHashAlgorithm {
        /// Toeplitz or none.
        toeplitz: bool,
    },
    /// Which types to hash.
    SetHashFlags(HashTypes),
    /// Which types the backend can hash.
    GetHashFlags,
    /// The key is the first `len` bytes of the page granted as `gref`.
    SetHashKey {
        /// The key page.
        gref: GrantRef,
        /// Key length.
        len: u32,
    },
    /// The largest mapping table the backend takes.
    GetHashMappingSize,
    /// The mapping table's size.
    SetHashMappingSize(u32),
    /// `count` entries, from entry `offset`, are the u32s in the page `gref`.
    SetHashMapping {
        /// The table page.
        gref: GrantRef,
        /// First entry to set.
        offset: u32,
        /// Entries.
        count: u32,
    },
}

impl CtrlRequest {
    fn encode(self, id: u16) -> XenNetifCtrlRequest {
        let (kind, data) = match self {
            Self::SetHashAlgorithm { toeplitz } => (
                XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
                [
                    if toeplitz {
                        XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ
                    } else {
                        0
                    },
                    0,
                    0,
                ],
            ),
            Self::SetHashFlags(types) => (XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, [types.bits(), 0, 0]),
            Self::GetHashFlags => (XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS, [0; 3]),
            Self::SetHashKey { gref, len } => (XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, [gref.0, len, 0]),
            Self::GetHashMappingSize => (XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE, [0; 3]),
            Self::SetHashMappingSize(size) => {
                (XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, [size, 0, 0])
            }
            Self::SetHashMapping {
                gref,
                offset,
                count,
            } => (
                // netif.h: data[1] is the size, data[2] the offset.
                XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING,
                [gref.0, count, offset],
            ),
        };
        XenNetifCtrlRequest {
            id,
            r#type: kind,
            data,
        }
    }
}

/// How the backend answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlStatus {
    /// Done; the response's data word.
    Success(u32),
    /// `XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED`.
    NotSupported,
    /// `XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER`.
    InvalidParameter,
    /// `XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW`.
    BufferOverflow,
}

/// Why a control request was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlError {
    /// A request is still in flight.
    Busy,
    /// The ring is broken.
    Broken,
}

/// The frontend end of a control ring.
#[derive(Debug)]
pub struct CtrlQueue<R> {
    ring: XenNetifCtrlFrontRing<R>,
    next_id: u16,
    pending: Option<(u16, u16)>,
    broken: Option<Violation>,
}

impl<R: RingMemory> CtrlQueue<R> {
    /// Initialises a control ring in `memory` (granted by the caller).
    pub fn new(memory: R) -> Result<Self, RingSetupError> {
        Ok(Self {
            ring: XenNetifCtrlFrontRing::new(memory)?,
            next_id: 0,
            pending: None,
            broken: None,
        })
    }

    /// Why the ring is broken, if it is.
    pub fn broken(&self) -> Option<Violation> {
        self.broken
    }

    /// Whether a request waits for its answer.
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Gives the ring memory back.
    pub fn into_memory(self) -> R {
        self.ring.into_memory()
    }

    /// Sends `request`; `true` when the backend must be notified.
    pub fn submit(&mut self, request: CtrlRequest) -> Result<bool, CtrlError> {
        if self.broken.is_some() {
            return Err(CtrlError::Broken);
        }
        if self.pending.is_some() {
            return Err(CtrlError::Busy);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let encoded = request.encode(id);
        self.ring
            .write_request(&encoded)
            .map_err(|_| CtrlError::Busy)?;
        self.pending = Some((id, encoded.r#type));
        Ok(self.ring.push_requests_and_check_notify())
    }

    /// The answer to the request in flight, once it has come. A response that
    /// matches no request in flight, or an unknown status, breaks the ring.
    pub fn poll(&mut self) -> Option<Result<CtrlStatus, Violation>> {
        if let Some(v) = self.broken {
            return Some(Err(v));
        }
        let result = match self.ring.responses() {
            Err(e) => Err(Violation::ProducerOverflow {
                ring: "ctrl",
                prod: e.prod,
                cons: e.cons,
            }),
            Ok(mut responses) => {
                let response = responses.next()?;
                match self.pending.take() {
                    Some((id, kind)) if id == response.id && kind == response.r#type => {
                        match response.status {
                            XEN_NETIF_CTRL_STATUS_SUCCESS => Ok(CtrlStatus::Success(response.data)),
                            XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED => Ok(CtrlStatus::NotSupported),
                            XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER => {
                                Ok(CtrlStatus::InvalidParameter)
                            }
                            XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW => Ok(CtrlStatus::BufferOverflow),
                            _ => Err(Violation::BadControlResponse {
                                id: response.id,
                                kind: response.r#type,
                            }),
                        }
                    }
                    _ => Err(Violation::BadControlResponse {
                        id: response.id,
                        kind: response.r#type,
                    }),
                }
            }
        };
        if let Err(v) = result {
            self.broken = Some(v);
        }
        Some(result)
    }
}

/// The page contents for [`CtrlRequest::SetHashKey`]: the key at offset 0.
pub fn key_page_bytes(key: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    *key
}

/// The page contents for [`CtrlRequest::SetHashMapping`]: each entry as a
/// native-endian (little-endian on x86) u32, as netback reads them. At most
/// [`MAX_MAPPING_SIZE`] entries are written (they always fit a page).
pub fn mapping_page_bytes(entries: &[u32], out: &mut [u8; PAGE_SIZE]) -> usize {
    let mut written = 0;
    for (entry, chunk) in entries
        .iter()
        .take(MAX_MAPPING_SIZE)
        .zip(out.chunks_exact_mut(4))
    {
        chunk.copy_from_slice(&entry.to_le_bytes());
        written += 4;
    }
    written
}

/// The requests that configure Toeplitz RSS for key/table pages `key_gref`
/// and `mapping_gref`, in an order that never leaves a half-configured hash
/// in force: the algorithm (netback refuses hash types without one), the key,
/// the mapping size (before the mapping, netback's rule), the mapping, and
/// only then the hash types. Until the types are set no packet is hashed, so
/// none carries a hash made with a partial configuration (the rig caught one
/// when the types came before the key).
pub fn rss_sequence(
    types: HashTypes,
    mapping_len: u32,
    key_gref: GrantRef,
    mapping_gref: GrantRef,
) -> [CtrlRequest; 5] {
    [
        CtrlRequest::SetHashAlgorithm { toeplitz: true },
        CtrlRequest::SetHashKey {
            gref: key_gref,
            len: u32::try_from(KEY_LEN).unwrap_or(40),
        },
        CtrlRequest::SetHashMappingSize(mapping_len),
        CtrlRequest::SetHashMapping {
            gref: mapping_gref,
            offset: 0,
            count: mapping_len,
        },
        CtrlRequest::SetHashFlags(types),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use xen_abi::netif::{XenNetifCtrlBackRing, XenNetifCtrlResponse};
    use xen_abi::ring::HeapRingMemory;

    fn rings() -> (
        CtrlQueue<Arc<HeapRingMemory>>,
        XenNetifCtrlBackRing<Arc<HeapRingMemory>>,
    ) {
        let mem = Arc::new(HeapRingMemory::new(1).unwrap());
        let front = CtrlQueue::new(mem.clone()).unwrap();
        (front, XenNetifCtrlBackRing::attach(mem, 0).unwrap())
    }

    fn answer(
        back: &mut XenNetifCtrlBackRing<Arc<HeapRingMemory>>,
        tweak: impl FnOnce(&mut XenNetifCtrlResponse),
    ) -> XenNetifCtrlRequest {
        let request = back.requests().unwrap().next().unwrap();
        let mut response = XenNetifCtrlResponse {
            id: request.id,
            r#type: request.r#type,
            status: 0,
            data: 0,
        };
        tweak(&mut response);
        back.write_response(&response).unwrap();
        back.push_responses();
        request
    }

    #[test]
    fn rss_configuration_round_trip() {
        let (mut front, mut back) = rings();
        for request in rss_sequence(
            HashTypes::IPV4_TCP | HashTypes::IPV6_TCP,
            64,
            GrantRef(10),
            GrantRef(11),
        ) {
            front.submit(request).unwrap();
            assert_eq!(front.submit(request), Err(CtrlError::Busy));
            assert_eq!(front.poll(), None);
            let wire = answer(&mut back, |_| {});
            assert_eq!(wire, request.encode(wire.id));
            assert_eq!(front.poll(), Some(Ok(CtrlStatus::Success(0))));
        }
        let wire = CtrlRequest::SetHashMapping {
            gref: GrantRef(11),
            offset: 0,
            count: 64,
        }
        .encode(4);
        assert_eq!(
            (wire.r#type, wire.data),
            (XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, [11, 64, 0])
        );
        front.submit(CtrlRequest::GetHashMappingSize).unwrap();
        answer(&mut back, |r| {
            r.status = XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
            r.data = 9;
        });
        assert_eq!(front.poll(), Some(Ok(CtrlStatus::NotSupported)));
    }

    #[test]
    fn mismatched_answers_break() {
        for tweak in [
            (|r: &mut XenNetifCtrlResponse| r.id ^= 1) as fn(&mut XenNetifCtrlResponse),
            |r| r.r#type = XEN_NETIF_CTRL_TYPE_SET_HASH_KEY,
            |r| r.status = 77,
        ] {
            let (mut front, mut back) = rings();
            front
                .submit(CtrlRequest::SetHashFlags(HashTypes::IPV4))
                .unwrap();
            answer(&mut back, tweak);
            assert!(matches!(
                front.poll(),
                Some(Err(Violation::BadControlResponse { .. }))
            ));
            assert_eq!(
                front.submit(CtrlRequest::GetHashFlags),
                Err(CtrlError::Broken)
            );
        }
    }

    #[test]
    fn hash_types_are_switched_on_last() {
        let sequence = rss_sequence(HashTypes::ALL, 8, GrantRef(1), GrantRef(2));
        assert_eq!(
            sequence[0],
            CtrlRequest::SetHashAlgorithm { toeplitz: true }
        );
        assert_eq!(sequence[4], CtrlRequest::SetHashFlags(HashTypes::ALL));
        let size = sequence
            .iter()
            .position(|r| matches!(r, CtrlRequest::SetHashMappingSize(8)));
        let mapping = sequence
            .iter()
            .position(|r| matches!(r, CtrlRequest::SetHashMapping { .. }));
        assert!(size < mapping);
    }

    #[test]
    fn mapping_bytes_are_little_endian_words() {
        let mut page = [0u8; PAGE_SIZE];
        assert_eq!(mapping_page_bytes(&[1, 0x0203_0405], &mut page), 8);
        assert_eq!(&page[..8], &[1, 0, 0, 0, 5, 4, 3, 2]);
        assert_eq!(
            mapping_page_bytes(&[7; 200], &mut page),
            4 * MAX_MAPPING_SIZE
        );
    }
}
