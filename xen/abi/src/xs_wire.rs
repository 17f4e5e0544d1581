//! `io/xs_wire.h`: the xenstore wire protocol.
//!
//! A message is a 16-byte [`XsdSockmsg`] header followed by `len` payload bytes
//! (at most [`XENSTORE_PAYLOAD_MAX`]). Guests exchange messages over the shared
//! [`XenstoreDomainInterface`] page; dom0 tools use the same framing over a socket
//! or `/dev/xen/xenbus`. Errors travel as strings ([`XsError::name`]).

use core::fmt;

/// `XS_CONTROL` (also `XS_DEBUG`): daemon control commands.
pub const XS_CONTROL: u32 = 0;
/// `XS_DIRECTORY`: list a node's children.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`: read a node's value.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`: read a node's permissions.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`: register a watch (`path\0token\0`).
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`: remove a watch (`path\0token\0`).
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`: open a transaction; the reply is its id in decimal.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`: `T\0` commits, `F\0` aborts.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`: dom0 introduces a domain's ring to xenstored.
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`: dom0 tells xenstored a domain is gone.
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>` for a domain id.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`: write a node (`path\0value`, the value without a NUL).
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`: create a node with an empty value.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`: remove a node and its children.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`: set a node's permissions.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`: unsolicited; a watched path changed (`path\0token\0`).
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`: the reply to a failed request; payload is an error name.
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`: asks whether a domain has been introduced.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`: dom0 tells xenstored a domain resumed.
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`: give a domain privilege over another.
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES`: drop all of this connection's watches and transactions.
pub const XS_RESET_WATCHES: u32 = 21;
/// `XS_DIRECTORY_PART`: a partial directory listing (large directories).
pub const XS_DIRECTORY_PART: u32 = 22;
/// `XS_TYPE_COUNT`: one more than the largest valid message type.
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`: a type guaranteed never to be valid.
pub const XS_INVALID: u32 = 0xffff;

/// `XS_WATCH_PATH`: index of the path in a watch event's payload.
pub const XS_WATCH_PATH: u32 = 0;
/// `XS_WATCH_TOKEN`: index of the token in a watch event's payload.
pub const XS_WATCH_TOKEN: u32 = 1;

/// `XENSTORE_RING_SIZE`: bytes in each direction of the shared ring.
pub const XENSTORE_RING_SIZE: usize = 1024;
/// `XENSTORE_PAYLOAD_MAX`: the largest payload a message may carry.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`: the longest absolute path xenstored accepts.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: the longest relative path xenstored accepts.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`: the server can reset the ring.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`: the server fills the `error` field.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `XENSTORE_CONNECTED`: the ring is in its steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`: a ring reset is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `XENSTORE_ERROR_NONE`: no error.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`: a communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`: the server saw an invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: the server saw a protocol violation.
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// `XS_WRITE_NONE`: a write flag string of the historical write protocol.
pub const XS_WRITE_NONE: &str = "NONE";
/// `XS_WRITE_CREATE`.
pub const XS_WRITE_CREATE: &str = "CREATE";
/// `XS_WRITE_CREATE_EXCL`.
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// `struct xsd_sockmsg`: the header in front of every xenstore message, in host
/// (little-endian on x86) byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// `type`: one of the `XS_*` message types.
    pub r#type: u32,
    /// `req_id`: chosen by the client, echoed in the reply.
    pub req_id: u32,
    /// `tx_id`: the transaction, 0 for none.
    pub tx_id: u32,
    /// `len`: bytes of payload after the header.
    pub len: u32,
}

impl XsdSockmsg {
    /// The header's size on the wire.
    pub const SIZE: usize = 16;

    /// The header as it goes on the wire.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        out[0..4].copy_from_slice(&self.r#type.to_le_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes a header from its 16 wire bytes. No field is validated here: the
    /// caller checks `type` and `len` against what it expects.
    pub fn from_bytes(bytes: &[u8; Self::SIZE]) -> Self {
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Self {
            r#type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }
}

/// `struct xenstore_domain_interface`: the page a guest shares with xenstored.
///
/// `req` carries requests (guest produces, daemon consumes), `rsp` replies and
/// watch events (daemon produces). Indices are free-running; a byte lives at
/// `index % XENSTORE_RING_SIZE`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenstoreDomainInterface {
    /// Requests to the xenstore daemon.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Replies and asynchronous watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// How far the daemon has consumed `req`.
    pub req_cons: u32,
    /// How far the guest has produced into `req`.
    pub req_prod: u32,
    /// How far the guest has consumed `rsp`.
    pub rsp_cons: u32,
    /// How far the daemon has produced into `rsp`.
    pub rsp_prod: u32,
    /// `XENSTORE_SERVER_FEATURE_*` bits the daemon supports.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*`, valid with `XENSTORE_SERVER_FEATURE_ERROR`.
    pub error: u32,
}

/// `MASK_XENSTORE_IDX`: a free-running ring index to a byte offset.
pub const fn mask_xenstore_idx(idx: u32) -> usize {
    (idx as usize) & (XENSTORE_RING_SIZE - 1)
}

/// An error name from `xsd_errors[]`: what xenstored puts in an `XS_ERROR` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsError {
    /// `EINVAL`: bad argument (malformed path or payload).
    Einval,
    /// `EACCES`: permission denied.
    Eacces,
    /// `EEXIST`: the node exists.
    Eexist,
    /// `EISDIR`: the node is a directory.
    Eisdir,
    /// `ENOENT`: no such node (or transaction).
    Enoent,
    /// `ENOMEM`: the daemon ran out of memory.
    Enomem,
    /// `ENOSPC`: quota exceeded.
    Enospc,
    /// `EIO`: I/O error in the daemon.
    Eio,
    /// `ENOTEMPTY`: the node has children.
    Enotempty,
    /// `ENOSYS`: the operation is not implemented.
    Enosys,
    /// `EROFS`: the store is read-only.
    Erofs,
    /// `EBUSY`: the daemon is busy.
    Ebusy,
    /// `EAGAIN`: a transaction conflicted; retry it.
    Eagain,
    /// `EISCONN`: already connected.
    Eisconn,
    /// `E2BIG`: the request or a value is too large.
    E2big,
    /// `EPERM`: operation not permitted.
    Eperm,
}

impl XsError {
    /// Every error in `xsd_errors[]`, in the header's order.
    pub const ALL: [Self; 16] = [
        Self::Einval,
        Self::Eacces,
        Self::Eexist,
        Self::Eisdir,
        Self::Enoent,
        Self::Enomem,
        Self::Enospc,
        Self::Eio,
        Self::Enotempty,
        Self::Enosys,
        Self::Erofs,
        Self::Ebusy,
        Self::Eagain,
        Self::Eisconn,
        Self::E2big,
        Self::Eperm,
    ];

    /// The name as it appears on the wire (without the NUL).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Einval => "EINVAL",
            Self::Eacces => "EACCES",
            Self::Eexist => "EEXIST",
            Self::Eisdir => "EISDIR",
            Self::Enoent => "ENOENT",
            Self::Enomem => "ENOMEM",
            Self::Enospc => "ENOSPC",
            Self::Eio => "EIO",
            Self::Enotempty => "ENOTEMPTY",
            Self::Enosys => "ENOSYS",
            Self::Erofs => "EROFS",
            Self::Ebusy => "EBUSY",
            Self::Eagain => "EAGAIN",
            Self::Eisconn => "EISCONN",
            Self::E2big => "E2BIG",
            Self::Eperm => "EPERM",
        }
    }

    /// The Linux/Xen errno value the name stands for (as in `xsd_errors[]` built
    /// with Linux's `errno.h`).
    pub const fn errno(self) -> i32 {
        match self {
            Self::Einval => 22,
            Self::Eacces => 13,
            Self::Eexist => 17,
            Self::Eisdir => 21,
            Self::Enoent => 2,
            Self::Enomem => 12,
            Self::Enospc => 28,
            Self::Eio => 5,
            Self::Enotempty => 39,
            Self::Enosys => 38,
            Self::Erofs => 30,
            Self::Ebusy => 16,
            Self::Eagain => 11,
            Self::Eisconn => 106,
            Self::E2big => 7,
            Self::Eperm => 1,
        }
    }

    /// Parses an `XS_ERROR` payload (the name, with or without its NUL).
    pub fn from_name(bytes: &[u8]) -> Option<Self> {
        let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
        Self::ALL.into_iter().find(|e| e.name().as_bytes() == bytes)
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = XsdSockmsg {
            r#type: XS_WRITE,
            req_id: 0x1234_5678,
            tx_id: 7,
            len: 4096,
        };
        assert_eq!(XsdSockmsg::from_bytes(&h.to_bytes()), h);
    }

    #[test]
    fn error_names_round_trip() {
        for e in XsError::ALL {
            assert_eq!(XsError::from_name(e.name().as_bytes()), Some(e));
            let mut with_nul = [0u8; 16];
            with_nul[..e.name().len()].copy_from_slice(e.name().as_bytes());
            assert_eq!(XsError::from_name(&with_nul[..=e.name().len()]), Some(e));
        }
        assert_eq!(XsError::from_name(b"EWHAT"), None);
        assert_eq!(XsError::from_name(b""), None);
    }

    #[test]
    fn ring_index_masks() {
        assert_eq!(mask_xenstore_idx(0), 0);
        assert_eq!(mask_xenstore_idx(1025), 1);
        assert_eq!(mask_xenstore_idx(u32::MAX), 1023);
    }
}
