//! `io/xenbus.h`: the states a frontend and a backend publish in xenstore
//! (`<dir>/state`) while they negotiate a connection.

use core::fmt;

/// `enum xenbus_state`, as written in decimal to a device's `state` node.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XenbusState {
    /// `XenbusStateUnknown`: the node is missing or unreadable.
    Unknown = 0,
    /// `XenbusStateInitialising`: the device is being set up.
    Initialising = 1,
    /// `XenbusStateInitWait`: the backend published its features and waits for the
    /// frontend's details.
    InitWait = 2,
    /// `XenbusStateInitialised`: the frontend published its rings and event channels.
    Initialised = 3,
    /// `XenbusStateConnected`: both ends are ready for I/O.
    Connected = 4,
    /// `XenbusStateClosing`: the device is being torn down.
    Closing = 5,
    /// `XenbusStateClosed`: the device is gone; it may be set up again.
    Closed = 6,
    /// `XenbusStateReconfiguring`: a connected device is changing its setup.
    Reconfiguring = 7,
    /// `XenbusStateReconfigured`: the change is done.
    Reconfigured = 8,
}

impl XenbusState {
    /// Every state, in numeric order.
    pub const ALL: [Self; 9] = [
        Self::Unknown,
        Self::Initialising,
        Self::InitWait,
        Self::Initialised,
        Self::Connected,
        Self::Closing,
        Self::Closed,
        Self::Reconfiguring,
        Self::Reconfigured,
    ];

    /// The state with number `value`, or `None` for a number Xen does not define.
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Unknown),
            1 => Some(Self::Initialising),
            2 => Some(Self::InitWait),
            3 => Some(Self::Initialised),
            4 => Some(Self::Connected),
            5 => Some(Self::Closing),
            6 => Some(Self::Closed),
            7 => Some(Self::Reconfiguring),
            8 => Some(Self::Reconfigured),
            _ => None,
        }
    }

    /// Parses a `state` node's value (decimal, surrounding ASCII white space and a
    /// trailing NUL tolerated). `None` for anything else: the peer is not trusted.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes).trim_ascii();
        if bytes.is_empty() || bytes.len() > 10 {
            return None;
        }
        let mut value: u32 = 0;
        for &b in bytes {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
        }
        Self::from_u32(value)
    }

    /// The state's number.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Unknown => "Unknown",
            Self::Initialising => "Initialising",
            Self::InitWait => "InitWait",
            Self::Initialised => "Initialised",
            Self::Connected => "Connected",
            Self::Closing => "Closing",
            Self::Closed => "Closed",
            Self::Reconfiguring => "Reconfiguring",
            Self::Reconfigured => "Reconfigured",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_state() {
        for state in XenbusState::ALL {
            let mut buf = [0u8; 4];
            buf[0] = b'0' + u8::try_from(state.as_u32()).unwrap();
            assert_eq!(XenbusState::parse(&buf[..1]), Some(state));
            assert_eq!(XenbusState::from_u32(state.as_u32()), Some(state));
        }
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [&b""[..], b"9", b"-1", b"4x", b"99999999999", b" ", b"0x4"] {
            assert_eq!(XenbusState::parse(bad), None, "{bad:?}");
        }
        assert_eq!(XenbusState::parse(b" 4\n"), Some(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"6\0"), Some(XenbusState::Closed));
    }
}
