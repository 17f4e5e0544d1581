//! Report lines on port 0xE9 (`xl dmesg`) and on the PV console ring
//! (xenconsoled's log in dom0).

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Write as _;

use xenbus_core::guest::console::Console;

use crate::x86::{X86, debug_port_write};

/// Where lines go.
#[derive(Debug, Default)]
pub struct Log {
    console: RefCell<Option<Console<X86>>>,
    /// Lines written before the console existed, replayed onto it.
    early: RefCell<Vec<String>>,
}

impl Log {
    /// Port 0xE9 only, until [`Log::set_console`].
    pub const fn new() -> Self {
        Self {
            console: RefCell::new(None),
            early: RefCell::new(Vec::new()),
        }
    }

    /// Also writes to the PV console from now on (and replays what was
    /// written before, so the console log is complete).
    pub fn set_console(&self, console: Option<Console<X86>>) {
        if let Some(console) = console.as_ref() {
            for line in self.early.borrow_mut().drain(..) {
                let _ = console.write(line.as_bytes(), 10_000);
            }
        }
        *self.console.borrow_mut() = console;
    }

    /// Writes one line.
    pub fn line(&self, args: core::fmt::Arguments<'_>) {
        let mut s = String::new();
        let _ = s.write_fmt(args);
        s.push('\n');
        debug_port_write(s.as_bytes());
        match self.console.borrow().as_ref() {
            Some(console) => {
                let _ = console.write(s.as_bytes(), 10_000);
            }
            None => self.early.borrow_mut().push(s),
        }
    }

    /// Waits until xenconsoled has read everything (before power-off).
    pub fn drain(&self) {
        if let Some(console) = self.console.borrow().as_ref() {
            let _ = console.drain(100_000);
        }
    }
}
