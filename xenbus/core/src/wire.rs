//! The xenstore wire codec (`io/xs_wire.h`): requests built and checked before they
//! are sent, replies framed and parsed without trusting a byte of them.
//!
//! A message is a 16-byte [`XsdSockmsg`] header and `len` payload bytes. Strings in a
//! payload are NUL-terminated, except a written value (the tail of `XS_WRITE`) and a
//! read value (the whole `XS_READ` reply), which are raw bytes.
//!
//! Contract: every function here returns a [`WireError`] for malformed input; none
//! panics, whatever the bytes.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::xs_wire::{
    XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX, XsError, XsdSockmsg,
};
use xenbus_interface::api::{Access, DomId, Permission, StoreError};

/// Size of the header in front of every message.
pub const HEADER_LEN: usize = XsdSockmsg::SIZE;

/// A xenstore message type (`XS_*`), the known ones only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Each variant is the `XS_*` constant of the same name.
pub enum MsgType {
    Control,
    Directory,
    Read,
    GetPerms,
    Watch,
    Unwatch,
    TransactionStart,
    TransactionEnd,
    Introduce,
    Release,
    GetDomainPath,
    Write,
    Mkdir,
    Rm,
    SetPerms,
    WatchEvent,
    Error,
    IsDomainIntroduced,
    Resume,
    SetTarget,
    ResetWatches,
    DirectoryPart,
}

impl MsgType {
    /// The type with wire number `value`; `None` for a number `xs_wire.h` does not
    /// define (including the retired 20, `XS_RESTRICT`).
    pub const fn from_u32(value: u32) -> Option<Self> {
        use xen_abi::xs_wire as w;
        Some(match value {
            w::XS_CONTROL => Self::Control,
            w::XS_DIRECTORY => Self::Directory,
            w::XS_READ => Self::Read,
            w::XS_GET_PERMS => Self::GetPerms,
            w::XS_WATCH => Self::Watch,
            w::XS_UNWATCH => Self::Unwatch,
            w::XS_TRANSACTION_START => Self::TransactionStart,
            w::XS_TRANSACTION_END => Self::TransactionEnd,
            w::XS_INTRODUCE => Self::Introduce,
            w::XS_RELEASE => Self::Release,
            w::XS_GET_DOMAIN_PATH => Self::GetDomainPath,
            w::XS_WRITE => Self::Write,
            w::XS_MKDIR => Self::Mkdir,
            w::XS_RM => Self::Rm,
            w::XS_SET_PERMS => Self::SetPerms,
            w::XS_WATCH_EVENT => Self::WatchEvent,
            w::XS_ERROR => Self::Error,
            w::XS_IS_DOMAIN_INTRODUCED => Self::IsDomainIntroduced,
            w::XS_RESUME => Self::Resume,
            w::XS_SET_TARGET => Self::SetTarget,
            w::XS_RESET_WATCHES => Self::ResetWatches,
            w::XS_DIRECTORY_PART => Self::DirectoryPart,
            _ => return None,
        })
    }

    /// The wire number.
    pub const fn as_u32(self) -> u32 {
        use xen_abi::xs_wire as w;
        match self {
            Self::Control => w::XS_CONTROL,
            Self::Directory => w::XS_DIRECTORY,
            Self::Read => w::XS_READ,
            Self::GetPerms => w::XS_GET_PERMS,
            Self::Watch => w::XS_WATCH,
            Self::Unwatch => w::XS_UNWATCH,
            Self::TransactionStart => w::XS_TRANSACTION_START,
            Self::TransactionEnd => w::XS_TRANSACTION_END,
            Self::Introduce => w::XS_INTRODUCE,
            Self::Release => w::XS_RELEASE,
            Self::GetDomainPath => w::XS_GET_DOMAIN_PATH,
            Self::Write => w::XS_WRITE,
            Self::Mkdir => w::XS_MKDIR,
            Self::Rm => w::XS_RM,
            Self::SetPerms => w::XS_SET_PERMS,
            Self::WatchEvent => w::XS_WATCH_EVENT,
            Self::Error => w::XS_ERROR,
            Self::IsDomainIntroduced => w::XS_IS_DOMAIN_INTRODUCED,
            Self::Resume => w::XS_RESUME,
            Self::SetTarget => w::XS_SET_TARGET,
            Self::ResetWatches => w::XS_RESET_WATCHES,
            Self::DirectoryPart => w::XS_DIRECTORY_PART,
        }
    }

    /// Every known type.
    pub const ALL: [Self; 22] = [
        Self::Control,
        Self::Directory,
        Self::Read,
        Self::GetPerms,
        Self::Watch,
        Self::Unwatch,
        Self::TransactionStart,
        Self::TransactionEnd,
        Self::Introduce,
        Self::Release,
        Self::GetDomainPath,
        Self::Write,
        Self::Mkdir,
        Self::Rm,
        Self::SetPerms,
        Self::WatchEvent,
        Self::Error,
        Self::IsDomainIntroduced,
        Self::Resume,
        Self::SetTarget,
        Self::ResetWatches,
        Self::DirectoryPart,
    ];
}

/// What is wrong with a message, a path or a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// A payload longer than the limit (`XENSTORE_PAYLOAD_MAX`, or the transport's).
    PayloadTooLarge {
        /// Bytes the payload has (or announced in its header).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A header names a message type `xs_wire.h` does not define.
    UnknownType(u32),
    /// A field that must be NUL-terminated is not.
    MissingNul,
    /// A string field is not valid UTF-8.
    NotUtf8,
    /// A path is empty, too long, or has characters xenstored refuses.
    InvalidPath(&'static str),
    /// A string argument contains a NUL (it would split the field).
    EmbeddedNul,
    /// A reply's fields are not what its type requires.
    Malformed(&'static str),
    /// An `XS_ERROR` reply with a name outside `xsd_errors[]`.
    UnknownErrorName,
}

impl WireError {
    /// A fixed description (what [`StoreError::Protocol`] carries).
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload larger than the limit",
            Self::UnknownType(_) => "unknown message type",
            Self::MissingNul => "field without its terminating NUL",
            Self::NotUtf8 => "string field is not UTF-8",
            Self::InvalidPath(why) | Self::Malformed(why) => why,
            Self::EmbeddedNul => "string argument contains a NUL",
            Self::UnknownErrorName => "unknown error name in XS_ERROR",
        }
    }

    /// A reply-side error: whatever it is, the peer broke the protocol.
    pub fn into_protocol_error(self) -> StoreError {
        StoreError::Protocol(self.reason())
    }

    /// The error as a caller of the request sees it: argument problems keep their
    /// meaning, anything about a reply is a protocol violation.
    pub fn into_store_error(self) -> StoreError {
        match self {
            Self::PayloadTooLarge { len, max } => StoreError::TooLarge { len, max },
            Self::InvalidPath(_) | Self::EmbeddedNul => StoreError::InvalidPath,
            other => StoreError::Protocol(other.reason()),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds {max}")
            }
            Self::UnknownType(t) => write!(f, "unknown message type {t}"),
            other => f.write_str(other.reason()),
        }
    }
}

/// Characters xenstored accepts in a node name (`valid_chars` in xenstored).
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Checks a node path the way xenstored will, so a bad one fails here with
/// [`WireError::InvalidPath`] instead of costing a round trip: not empty, only
/// `[A-Za-z0-9-/_@]`, no `//`, no trailing `/` (except `/` itself), at most
/// `XENSTORE_ABS_PATH_MAX` bytes if absolute, `XENSTORE_REL_PATH_MAX` if relative.
pub fn check_path(path: &str) -> Result<(), WireError> {
    let bytes = path.as_bytes();
    if bytes.is_empty() {
        return Err(WireError::InvalidPath("empty path"));
    }
    let max = if bytes[0] == b'/' {
        XENSTORE_ABS_PATH_MAX
    } else {
        XENSTORE_REL_PATH_MAX
    };
    if bytes.len() > max {
        return Err(WireError::InvalidPath("path longer than xenstore allows"));
    }
    if !bytes.iter().copied().all(is_path_char) {
        return Err(WireError::InvalidPath(
            "path has a character xenstore refuses",
        ));
    }
    if path.contains("//") {
        return Err(WireError::InvalidPath("path has an empty component"));
    }
    if bytes.len() > 1 && path.ends_with('/') {
        return Err(WireError::InvalidPath("path ends with '/'"));
    }
    Ok(())
}

/// Checks a watch path: a node path, or a special `@name` (`@introduceDomain`,
/// `@releaseDomain`).
pub fn check_watch_path(path: &str) -> Result<(), WireError> {
    match path.strip_prefix('@') {
        Some(name) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(()),
        Some(_) => Err(WireError::InvalidPath("malformed special watch path")),
        None => check_path(path),
    }
}

/// A request being built: header fields plus a payload, checked against the
/// limits before it can be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    kind: MsgType,
    tx_id: u32,
    payload: Vec<u8>,
}

impl Request {
    /// An empty request of `kind` in transaction `tx_id` (0 for none).
    pub fn new(kind: MsgType, tx_id: u32) -> Self {
        Self {
            kind,
            tx_id,
            payload: Vec::new(),
        }
    }

    /// Appends a string field and its NUL. Refuses a string with a NUL inside.
    pub fn push_str(&mut self, field: &str) -> Result<&mut Self, WireError> {
        if field.as_bytes().contains(&0) {
            return Err(WireError::EmbeddedNul);
        }
        self.payload.extend_from_slice(field.as_bytes());
        self.payload.push(0);
        Ok(self)
    }

    /// Appends raw bytes, no NUL (the value of `XS_WRITE`).
    pub fn push_raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.payload.extend_from_slice(bytes);
        self
    }

    /// The message type.
    pub fn kind(&self) -> MsgType {
        self.kind
    }

    /// The transaction id.
    pub fn tx_id(&self) -> u32 {
        self.tx_id
    }

    /// The payload built so far.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Header and payload as they go on the wire, with `req_id`. Refuses a payload
    /// longer than `max_payload` (itself capped at `XENSTORE_PAYLOAD_MAX`).
    pub fn encode(&self, req_id: u32, max_payload: usize) -> Result<Vec<u8>, WireError> {
        let max = max_payload.min(XENSTORE_PAYLOAD_MAX);
        let len = self.payload.len();
        if len > max {
            return Err(WireError::PayloadTooLarge { len, max });
        }
        let header = XsdSockmsg {
            r#type: self.kind.as_u32(),
            req_id,
            tx_id: self.tx_id,
            // Cannot truncate: `len <= XENSTORE_PAYLOAD_MAX`.
            len: u32::try_from(len).map_err(|_| WireError::PayloadTooLarge { len, max })?,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + len);
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Checks the payload against `max_payload` without encoding.
    pub fn check_len(&self, max_payload: usize) -> Result<(), WireError> {
        let max = max_payload.min(XENSTORE_PAYLOAD_MAX);
        if self.payload.len() > max {
            return Err(WireError::PayloadTooLarge {
                len: self.payload.len(),
                max,
            });
        }
        Ok(())
    }

    fn with_path(kind: MsgType, tx_id: u32, path: &str) -> Result<Self, WireError> {
        check_path(path)?;
        let mut req = Self::new(kind, tx_id);
        req.push_str(path)?;
        Ok(req)
    }

    /// `XS_READ path`.
    pub fn read(tx_id: u32, path: &str) -> Result<Self, WireError> {
        Self::with_path(MsgType::Read, tx_id, path)
    }

    /// `XS_WRITE path value` (the value without a NUL).
    pub fn write(tx_id: u32, path: &str, value: &[u8]) -> Result<Self, WireError> {
        let mut req = Self::with_path(MsgType::Write, tx_id, path)?;
        req.push_raw(value);
        Ok(req)
    }

    /// `XS_MKDIR path`.
    pub fn mkdir(tx_id: u32, path: &str) -> Result<Self, WireError> {
        Self::with_path(MsgType::Mkdir, tx_id, path)
    }

    /// `XS_RM path`.
    pub fn rm(tx_id: u32, path: &str) -> Result<Self, WireError> {
        Self::with_path(MsgType::Rm, tx_id, path)
    }

    /// `XS_DIRECTORY path`.
    pub fn directory(tx_id: u32, path: &str) -> Result<Self, WireError> {
        Self::with_path(MsgType::Directory, tx_id, path)
    }

    /// `XS_DIRECTORY_PART path offset`: children from byte `offset` of the full
    /// NUL-separated list.
    pub fn directory_part(tx_id: u32, path: &str, offset: usize) -> Result<Self, WireError> {
        let mut req = Self::with_path(MsgType::DirectoryPart, tx_id, path)?;
        req.push_str(&alloc::format!("{offset}"))?;
        Ok(req)
    }

    /// `XS_GET_PERMS path`.
    pub fn get_perms(tx_id: u32, path: &str) -> Result<Self, WireError> {
        Self::with_path(MsgType::GetPerms, tx_id, path)
    }

    /// `XS_SET_PERMS path perm...`; at least one entry (the owner's).
    pub fn set_perms(tx_id: u32, path: &str, perms: &[Permission]) -> Result<Self, WireError> {
        if perms.is_empty() {
            return Err(WireError::Malformed(
                "a permission list needs its owner entry",
            ));
        }
        let mut req = Self::with_path(MsgType::SetPerms, tx_id, path)?;
        for perm in perms {
            req.push_str(&alloc::format!(
                "{}{}",
                char::from(perm.access.letter()),
                perm.domid.0
            ))?;
        }
        Ok(req)
    }

    /// `XS_WATCH path token`.
    pub fn watch(path: &str, token: &str) -> Result<Self, WireError> {
        check_watch_path(path)?;
        let mut req = Self::new(MsgType::Watch, 0);
        req.push_str(path)?.push_str(token)?;
        Ok(req)
    }

    /// `XS_UNWATCH path token`.
    pub fn unwatch(path: &str, token: &str) -> Result<Self, WireError> {
        check_watch_path(path)?;
        let mut req = Self::new(MsgType::Unwatch, 0);
        req.push_str(path)?.push_str(token)?;
        Ok(req)
    }

    /// `XS_TRANSACTION_START` (an empty string argument, as libxenstore sends).
    pub fn transaction_start() -> Self {
        let mut req = Self::new(MsgType::TransactionStart, 0);
        req.push_raw(b"\0");
        req
    }

    /// `XS_TRANSACTION_END T|F`.
    pub fn transaction_end(tx_id: u32, commit: bool) -> Self {
        let mut req = Self::new(MsgType::TransactionEnd, tx_id);
        req.push_raw(if commit { b"T\0" } else { b"F\0" });
        req
    }

    /// `XS_GET_DOMAIN_PATH domid`.
    pub fn get_domain_path(domid: DomId) -> Self {
        let mut req = Self::new(MsgType::GetDomainPath, 0);
        req.push_raw(alloc::format!("{}\0", domid.0).as_bytes());
        req
    }

    /// `XS_RESET_WATCHES`: drops every watch and transaction of this connection.
    pub fn reset_watches() -> Self {
        let mut req = Self::new(MsgType::ResetWatches, 0);
        req.push_raw(b"\0");
        req
    }
}

/// One complete message read from xenstored: header checked (known type, length
/// within the limit), payload not yet interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The message type.
    pub kind: MsgType,
    /// The request id the reply echoes (meaningless in a watch event).
    pub req_id: u32,
    /// The transaction id field.
    pub tx_id: u32,
    /// The payload, exactly `len` bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Header and payload as bytes (what a fake xenstored sends).
    pub fn encode(&self) -> Vec<u8> {
        let header = XsdSockmsg {
            r#type: self.kind.as_u32(),
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Frames a byte stream into [`Frame`]s, however the bytes are split across reads.
///
/// After an error the stream has lost its framing: the decoder stays failed (every
/// later call returns the same error) until [`FrameDecoder::reset`].
#[derive(Debug)]
pub struct FrameDecoder {
    header: [u8; HEADER_LEN],
    header_fill: usize,
    current: Option<(XsdSockmsg, MsgType)>,
    payload: Vec<u8>,
    max_payload: usize,
    failed: Option<WireError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(XENSTORE_PAYLOAD_MAX)
    }
}

impl FrameDecoder {
    /// A decoder refusing payloads over `max_payload` (capped at
    /// `XENSTORE_PAYLOAD_MAX`).
    pub fn new(max_payload: usize) -> Self {
        Self {
            header: [0; HEADER_LEN],
            header_fill: 0,
            current: None,
            payload: Vec::new(),
            max_payload: max_payload.min(XENSTORE_PAYLOAD_MAX),
            failed: None,
        }
    }

    /// Forgets any partial message and a previous failure (a new connection).
    pub fn reset(&mut self) {
        let max = self.max_payload;
        *self = Self::new(max);
    }

    /// True when no partial message is buffered.
    pub fn is_idle(&self) -> bool {
        self.header_fill == 0 && self.current.is_none() && self.failed.is_none()
    }

    /// Consumes bytes from the front of `input` until one frame is complete
    /// (returned) or `input` is empty (`Ok(None)`, partial state kept).
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Frame>, WireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.current.is_none() {
            let want = HEADER_LEN - self.header_fill;
            let take = want.min(input.len());
            let (now, rest) = input.split_at(take);
            self.header[self.header_fill..self.header_fill + take].copy_from_slice(now);
            self.header_fill += take;
            *input = rest;
            if self.header_fill < HEADER_LEN {
                return Ok(None);
            }
            let header = XsdSockmsg::from_bytes(&self.header);
            self.header_fill = 0;
            let Some(kind) = MsgType::from_u32(header.r#type) else {
                return Err(self.fail(WireError::UnknownType(header.r#type)));
            };
            let len = usize::try_from(header.len).unwrap_or(usize::MAX);
            if len > self.max_payload {
                return Err(self.fail(WireError::PayloadTooLarge {
                    len,
                    max: self.max_payload,
                }));
            }
            self.payload = Vec::with_capacity(len);
            self.current = Some((header, kind));
        }
        let Some((header, kind)) = self.current else {
            return Ok(None);
        };
        // `header.len <= max_payload` was checked when the header was taken.
        let len = usize::try_from(header.len).unwrap_or(usize::MAX);
        let take = len.saturating_sub(self.payload.len()).min(input.len());
        let (now, rest) = input.split_at(take);
        self.payload.extend_from_slice(now);
        *input = rest;
        if self.payload.len() < len {
            return Ok(None);
        }
        self.current = None;
        Ok(Some(Frame {
            kind,
            req_id: header.req_id,
            tx_id: header.tx_id,
            payload: core::mem::take(&mut self.payload),
        }))
    }

    fn fail(&mut self, err: WireError) -> WireError {
        self.failed = Some(err.clone());
        self.current = None;
        err
    }
}

/// Splits a payload made only of NUL-terminated fields. An empty payload has no
/// fields; bytes after the last NUL are [`WireError::MissingNul`].
pub fn split_fields(payload: &[u8]) -> Result<Vec<&[u8]>, WireError> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = payload.strip_suffix(b"\0") else {
        return Err(WireError::MissingNul);
    };
    Ok(body.split(|&b| b == 0).collect())
}

fn utf8(bytes: &[u8]) -> Result<&str, WireError> {
    core::str::from_utf8(bytes).map_err(|_| WireError::NotUtf8)
}

/// Parses an `XS_ERROR` payload.
pub fn parse_error(payload: &[u8]) -> Result<XsError, WireError> {
    if !payload.ends_with(b"\0") {
        return Err(WireError::MissingNul);
    }
    XsError::from_name(payload).ok_or(WireError::UnknownErrorName)
}

/// Parses the `OK` acknowledgement of a write-like request. xenstored sends
/// `OK\0`; a missing NUL is tolerated, anything else is not.
pub fn parse_ok(payload: &[u8]) -> Result<(), WireError> {
    match payload {
        b"OK\0" | b"OK" => Ok(()),
        _ => Err(WireError::Malformed("acknowledgement is not \"OK\"")),
    }
}

/// Parses an `XS_DIRECTORY` reply: child names, each NUL-terminated.
pub fn parse_directory(payload: &[u8]) -> Result<Vec<String>, WireError> {
    split_fields(payload)?
        .into_iter()
        .map(|name| {
            if name.is_empty() {
                return Err(WireError::Malformed("empty child name"));
            }
            utf8(name).map(String::from)
        })
        .collect()
}

/// One chunk of an `XS_DIRECTORY_PART` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryPart {
    /// The node's generation count; it changes when the node does.
    pub generation: String,
    /// Children in this chunk.
    pub children: Vec<String>,
    /// Bytes of the full list this chunk covers (advance the offset by this).
    pub consumed: usize,
    /// True for the last chunk (the list's empty terminating string was seen).
    pub complete: bool,
}

/// Parses an `XS_DIRECTORY_PART` reply: `gencnt\0child\0...\0`, the last chunk
/// ending with an extra `\0` (an empty name).
pub fn parse_directory_part(payload: &[u8]) -> Result<DirectoryPart, WireError> {
    let fields = split_fields(payload)?;
    let Some((generation, rest)) = fields.split_first() else {
        return Err(WireError::Malformed("directory part without a generation"));
    };
    if generation.is_empty() || !generation.iter().all(u8::is_ascii_digit) {
        return Err(WireError::Malformed(
            "directory part generation is not a number",
        ));
    }
    let mut children = Vec::with_capacity(rest.len());
    let mut consumed = 0usize;
    let mut complete = false;
    for (i, name) in rest.iter().enumerate() {
        if name.is_empty() {
            if i + 1 != rest.len() {
                return Err(WireError::Malformed("empty child name"));
            }
            complete = true;
            break;
        }
        children.push(String::from(utf8(name)?));
        // A name and its NUL; the sum is bounded by the payload length.
        consumed = consumed.saturating_add(name.len() + 1);
    }
    Ok(DirectoryPart {
        generation: String::from(utf8(generation)?),
        children,
        consumed,
        complete,
    })
}

/// Parses a decimal `u32` field (what `XS_TRANSACTION_START` returns, NUL
/// terminated). No sign, no spaces, no leading `+`, at most 10 digits.
pub fn parse_decimal_u32(field: &[u8]) -> Result<u32, WireError> {
    if field.is_empty() || field.len() > 10 {
        return Err(WireError::Malformed("not a decimal number"));
    }
    let mut value: u32 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return Err(WireError::Malformed("not a decimal number"));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
            .ok_or(WireError::Malformed("number out of range"))?;
    }
    Ok(value)
}

/// Parses the `XS_TRANSACTION_START` reply: a non-zero transaction id.
pub fn parse_transaction_id(payload: &[u8]) -> Result<u32, WireError> {
    let Some(field) = payload.strip_suffix(b"\0") else {
        return Err(WireError::MissingNul);
    };
    match parse_decimal_u32(field)? {
        0 => Err(WireError::Malformed("transaction id 0")),
        id => Ok(id),
    }
}

/// Parses an `XS_GET_PERMS` reply: `<letter><domid>\0` entries, at least one.
pub fn parse_permissions(payload: &[u8]) -> Result<Vec<Permission>, WireError> {
    let fields = split_fields(payload)?;
    if fields.is_empty() {
        return Err(WireError::Malformed("empty permission list"));
    }
    fields
        .into_iter()
        .map(|field| {
            let Some((&letter, digits)) = field.split_first() else {
                return Err(WireError::Malformed("empty permission entry"));
            };
            let access =
                Access::from_letter(letter).ok_or(WireError::Malformed("unknown access letter"))?;
            let domid = u16::try_from(parse_decimal_u32(digits)?)
                .map_err(|_| WireError::Malformed("domid out of range"))?;
            Ok(Permission {
                domid: DomId(domid),
                access,
            })
        })
        .collect()
}

/// A watch event: which path changed, and the token of the watch that saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed (at or below the watched path).
    pub path: String,
    /// The token given at `XS_WATCH`.
    pub token: String,
}

/// Parses an `XS_WATCH_EVENT` payload: `path\0token\0`. Later fields, which no
/// xenstored sends today, are ignored.
pub fn parse_watch_event(payload: &[u8]) -> Result<WatchEvent, WireError> {
    let fields = split_fields(payload)?;
    let (Some(path), Some(token)) = (fields.first(), fields.get(1)) else {
        return Err(WireError::Malformed("watch event without path and token"));
    };
    if path.is_empty() {
        return Err(WireError::Malformed("watch event with an empty path"));
    }
    Ok(WatchEvent {
        path: String::from(utf8(path)?),
        token: String::from(utf8(token)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn msg_types_round_trip_and_unknown_are_refused() {
        for kind in MsgType::ALL {
            assert_eq!(MsgType::from_u32(kind.as_u32()), Some(kind));
        }
        for bad in [20, 23, 0xffff, u32::MAX] {
            assert_eq!(MsgType::from_u32(bad), None);
        }
    }

    #[test]
    fn paths_are_checked_like_xenstored() {
        for good in ["/", "/local/domain/0", "device/vbd/768", "@x", "a_b-c"] {
            check_path(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["", "/a//b", "/a/", "a b", "a\0b", "/a/\u{e9}"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        let abs = alloc::format!("/{}", "a".repeat(XENSTORE_ABS_PATH_MAX - 1));
        assert!(check_path(&abs).is_ok());
        assert!(check_path(&alloc::format!("{abs}a")).is_err());
        let rel = "a".repeat(XENSTORE_REL_PATH_MAX);
        assert!(check_path(&rel).is_ok());
        assert!(check_path(&alloc::format!("{rel}a")).is_err());
        assert!(check_watch_path("@releaseDomain").is_ok());
        assert!(check_watch_path("@").is_err());
        assert!(check_watch_path("@a/b").is_err());
    }

    #[test]
    fn requests_encode_header_and_fields() {
        let bytes = Request::write(7, "/a/b", b"xyz")
            .unwrap()
            .encode(42, XENSTORE_PAYLOAD_MAX)
            .unwrap();
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&bytes[..HEADER_LEN]);
        let header = XsdSockmsg::from_bytes(&header);
        assert_eq!(header.r#type, xen_abi::xs_wire::XS_WRITE);
        assert_eq!((header.req_id, header.tx_id, header.len), (42, 7, 8));
        assert_eq!(&bytes[HEADER_LEN..], b"/a/b\0xyz");

        let perms = [
            Permission {
                domid: DomId(0),
                access: Access::None,
            },
            Permission {
                domid: DomId(5),
                access: Access::Read,
            },
        ];
        let req = Request::set_perms(0, "/a", &perms).unwrap();
        assert_eq!(req.payload(), b"/a\0n0\0r5\0");
        assert_eq!(parse_permissions(b"n0\0r5\0").unwrap(), perms);
        assert_eq!(Request::transaction_end(3, true).payload(), b"T\0");
        assert_eq!(Request::watch("/a", "tok").unwrap().payload(), b"/a\0tok\0");
        assert_eq!(
            Request::directory_part(0, "/a", 17).unwrap().payload(),
            b"/a\x0017\0"
        );
        assert_eq!(Request::get_domain_path(DomId(3)).payload(), b"3\0");
    }

    #[test]
    fn payload_limit_is_enforced_before_sending() {
        let path = "/k";
        let fits = vec![b'v'; XENSTORE_PAYLOAD_MAX - path.len() - 1];
        let req = Request::write(0, path, &fits).unwrap();
        assert!(req.encode(1, XENSTORE_PAYLOAD_MAX).is_ok());
        let mut over = fits.clone();
        over.push(b'v');
        let req = Request::write(0, path, &over).unwrap();
        assert_eq!(
            req.encode(1, XENSTORE_PAYLOAD_MAX),
            Err(WireError::PayloadTooLarge {
                len: XENSTORE_PAYLOAD_MAX + 1,
                max: XENSTORE_PAYLOAD_MAX
            })
        );
        // A transport may lower the limit (the Linux xenbus device buffers 4096
        // bytes including the header); nothing raises it.
        assert!(req.check_len(usize::MAX).is_err());
        let small = Request::write(0, path, &fits).unwrap();
        assert!(small.check_len(4080).is_err());
    }

    #[test]
    fn string_arguments_with_nul_are_refused() {
        assert_eq!(
            Request::watch("/a", "t\0k").unwrap_err(),
            WireError::EmbeddedNul
        );
    }

    #[test]
    fn decoder_frames_split_and_joined_messages() {
        let a = Frame {
            kind: MsgType::Read,
            req_id: 1,
            tx_id: 0,
            payload: b"value".to_vec(),
        };
        let b = Frame {
            kind: MsgType::WatchEvent,
            req_id: 0,
            tx_id: 0,
            payload: b"/p\0t\0".to_vec(),
        };
        let mut stream = a.encode();
        stream.extend(b.encode());
        for chunk in 1..=stream.len() {
            let mut dec = FrameDecoder::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                let mut input = piece;
                while let Some(frame) = dec.decode(&mut input).unwrap() {
                    got.push(frame);
                }
                assert!(input.is_empty());
            }
            assert_eq!(got, vec![a.clone(), b.clone()], "chunk {chunk}");
            assert!(dec.is_idle());
        }
    }

    #[test]
    fn decoder_rejects_oversize_and_unknown_type_and_stays_failed() {
        let mut header = XsdSockmsg {
            r#type: xen_abi::xs_wire::XS_READ,
            req_id: 1,
            tx_id: 0,
            len: 4097,
        };
        let mut dec = FrameDecoder::default();
        let bytes = header.to_bytes();
        let mut input = &bytes[..];
        assert_eq!(
            dec.decode(&mut input),
            Err(WireError::PayloadTooLarge {
                len: 4097,
                max: 4096
            })
        );
        let mut more = &b"x"[..];
        assert!(dec.decode(&mut more).is_err());
        dec.reset();
        header.len = 0;
        header.r#type = 99;
        let bytes = header.to_bytes();
        let mut input = &bytes[..];
        assert_eq!(dec.decode(&mut input), Err(WireError::UnknownType(99)));
    }

    #[test]
    fn replies_parse_strictly() {
        assert_eq!(parse_error(b"EAGAIN\0"), Ok(XsError::Eagain));
        assert_eq!(parse_error(b"EAGAIN"), Err(WireError::MissingNul));
        assert_eq!(parse_error(b"EWHAT\0"), Err(WireError::UnknownErrorName));
        assert!(parse_ok(b"OK\0").is_ok());
        assert!(parse_ok(b"NO\0").is_err());
        assert_eq!(parse_directory(b""), Ok(vec![]));
        assert_eq!(
            parse_directory(b"a\0bb\0"),
            Ok(vec![String::from("a"), String::from("bb")])
        );
        assert_eq!(parse_directory(b"a\0bb"), Err(WireError::MissingNul));
        assert!(parse_directory(b"a\0\0").is_err());
        assert!(parse_directory(b"\xff\0").is_err());
        assert_eq!(parse_transaction_id(b"12\0"), Ok(12));
        assert!(parse_transaction_id(b"12").is_err());
        assert!(parse_transaction_id(b"0\0").is_err());
        assert!(parse_transaction_id(b"-1\0").is_err());
        assert!(parse_transaction_id(b"4294967296\0").is_err());
        assert!(parse_permissions(b"x0\0").is_err());
        assert!(parse_permissions(b"r70000\0").is_err());
        assert!(parse_permissions(b"").is_err());
        assert_eq!(
            parse_watch_event(b"/a/b\0tok\0"),
            Ok(WatchEvent {
                path: String::from("/a/b"),
                token: String::from("tok")
            })
        );
        assert!(parse_watch_event(b"/a/b\0").is_err());
        assert!(parse_watch_event(b"/a/b\0tok").is_err());
    }

    #[test]
    fn directory_parts_parse() {
        let part = parse_directory_part(b"5\0a\0bc\0").unwrap();
        assert_eq!(part.generation, "5");
        assert_eq!(part.children, vec![String::from("a"), String::from("bc")]);
        assert_eq!(part.consumed, 5);
        assert!(!part.complete);
        let last = parse_directory_part(b"5\0d\0\0").unwrap();
        assert!(last.complete);
        assert_eq!(last.children, vec![String::from("d")]);
        assert!(parse_directory_part(b"5\0\0d\0").is_err());
        assert!(parse_directory_part(b"x\0").is_err());
        assert!(parse_directory_part(b"").is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn path() -> impl Strategy<Value = String> {
            "(/[a-zA-Z0-9_@-]{1,12}){1,6}"
        }

        proptest! {
            #[test]
            fn write_requests_round_trip_through_any_split(
                p in path(),
                value in proptest::collection::vec(any::<u8>(), 0..600),
                req_id in any::<u32>(),
                tx_id in any::<u32>(),
                chunk in 1usize..64,
            ) {
                let bytes = Request::write(tx_id, &p, &value).unwrap().encode(req_id, 4096).unwrap();
                let mut dec = FrameDecoder::default();
                let mut frames = Vec::new();
                for piece in bytes.chunks(chunk) {
                    let mut input = piece;
                    while let Some(f) = dec.decode(&mut input).unwrap() {
                        frames.push(f);
                    }
                }
                prop_assert_eq!(frames.len(), 1);
                let f = &frames[0];
                prop_assert_eq!(f.kind, MsgType::Write);
                prop_assert_eq!((f.req_id, f.tx_id), (req_id, tx_id));
                let mut expected = p.clone().into_bytes();
                expected.push(0);
                expected.extend_from_slice(&value);
                prop_assert_eq!(&f.payload, &expected);
            }

            #[test]
            fn directories_round_trip(names in proptest::collection::vec("[a-z0-9_-]{1,10}", 0..40)) {
                let mut payload = Vec::new();
                for n in &names {
                    payload.extend_from_slice(n.as_bytes());
                    payload.push(0);
                }
                prop_assert_eq!(parse_directory(&payload).unwrap(), names);
            }

            #[test]
            fn permissions_round_trip(entries in proptest::collection::vec((0u8..4, any::<u16>()), 1..10)) {
                let perms: Vec<Permission> = entries.iter().map(|&(a, d)| Permission {
                    domid: DomId(d),
                    access: [Access::None, Access::Read, Access::Write, Access::Both][usize::from(a)],
                }).collect();
                let req = Request::set_perms(0, "/x", &perms).unwrap();
                prop_assert_eq!(parse_permissions(&req.payload()[3..]).unwrap(), perms);
            }

            #[test]
            fn arbitrary_streams_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                chunk in 1usize..128,
            ) {
                let mut dec = FrameDecoder::default();
                'outer: for piece in bytes.chunks(chunk) {
                    let mut input = piece;
                    loop {
                        match dec.decode(&mut input) {
                            Ok(Some(f)) => prop_assert!(f.payload.len() <= XENSTORE_PAYLOAD_MAX),
                            Ok(None) => break,
                            Err(_) => break 'outer,
                        }
                    }
                }
                let _ = parse_directory(&bytes);
                let _ = parse_directory_part(&bytes);
                let _ = parse_permissions(&bytes);
                let _ = parse_transaction_id(&bytes);
                let _ = parse_watch_event(&bytes);
                let _ = parse_error(&bytes);
            }

            #[test]
            fn arbitrary_paths_never_panic_and_valid_ones_pass(s in "\\PC{0,40}", p in path()) {
                let _ = check_path(&s);
                let _ = check_watch_path(&s);
                prop_assert!(check_path(&p).is_ok());
            }

            #[test]
            fn decimal_parser_matches_std(n in any::<u32>()) {
                prop_assert_eq!(parse_decimal_u32(alloc::format!("{n}").as_bytes()), Ok(n));
            }
        }
    }
}
