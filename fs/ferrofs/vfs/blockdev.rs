// SPDX-License-Identifier: GPL-2.0

//! The engine's block devices in the kernel: bios straight to each device.
//!
//! Writes are submitted without waiting (the bio keeps a copy of the data) and counted;
//! [`BlockDev::flush`] waits for those submitted before it and then flushes the device's
//! volatile cache, and FUA writes wait for themselves: the order the engine's commit relies
//! on. A read of blocks written since the last wait first waits for the writes in flight,
//! so it never sees a block older than one written before it; so does readahead, which
//! reads file data straight into page-cache folios without the filesystem lock
//! ([`DevReader`], [`FolioRead`]).

use core::ptr::NonNull;

use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;

use super::bindings;
use super::bio::{Bio, InFlight, MAX_BIO_PAGES};
use super::folio::{LockedFolio, WritebackControl, WritebackFolio};
use super::fs_type::FileSystem;
use super::iov::IovIter;
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
    /// Writes and folio reads submitted and not yet waited for.
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

/// A device that readahead reads file data from without holding the filesystem lock.
pub(crate) struct DevReader(Arc<OpenDev>);

impl DevReader {
    /// A read of up to `blocks` blocks from byte `offset` (a block boundary) of the
    /// device straight into page-cache folios.
    pub(crate) fn read_at(&self, offset: u64, blocks: usize) -> Result<FolioRead> {
        if offset % BLOCK as u64 != 0 || blocks == 0 || blocks > MAX_BIO_PAGES {
            return Err(EINVAL);
        }
        // SAFETY: the device is open while `self.0` lives, and the read keeps a reference
        // to it until it is submitted; then the tracker counts it, and the device's
        // release waits for that.
        let bio = unsafe {
            bindings::ferrofs_read_bio_alloc(self.0.bdev.as_ptr(), blocks as u16, offset >> 9)
        };
        // INVARIANT: a fresh read bio, ours.
        let bio = ReadBio(NonNull::new(bio).ok_or(ENOMEM)?);
        Ok(FolioRead {
            dev: self.0.clone(),
            bio,
            next: offset,
            room: blocks,
        })
    }

    /// A direct read of `csums.len()` blocks from byte `offset` (a block boundary) of the
    /// device straight into the next bytes of `iter`'s memory, by one bio over its pages
    /// (at most [`MAX_BIO_PAGES`] blocks), each block checked against its checksum in
    /// `csums` once the bio completes. Returns the bytes read and checked, from the start,
    /// by which `iter` has advanced: fewer than asked after an I/O error or at the first
    /// block whose checksum differs, and none if the memory could not be pinned; the
    /// caller reads the rest another way.
    pub(crate) fn read_direct(
        &self,
        iter: &mut IovIter<'_>,
        offset: u64,
        csums: &[u32],
    ) -> Result<usize> {
        let len = csums.len().checked_mul(BLOCK).ok_or(EINVAL)?;
        if offset % BLOCK as u64 != 0
            || csums.is_empty()
            || csums.len() > MAX_BIO_PAGES
            || len > iter.count()
        {
            return Err(EINVAL);
        }
        // SAFETY: the device is open while `self.0` lives, and the helper waits for its
        // bio; the iterator is ours for the call (the invariant of `IovIter`) and holds at
        // least `len` bytes; `csums` is live and holds one checksum for each of the
        // `len / BLOCK` blocks, read during the call only.
        let read = unsafe {
            bindings::ferrofs_dio_read(
                self.0.bdev.as_ptr(),
                offset,
                iter.as_ptr(),
                len,
                csums.as_ptr(),
            )
        };
        match usize::try_from(read) {
            Ok(good) if good <= len => Ok(good),
            Ok(_) => Err(EIO),
            Err(_) => Err(Error::from_errno(
                i32::try_from(read).unwrap_or(EIO.to_errno()),
            )),
        }
    }
}

/// Folios under writeback written straight by bios (every copy of their chunk, every
/// stripe piece: [`KernelDev::write_folios`]), whose writeback ends when the last of those
/// bios completes, or when the group is dropped if none was submitted.
///
/// # Invariants
///
/// `group` came from `ferrofs_write_group_alloc`; we hold its builder's reference, and
/// `len` folios are in it.
pub(crate) struct WriteGroup {
    group: NonNull<bindings::ferrofs_write_group>,
    len: usize,
    /// Recorded in the folios' mapping when their writeback ends.
    error: Option<Error>,
}

impl WriteGroup {
    /// A group of at most `max` folios of the writeback `wbc`, whose cgroup its bios are
    /// charged to.
    pub(crate) fn new(max: usize, wbc: &WritebackControl) -> Result<Self> {
        let max = u32::try_from(max).map_err(|_| EINVAL)?;
        // SAFETY: `wbc` is the live request of the running `writepages` (its invariant);
        // the group takes its own reference to the cgroup it reads from it. NULL when out
        // of memory or for an empty group.
        let group = unsafe { bindings::ferrofs_write_group_alloc(max, wbc.as_ptr()) };
        Ok(Self {
            group: NonNull::new(group).ok_or(ENOMEM)?,
            len: 0,
            error: None,
        })
    }

    /// Adds `folio` (one block), whose writeback the group ends from here on; a folio it
    /// cannot take (full, or not one block) comes back.
    pub(crate) fn add<T: FileSystem>(
        &mut self,
        folio: WritebackFolio<T>,
    ) -> core::result::Result<(), WritebackFolio<T>> {
        // SAFETY: `self.group` is live and being built (invariant); `folio` is under
        // writeback, which keeps it alive until the group ends it.
        let ret = unsafe { bindings::ferrofs_write_group_add(self.group.as_ptr(), folio.as_ptr()) };
        if ret != 0 {
            return Err(folio);
        }
        self.len += 1;
        // Its writeback is the group's to end now (`WritebackFolio` has no drop of its own).
        Ok(())
    }

    /// How many folios it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The CRC-32C of each folio, in order, into `sums` (one per folio): computed beside
    /// the caller by workers on other CPUs for a long run. The folios do not change while
    /// under writeback (the super block asks for stable writes).
    pub(crate) fn checksums(&self, sums: &mut [u32]) -> Result {
        if sums.len() != self.len {
            return Err(EINVAL);
        }
        // SAFETY: `self.group` is live (invariant) and its folios are under writeback, so
        // alive; `sums` has room for one checksum per folio (checked above).
        let ret = unsafe {
            bindings::ferrofs_write_group_checksums(
                self.group.as_ptr(),
                sums.as_mut_ptr(),
                self.len as u32,
            )
        };
        if ret == 0 {
            Ok(())
        } else {
            Err(Error::from_errno(ret))
        }
    }

    /// Records `err` for the folios' mapping (`fsync` reports it) when their writeback ends.
    pub(crate) fn set_error(&mut self, err: Error) {
        self.error.get_or_insert(err);
    }
}

impl Drop for WriteGroup {
    fn drop(&mut self) {
        let err = self.error.map_or(0, |e| e.to_errno());
        // SAFETY: the builder's reference, dropped once, here (invariant).
        unsafe { bindings::ferrofs_write_group_finish(self.group.as_ptr(), err) };
    }
}

/// A read bio over locked page-cache folios of one block each, which it unlocks when it
/// completes, up to date only if the block was read and matches its checksum. Dropped
/// unsubmitted, it unlocks them not up to date.
pub(crate) struct FolioRead {
    dev: Arc<OpenDev>,
    bio: ReadBio,
    /// Byte offset on the device of the block the next folio gets.
    next: u64,
    /// How many more folios the bio takes.
    room: usize,
}

/// A read bio from `ferrofs_read_bio_alloc`, ours and not submitted (invariant).
struct ReadBio(NonNull<bindings::bio>);

impl Drop for ReadBio {
    fn drop(&mut self) {
        // SAFETY: our unsubmitted read bio (invariant), dropped once, here.
        unsafe { bindings::ferrofs_read_bio_drop(self.0.as_ptr()) };
    }
}

impl FolioRead {
    /// Byte offset on the device of the block the next folio added gets.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next
    }

    /// Whether it takes no more folios.
    pub(crate) fn is_full(&self) -> bool {
        self.room == 0
    }

    /// Adds `folio` (one block, locked), to get the block at [`Self::next_offset`], which
    /// must have checksum `csum`. From here on the read owns the folio's lock. A folio it
    /// cannot take (full, or not one block) comes back.
    pub(crate) fn add<T: FileSystem>(
        &mut self,
        folio: LockedFolio<T>,
        csum: u32,
    ) -> core::result::Result<(), LockedFolio<T>> {
        if self.room == 0 || folio.size() != BLOCK {
            return Err(folio);
        }
        // SAFETY: `self.bio` is our unsubmitted read bio (invariant); `folio` is locked and
        // stays in the page cache until unlocked, which the bio's completion or drop does.
        let ret = unsafe {
            bindings::ferrofs_read_bio_add_folio(self.bio.0.as_ptr(), folio.as_ptr(), csum)
        };
        if ret != 0 {
            return Err(folio);
        }
        self.room -= 1;
        self.next = self.next.saturating_add(BLOCK as u64);
        // The lock is the bio's now: `folio` goes out of scope without an unlock
        // (`LockedFolio` has no drop of its own).
        Ok(())
    }

    /// Submits the read; its completion checks and unlocks the folios.
    pub(crate) fn submit(self) {
        let Self { dev, bio, .. } = self;
        let raw = bio.0;
        // Submitted below: no longer ours to drop.
        core::mem::forget(bio);
        // SAFETY: `raw` is our built, unsubmitted read bio, not used again; the tracker
        // outlives it, as the device's release waits for every read it counts.
        unsafe { bindings::ferrofs_read_bio_submit(raw.as_ptr(), dev.inflight.as_ptr()) };
    }
}

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

    /// Writes folios `first .. first + count` of `group` (one block each) at byte `offset`
    /// of the device, straight from the page cache, in bios of at most 1 MiB counted by the
    /// device's tracker: a flush waits for them, as for the engine's writes.
    pub(crate) fn write_folios(
        &mut self,
        group: &WriteGroup,
        offset: u64,
        first: usize,
        count: usize,
    ) -> EngineResult<()> {
        Self::check_aligned(offset, count.saturating_mul(BLOCK))?;
        if first
            .checked_add(count)
            .map_or(true, |end| end > group.len())
        {
            return Err(EngineError::Invalid("folios outside the write group"));
        }
        let mut done = 0usize;
        while done < count {
            let n = (count - done).min(MAX_BIO_PAGES);
            let at = offset.saturating_add((done * BLOCK) as u64);
            // SAFETY: `group` is live and being built (its invariant) and holds folios
            // `first + done ..` `+ n` (checked above); the device stays open until every
            // write its tracker counts has completed.
            let ret = unsafe {
                bindings::ferrofs_write_group_submit(
                    group.group.as_ptr(),
                    self.dev.bdev.as_ptr(),
                    at >> 9,
                    (first + done) as u32,
                    n as u32,
                    self.dev.inflight.as_ptr(),
                )
            };
            if ret != 0 {
                return Err(engine_error(Error::from_errno(ret)));
            }
            self.note_written(at, (n * BLOCK) as u64);
            done += n;
        }
        Ok(())
    }

    /// A handle that reads file data from this device without the filesystem lock.
    pub(crate) fn reader(&self) -> DevReader {
        DevReader(self.dev.clone())
    }

    /// Waits for the writes in flight that may overlap `len` bytes at `offset`, which a
    /// reader outside the engine is about to read.
    pub(crate) fn settle(&mut self, offset: u64, len: u64) {
        if self.may_be_in_flight(offset, len) {
            if self.dev.inflight.busy() {
                // Their error is the flush's to report.
                let _ = self.dev.inflight.wait(false);
            }
            self.forget_written();
        }
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
        self.settle(offset, buf.len() as u64);
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
