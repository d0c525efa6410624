// SPDX-License-Identifier: GPL-2.0

//! [`BlockDev`] over a regular file or a block device node.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ferrofs_engine::dev::BlockDev;
use ferrofs_engine::error::{EngineError, EngineResult};

/// A file or block device opened for the engine.
pub struct FileDev {
    file: File,
    size: u64,
    /// Path, for messages.
    pub path: String,
}

impl FileDev {
    /// Opens `path` read-write (or read-only).
    pub fn open(path: &Path, writable: bool) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        // The kernel module writes its devices with bios of its own, around their page
        // cache: pages an earlier reader left there may be stale now (a check of a
        // filesystem mounted read-only, as xfstests does after every test). Dropping them
        // makes every read here come from the device.
        if std::os::unix::fs::FileTypeExt::is_block_device(&file.metadata()?.file_type()) {
            // A length of 0: up to the end of the device.
            rustix::fs::fadvise(&file, 0, 0, rustix::fs::Advice::DontNeed)?;
        }
        // Works for block devices too, where the metadata length is 0.
        let size = file_size(&file)?;
        Ok(Self {
            file,
            size,
            path: path.display().to_string(),
        })
    }
}

fn file_size(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    let end = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(end)
}

fn io_err(_: io::Error) -> EngineError {
    EngineError::Io
}

impl BlockDev for FileDev {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> EngineResult<()> {
        self.file.read_exact_at(buf, offset).map_err(io_err)
    }

    fn write(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.file.write_all_at(buf, offset).map_err(io_err)
    }

    fn flush(&mut self) -> EngineResult<()> {
        self.file.sync_data().map_err(io_err)
    }

    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.write(offset, buf)?;
        self.flush()
    }
}
