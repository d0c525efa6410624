// SPDX-License-Identifier: GPL-2.0

//! The engine's block devices in the kernel: bios straight to each device.
//!
//! Writes are submitted without waiting (the bio keeps a copy of the data) and counted;
//! [`BlockDev::flush`] waits for those submitted before it and then flushes the device's
//! volatile cache, and FUA writes wait for themselves: the order the engine's commit relies
//! on. A read of blocks written since the last wait first waits for the writes in flight,
//! so it never sees a block older than one written before it.

use core::ptr::NonNull;

use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;

use super::bindings;
use super::bio::{Bio, InFlight, MAX_BIO_PAGES};
use super::fs_type::FileSystem;
use super::super_block::SuperBlock;
use crate::engine::dev::BlockDev;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::format::BLOCK_SIZE;

const BLOCK: usize = BLOCK_SIZE as usize;

/// How an [`OpenDev`] holds its device file.
#[derive(Clone, Copy)]
enum Hold {
    /// Opened by ferrofs (`device=`): released, claim and file, with `bdev_fput`.
    Opened,
    /// A reference to the file the VFS opened for the super block (`s_bdev_file`): put
    /// with `fput`; the VFS releases the claim and its own reference.
    Shared,
}

/// An open block device of a mounted ferrofs, shared by its [`KernelDev`] and the
/// [`DevFlusher`]s of commits in progress.
///
/// # Invariants
///
/// `file` is an open block device file of which `self` holds a reference (as `hold`
/// says), put when `self` goes; `bdev` is its block device, open while the file is.
struct OpenDev {
    bdev: NonNull<bindings::block_device>,
    file: NonNull<bindings::file>,
    hold: Hold,
    /// Writes submitted and not yet waited for.
    inflight: InFlight,
}

// SAFETY: a `block_device` (and the `file` that holds it open, and a reference to that file)
// may be used and put from any thread;
// the only operations shared between threads are waiting on `inflight` and flushing the
// device's cache, both safe to run concurrently with each other and with submissions.
unsafe impl Send for OpenDev {}
// SAFETY: as above.
unsafe impl Sync for OpenDev {}

impl OpenDev {
    /// Takes over the reference to `file` (held as `hold` says), whose device is `bdev`;
    /// puts it on failure.
    fn new(
        bdev: NonNull<bindings::block_device>,
        file: NonNull<bindings::file>,
        hold: Hold,
    ) -> Result<Arc<Self>> {
        let dev = match InFlight::new() {
            // INVARIANT: the caller hands over a reference to the open `file` of `bdev`.
            Ok(inflight) => Self {
                bdev,
                file,
                hold,
                inflight,
            },
            Err(err) => {
                // SAFETY: the caller hands over its reference to `file`, as `hold` says; it
                // is not used again.
                unsafe { put_file(file, hold) };
                return Err(err);
            }
        };
        // On failure `dev` is dropped, which puts the file.
        Ok(Arc::new(dev, GFP_KERNEL)?)
    }

    /// Waits for the writes submitted so far and flushes the device's volatile cache.
    fn flush(&self) -> Result {
        self.inflight.wait(true)?;
        // SAFETY: `self.bdev` is open while `self` lives.
        let ret = unsafe { bindings::ferrofs_bdev_flush(self.bdev.as_ptr()) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }
}

impl Drop for OpenDev {
    fn drop(&mut self) {
        // Whatever is still in flight completes before the device may close.
        let _ = self.inflight.wait(true);
        let _ = sync_and_invalidate(self.bdev);
        // SAFETY: the reference to the file is ours (invariant) and put exactly once, here.
        unsafe { put_file(self.file, self.hold) };
    }
}

/// Puts a reference to a block device file held as `hold` says.
///
/// # Safety
///
/// The caller owns that reference, and uses neither it nor the device through it again.
unsafe fn put_file(file: NonNull<bindings::file>, hold: Hold) {
    match hold {
        // SAFETY: a file ferrofs opened, released with its claim (caller's promise).
        Hold::Opened => unsafe { bindings::bdev_fput(file.as_ptr()) },
        // SAFETY: a reference of our own to the super block's file (caller's promise).
        Hold::Shared => unsafe { bindings::fput(file.as_ptr()) },
    }
}

/// A block device of a mounted ferrofs, as the engine uses it (under the filesystem lock).
pub(crate) struct KernelDev {
    dev: Arc<OpenDev>,
    size: u64,
    /// Byte ranges written since the last wait for the writes in flight: a read of one of
    /// them waits, other reads need not.
    written: KVec<(u64, u64)>,
    /// Too many ranges to list (or no memory to list them): every read waits.
    written_overflow: bool,
}

/// Ranges [`KernelDev::written`] lists at most.
const MAX_WRITTEN_RANGES: usize = 1024;

/// A device a commit flushes without holding the filesystem lock.
pub(crate) struct DevFlusher(Arc<OpenDev>);

impl DevFlusher {
    /// Waits for every write submitted to the device so far and makes it durable.
    pub(crate) fn flush(&self) -> Result {
        self.0.flush()
    }
}

fn engine_error(err: Error) -> EngineError {
    if err == ENOMEM {
        EngineError::NoMemory
    } else {
        EngineError::Io
    }
}

/// Makes the device's page cache agree with the disk before and after ferrofs uses it
/// with bios: see `ferrofs_bdev_sync_and_invalidate`.
fn sync_and_invalidate(bdev: NonNull<bindings::block_device>) -> Result {
    // SAFETY: `bdev` is an open block device (callers' invariant).
    let ret = unsafe { bindings::ferrofs_bdev_sync_and_invalidate(bdev.as_ptr()) };
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::from_errno(ret))
    }
}

impl KernelDev {
    /// The device the super block was mounted from, held open by a reference of its own
    /// to the super block's device file: valid however long it lives.
    pub(crate) fn of_super<T: FileSystem>(sb: &SuperBlock<T>) -> Result<Self> {
        // SAFETY: `sb` is a live block-device super block; the helper takes a reference to
        // its device file, which is ours from here on (NULL if it has none).
        let file = unsafe { bindings::ferrofs_sb_get_bdev_file(sb.as_ptr()) };
        let file = NonNull::new(file).ok_or(EINVAL)?;
        // SAFETY: `file` is an open block device file (we hold a reference).
        let bdev = unsafe { bindings::ferrofs_file_bdev(file.as_ptr()) };
        let Some(bdev) = NonNull::new(bdev) else {
            // SAFETY: our reference, not used again.
            unsafe { put_file(file, Hold::Shared) };
            return Err(EINVAL);
        };
        // From here on, dropping `dev` puts the reference.
        let dev = OpenDev::new(bdev, file, Hold::Shared)?;
        // SAFETY: `bdev` is open while the file is.
        let size = unsafe { bindings::ferrofs_bdev_size(bdev.as_ptr()) };
        sync_and_invalidate(bdev)?;
        Ok(Self::new(dev, size))
    }

    /// Opens the block device at `path` for the filesystem of `holder`, with 4096-byte
    /// blocks.
    pub(crate) fn open<T: FileSystem>(
        path: &CStr,
        write: bool,
        holder: &SuperBlock<T>,
    ) -> Result<Self> {
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
        // SAFETY: `file` is an open block device file.
        let bdev = unsafe { bindings::ferrofs_file_bdev(file.as_ptr()) };
        let Some(bdev) = NonNull::new(bdev) else {
            // SAFETY: `file` was opened above and is not used again.
            unsafe { bindings::bdev_fput(file.as_ptr()) };
            return Err(EINVAL);
        };
        // From here on, dropping `dev` closes the file.
        let dev = OpenDev::new(bdev, file, Hold::Opened)?;
        // SAFETY: `file` is an open block device file that we hold exclusively.
        let ret = unsafe { bindings::set_blocksize(file.as_ptr(), BLOCK_SIZE as i32) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // SAFETY: `bdev` is valid while the file is open.
        let size = unsafe { bindings::ferrofs_bdev_size(bdev.as_ptr()) };
        sync_and_invalidate(bdev)?;
        Ok(Self::new(dev, size))
    }

    fn new(dev: Arc<OpenDev>, size: u64) -> Self {
        Self {
            dev,
            size,
            written: KVec::new(),
            written_overflow: false,
        }
    }

    /// Notes `len` bytes at `offset` as written and maybe still in flight.
    fn note_written(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        if let Some(last) = self.written.last_mut() {
            if last.1 == offset {
                last.1 = end;
                return;
            }
        }
        if self.written.len() >= MAX_WRITTEN_RANGES
            || self.written.push((offset, end), GFP_NOWAIT).is_err()
        {
            self.written_overflow = true;
        }
    }

    /// Whether a write noted since the last wait overlaps `len` bytes at `offset`.
    fn may_be_in_flight(&self, offset: u64, len: u64) -> bool {
        let end = offset.saturating_add(len);
        self.written_overflow || self.written.iter().any(|&(s, e)| s < end && offset < e)
    }

    /// Forgets the noted writes: the caller waited for every write submitted so far.
    fn forget_written(&mut self) {
        self.written = KVec::new();
        self.written_overflow = false;
    }

    /// A handle that flushes this device without the filesystem lock.
    pub(crate) fn flusher(&self) -> DevFlusher {
        DevFlusher(self.dev.clone())
    }

    fn check_aligned(offset: u64, len: usize) -> EngineResult<()> {
        if offset % BLOCK as u64 != 0 || len % BLOCK != 0 {
            return Err(EngineError::Invalid("unaligned block I/O"));
        }
        Ok(())
    }

    /// Writes `buf` at `offset` in bios of at most 1 MiB: FUA ones waited for, the others
    /// submitted and counted.
    fn write_bios(&mut self, offset: u64, buf: &[u8], fua: bool) -> EngineResult<()> {
        Self::check_aligned(offset, buf.len())?;
        let mut at = offset;
        for piece in buf.chunks(MAX_BIO_PAGES * BLOCK) {
            // SAFETY: the device stays open until the last `Arc<OpenDev>` goes, and its
            // drop waits for every counted write first; FUA writes are waited for here.
            let bio = unsafe { Bio::write(self.dev.bdev, at, piece, fua) }.map_err(engine_error)?;
            if fua {
                bio.submit_wait().map_err(engine_error)?;
            } else {
                bio.submit(&self.dev.inflight);
                self.note_written(at, piece.len() as u64);
            }
            at = at.saturating_add(piece.len() as u64);
        }
        Ok(())
    }
}

impl BlockDev for KernelDev {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> EngineResult<()> {
        Self::check_aligned(offset, buf.len())?;
        if self.may_be_in_flight(offset, buf.len() as u64) {
            if self.dev.inflight.busy() {
                // Their error is the flush's to report.
                let _ = self.dev.inflight.wait(false);
            }
            self.forget_written();
        }
        let mut at = offset;
        for piece in buf.chunks_mut(MAX_BIO_PAGES * BLOCK) {
            // SAFETY: the device is open while `self.dev` lives.
            unsafe { Bio::read(self.dev.bdev, at, piece) }.map_err(engine_error)?;
            at = at.saturating_add(piece.len() as u64);
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.write_bios(offset, buf, false)
    }

    fn flush(&mut self) -> EngineResult<()> {
        self.dev.flush().map_err(engine_error)?;
        self.forget_written();
        Ok(())
    }

    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.write_bios(offset, buf, true)
    }
}
