//! Why a device stopped: the backend broke the protocol.

use core::fmt;

/// A protocol violation by the backend. Once one is seen the device is
/// `Broken`: no more requests, no more acknowledgements, every outstanding
/// packet completed with an error, and the reason kept for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A response producer index ran ahead of the requests outstanding.
    ProducerOverflow {
        /// Which ring.
        ring: &'static str,
        /// The producer index read.
        prod: u32,
        /// Our consumer index.
        cons: u32,
    },
    /// A response named an id that is out of range or not in flight.
    UnknownId {
        /// Which ring.
        ring: &'static str,
        /// The id.
        id: u16,
    },
    /// A transmit response status outside `NETIF_RSP_*`.
    BadTxStatus {
        /// The id.
        id: u16,
        /// The status.
        status: i16,
    },
    /// Received data would cross the end of its page.
    RxOutOfPage {
        /// Offset given.
        offset: u16,
        /// Length given.
        len: i16,
    },
    /// A received packet chained more slots than any packet can need.
    RxTooManySlots {
        /// The limit.
        max: usize,
    },
    /// An extra-info slot of an unknown or repeated type, or a chain too long.
    BadExtraInfo {
        /// The type byte.
        kind: u8,
    },
    /// A GSO extra with an unknown type or a zero size.
    BadGso {
        /// GSO type.
        kind: u8,
        /// Segment size.
        size: u16,
    },
    /// The backend kept a grant mapped after answering for it; the page is
    /// quarantined.
    GrantStillMapped {
        /// Which ring.
        ring: &'static str,
    },
    /// A response with flags we never asked for (e.g. `NETRXF_gso_prefix`).
    UnexpectedFlags {
        /// Which ring.
        ring: &'static str,
        /// The flags.
        flags: u16,
    },
    /// A control ring response that does not match the request in flight.
    BadControlResponse {
        /// The id received.
        id: u16,
        /// The type received.
        kind: u16,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ProducerOverflow { ring, prod, cons } => {
                write!(
                    f,
                    "{ring} ring: rsp_prod {prod} runs ahead of rsp_cons {cons} beyond the requests outstanding"
                )
            }
            Self::UnknownId { ring, id } => write!(
                f,
                "{ring} ring: response for id {id} which is not in flight"
            ),
            Self::BadTxStatus { id, status } => {
                write!(f, "tx ring: id {id} has unknown status {status}")
            }
            Self::RxOutOfPage { offset, len } => {
                write!(
                    f,
                    "rx ring: data at offset {offset} of length {len} crosses the page end"
                )
            }
            Self::RxTooManySlots { max } => {
                write!(f, "rx ring: packet chains more than {max} slots")
            }
            Self::BadExtraInfo { kind } => write!(
                f,
                "extra info of type {kind} unknown, repeated or chained too long"
            ),
            Self::BadGso { kind, size } => write!(f, "GSO extra with type {kind} and size {size}"),
            Self::GrantStillMapped { ring } => {
                write!(f, "{ring} ring: backend still maps a grant it answered for")
            }
            Self::UnexpectedFlags { ring, flags } => {
                write!(f, "{ring} ring: unexpected flags {flags:#x}")
            }
            Self::BadControlResponse { id, kind } => {
                write!(
                    f,
                    "ctrl ring: response id {id} type {kind} matches no request in flight"
                )
            }
        }
    }
}
