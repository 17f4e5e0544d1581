//! A minimal writer of "newc" cpio archives, the format the Linux kernel unpacks
//! as an initramfs. Used for the small per-boot archive (the command, the shipped
//! files) that goes after the cached dom0 base archive; the kernel unpacks
//! concatenated archives in order, so later entries replace earlier ones.

use std::collections::BTreeSet;
use std::io::{self, Write};

/// Builds one archive in memory.
#[derive(Debug, Default)]
pub struct Archive {
    bytes: Vec<u8>,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let too_big = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: too big for cpio"),
            )
        };
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let name_size = u32::try_from(name.len() + 1).map_err(|_| too_big())?;
        self.next_ino += 1;
        let fields = [
            self.next_ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            0,
            0,
            name_size,
            0,
        ];
        write!(self.bytes, "070701")?;
        for field in fields {
            write!(self.bytes, "{field:08x}")?;
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    fn pad(&mut self) {
        while self.bytes.len() % 4 != 0 {
            self.bytes.push(0);
        }
    }

    /// Adds directory `path` (and its parents), mode 0755, once.
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let path = path.trim_matches('/');
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                let name = prefix.clone();
                self.entry(&name, S_IFDIR | 0o755, 2, &[])?;
            }
        }
        Ok(())
    }

    /// Adds regular file `path` (absolute or relative to the root) with `data`
    /// and permission bits `perm`, creating its parent directories.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.entry(path, S_IFREG | (perm & 0o7777), 1, data)
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, &[])?;
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_tool_reads_what_we_write() {
        let mut archive = Archive::new();
        archive
            .file("/rig/files/hello", 0o755, b"hello world\n")
            .unwrap();
        archive.file("rig/cmd", 0o644, b"exit 7\n").unwrap();
        let bytes = archive.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        // Cross-check with GNU cpio when it is installed (it is wherever the rig runs).
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            return;
        };
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        let listing = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        assert_eq!(names, ["rig", "rig/files", "rig/files/hello", "rig/cmd"]);
        assert!(listing.contains("-rwxr-xr-x"), "{listing}");
    }
}
