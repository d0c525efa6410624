// SPDX-License-Identifier: GPL-2.0

//! The engine's block devices in the kernel: whole blocks through each device's page cache,
//! with read-ahead of the blocks of an extent.
//!
//! Writes land in the page cache of the block device and reach the disk at the next
//! [`BlockDev::flush`] (`sync_blockdev` and a cache flush), or at once with FUA: the order
//! the engine's commit relies on.

use core::ptr::NonNull;

use kernel::prelude::*;
use kernel::str::CStr;

use super::bindings;
use super::super_block::SuperBlock;
use crate::engine::dev::BlockDev;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::format::BLOCK_SIZE;

const BLOCK: usize = BLOCK_SIZE as usize;

/// A block device of a mounted ferrofs.
pub(crate) struct KernelDev {
    bdev: NonNull<bindings::block_device>,
    size: u64,
    /// The device file, for devices ferrofs opened itself (not the one the VFS mounted).
    file: Option<NonNull<bindings::file>>,
}

// SAFETY: a `block_device` (and the `file` that holds it open) may be used from any thread;
// the engine serialises its own use of a `KernelDev` under the filesystem lock.
unsafe impl Send for KernelDev {}

fn engine_error(err: core::ffi::c_int) -> EngineError {
    if err == -(kernel::bindings::ENOMEM as core::ffi::c_int) {
        EngineError::NoMemory
    } else {
        EngineError::Io
    }
}

impl KernelDev {
    /// The device the super block was mounted from.
    pub(crate) fn of_super(sb: &SuperBlock) -> Result<Self> {
        // SAFETY: `sb` is a live block-device super block; `s_bdev` stays valid until
        // `kill_block_super`, after the filesystem dropped its devices in `put_super`.
        let bdev = unsafe { bindings::ferrofs_sb_bdev(sb.as_ptr()) };
        let bdev = NonNull::new(bdev).ok_or(EINVAL)?;
        // SAFETY: `bdev` is valid (above).
        let size = unsafe { bindings::ferrofs_bdev_size(bdev.as_ptr()) };
        Ok(Self {
            bdev,
            size,
            file: None,
        })
    }

    /// Opens the block device at `path` for the filesystem of `holder`, with 4096-byte
    /// blocks.
    pub(crate) fn open(path: &CStr, write: bool, holder: &SuperBlock) -> Result<Self> {
        let (path, holder) = (path.as_char_ptr(), holder.as_ptr());
        // SAFETY: `path` is NUL-terminated; `holder` is a live super block, the holder
        // `fs_holder_ops` expects.
        let file = unsafe { bindings::ferrofs_open_bdev(path, write, holder) };
        // SAFETY: `ferrofs_is_err` only inspects the pointer value.
        if unsafe { bindings::ferrofs_is_err(file.cast()) } {
            // SAFETY: as above.
            let err = unsafe { bindings::ferrofs_ptr_err(file.cast()) };
            return Err(Error::from_errno(i32::try_from(err).unwrap_or(-5)));
        }
        let file = NonNull::new(file).ok_or(EINVAL)?;
        // From here on, dropping `dev` closes the file.
        let mut dev = Self {
            bdev: NonNull::dangling(),
            size: 0,
            file: Some(file),
        };
        // SAFETY: `file` is an open block device file.
        let bdev = unsafe { bindings::ferrofs_file_bdev(file.as_ptr()) };
        dev.bdev = NonNull::new(bdev).ok_or(EINVAL)?;
        // SAFETY: `file` is an open block device file that we hold exclusively.
        let ret = unsafe { bindings::set_blocksize(file.as_ptr(), BLOCK_SIZE as i32) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // SAFETY: `dev.bdev` is valid while the file is open.
        dev.size = unsafe { bindings::ferrofs_bdev_size(dev.bdev.as_ptr()) };
        Ok(dev)
    }

    fn blocks(offset: u64, len: usize) -> EngineResult<(u64, usize)> {
        if offset % BLOCK as u64 != 0 || len % BLOCK != 0 {
            return Err(EngineError::Invalid("unaligned block I/O"));
        }
        Ok((offset / BLOCK as u64, len / BLOCK))
    }

    fn write_blocks(&mut self, offset: u64, buf: &[u8], fua: bool) -> EngineResult<()> {
        let (first, _) = Self::blocks(offset, buf.len())?;
        for (i, block) in buf.chunks_exact(BLOCK).enumerate() {
            let nr = first.checked_add(i as u64).ok_or(EngineError::Io)?;
            // SAFETY: `self.bdev` is valid while `self` lives; `block` holds exactly the
            // 4096 bytes the helper reads.
            let ret = unsafe {
                bindings::ferrofs_bdev_write_block(
                    self.bdev.as_ptr(),
                    nr,
                    block.as_ptr().cast(),
                    fua,
                )
            };
            if ret != 0 {
                return Err(engine_error(ret));
            }
        }
        Ok(())
    }
}

impl BlockDev for KernelDev {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> EngineResult<()> {
        let (first, _) = Self::blocks(offset, buf.len())?;
        for (i, block) in buf.chunks_exact_mut(BLOCK).enumerate() {
            let nr = first.checked_add(i as u64).ok_or(EngineError::Io)?;
            // SAFETY: `self.bdev` is valid while `self` lives; `block` has room for exactly
            // the 4096 bytes the helper writes.
            let ret = unsafe {
                bindings::ferrofs_bdev_read_block(self.bdev.as_ptr(), nr, block.as_mut_ptr().cast())
            };
            if ret != 0 {
                return Err(engine_error(ret));
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.write_blocks(offset, buf, false)
    }

    fn flush(&mut self) -> EngineResult<()> {
        // SAFETY: `self.bdev` is valid while `self` lives.
        let ret = unsafe { bindings::ferrofs_bdev_flush(self.bdev.as_ptr()) };
        if ret != 0 {
            return Err(engine_error(ret));
        }
        Ok(())
    }

    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.write_blocks(offset, buf, true)
    }

    fn prefetch(&mut self, offset: u64, len: u64) {
        /// At most this many blocks at once (1 MiB), enough for any readahead window.
        const MAX_PREFETCH_BLOCKS: u64 = 256;
        let block = BLOCK as u64;
        if offset % block != 0 {
            return;
        }
        let first = offset / block;
        let count = len
            .div_ceil(block)
            .min(MAX_PREFETCH_BLOCKS)
            .min((self.size / block).saturating_sub(first)) as u32;
        // SAFETY: `self.bdev` is valid while `self` lives; the helper only starts reads of
        // blocks inside the device into its page cache.
        unsafe { bindings::ferrofs_bdev_prefetch(self.bdev.as_ptr(), first, count) }
    }
}

impl Drop for KernelDev {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // SAFETY: the device file was opened in `open` and is released exactly once, here.
            unsafe { bindings::bdev_fput(file.as_ptr()) };
        }
    }
}
