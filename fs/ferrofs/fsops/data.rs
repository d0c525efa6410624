// SPDX-License-Identifier: GPL-2.0

//! File data: folios read and written through the page cache, writeback in runs of
//! neighbouring folios, readahead, direct I/O, `fsync`, `fallocate`, `llseek` with
//! `SEEK_DATA` / `SEEK_HOLE`, and `fiemap`.

use kernel::prelude::*;

use crate::engine::error::EngineResult;
use crate::engine::format;
use crate::engine::fs::{self as efs, ReadSource};
use crate::engine::inode::{self as ei, ExtentKind};
use crate::engine::mem::FVec;
use crate::vfs::address_space::{Mapping, WriteFolio};
use crate::vfs::bio::{Plug, MAX_BIO_PAGES};
use crate::vfs::blockdev::{DevReader, FolioRead, KernelDev, WriteGroup};
use crate::vfs::dentry::NoFsScope;
use crate::vfs::error::{eopnotsupp, from_engine};
use crate::vfs::file::{self, File};
use crate::vfs::folio::{LockedFolio, Readahead, WritebackControl, WritebackFolio};
use crate::vfs::inode::{Inode, Refresh};
use crate::vfs::inode_ops::{self, FiemapInfo};
use crate::vfs::iov::IovIter;

use super::Ferrofs;

/// A block's size, in bytes.
pub(super) const BLOCK: u64 = format::BLOCK_SIZE as u64;
/// A block's size, as a length.
const BLOCK_BYTES: usize = format::BLOCK_SIZE as usize;

/// Fills `folio` from the engine (zeros past the end of the file and in holes).
fn fill_folio(folio: &LockedFolio<Ferrofs>) -> Result {
    let inode = folio.inode();
    let ino = inode.ino();
    let pos = folio.pos();
    let size = folio.size();
    let data = inode
        .super_block()
        .info()?
        .with_fs(|fs| fs.read(ino, pos, size))?;
    folio.write_at(0, &data);
    folio.zero(data.len(), size.saturating_sub(data.len()));
    folio.mark_uptodate();
    Ok(())
}

/// `read_folio`.
pub(super) fn read_folio(folio: LockedFolio<Ferrofs>) -> Result {
    let result = fill_folio(&folio);
    folio.unlock();
    result
}

/// `write_begin`: a partial write needs the rest of the folio first.
pub(super) fn write_begin(
    mapping: &Mapping<Ferrofs>,
    pos: u64,
    len: usize,
) -> Result<WriteFolio<Ferrofs>> {
    let folio = mapping.grab_write_folio(pos)?;
    if !folio.is_uptodate() && (pos != folio.pos() || len != folio.size()) {
        fill_folio(&folio)?;
    }
    Ok(folio)
}

/// `write_end`: how much of the copy counts; the size grows over it.
pub(super) fn write_end(
    folio: &LockedFolio<Ferrofs>,
    pos: u64,
    len: usize,
    copied: usize,
) -> usize {
    let mut copied = copied;
    if !folio.is_uptodate() {
        if copied < len {
            // A whole-folio write that fell short: the rest was never read, so none of
            // it counts (the caller retries).
            copied = 0;
        } else {
            folio.mark_uptodate();
        }
    }
    if copied > 0 {
        let inode = folio.inode();
        let end = pos.saturating_add(copied as u64);
        if end > inode.size() {
            inode.set_size(end);
        }
        folio.mark_dirty();
    }
    copied
}

/// Most bytes one engine write takes from writeback: dirty folios that follow each other
/// in a file go to the engine together (one extent, one checksum run) up to this size.
const WRITE_RUN_MAX: usize = 1 << 20;

/// Folios of one file under writeback that follow each other, written together by
/// [`WriteRun::flush`]: copy-on-write to new blocks of every copy of their chunk, by bios
/// straight from the folios, which the engine places and checksums.
struct WriteRun {
    folios: FVec<WritebackFolio<Ferrofs>>,
    /// File offset of the first folio.
    pos: u64,
    /// Where the file's data ends in the run (the last folio may hold less).
    data_end: u64,
}

impl WriteRun {
    fn new() -> Self {
        Self {
            folios: FVec::new(),
            pos: 0,
            data_end: 0,
        }
    }

    /// Adds a folio of `inode` that `writeback_iter` handed out (locked, cleaned for I/O),
    /// writing the run first if the folio does not continue it. The folio is unlocked on
    /// return; if there is no memory to take it, it is dirty again for a later writeback.
    fn add(
        &mut self,
        inode: &Inode<Ferrofs>,
        wbc: &WritebackControl,
        folio: LockedFolio<Ferrofs>,
    ) -> Result {
        let (size, pos) = (inode.size(), folio.pos());
        if pos >= size {
            // Truncated away meanwhile.
            folio.unlock();
            return Ok(());
        }
        let len = usize::try_from(size.saturating_sub(pos))
            .unwrap_or(usize::MAX)
            .min(folio.size());
        if folio.size() != BLOCK_BYTES {
            // The mapping has no large folios; one would go through an engine buffer.
            let mut result = self.flush(inode, wbc);
            result = result.and(write_through_engine(inode, &folio, len));
            if result.is_err() {
                wbc.redirty(folio);
            } else {
                folio.unlock();
            }
            return result;
        }
        let run_bytes = self.folios.len().saturating_mul(BLOCK_BYTES);
        let continues = pos == self.pos.saturating_add(run_bytes as u64)
            && run_bytes.saturating_add(BLOCK_BYTES) <= WRITE_RUN_MAX;
        let mut result = Ok(());
        if !self.folios.is_empty() && !continues {
            result = self.flush(inode, wbc);
        }
        let room = {
            let _nofs = NoFsScope::enter();
            self.folios.try_reserve(1)
        };
        if let Err(err) = room {
            wbc.redirty(folio);
            return result.and(Err(from_engine(err)));
        }
        if self.folios.is_empty() {
            self.pos = pos;
        }
        // Bytes past the end of the file (an mmap store) never reach the disk.
        folio.zero(len, folio.size().saturating_sub(len));
        self.data_end = pos.saturating_add(len as u64);
        let folio = folio.start_writeback();
        wbc.account(&folio);
        // Cannot fail: the room for it is reserved above.
        let pushed = self.folios.try_push(folio);
        result.and(pushed.map_err(from_engine))
    }

    /// Writes the run: the engine places it (new extent, checksums) and submits the bios
    /// from its folios to every copy under its lock, charged to the cgroup `wbc` writes
    /// back for; their writeback ends as the bios complete. A failure is recorded in the
    /// file's mapping for `fsync` to report.
    fn flush(&mut self, inode: &Inode<Ferrofs>, wbc: &WritebackControl) -> Result {
        if self.folios.is_empty() {
            return Ok(());
        }
        let (ino, (_, mtime, _)) = (inode.ino(), inode.times());
        let (pos, data_end) = (self.pos, self.data_end);
        let n = self.folios.len();
        let mut sums: FVec<u32> = FVec::new();
        let room = {
            let _nofs = NoFsScope::enter();
            sums.try_extend_with(n, 0).map_err(from_engine)
        };
        let group = room.and_then(|()| WriteGroup::new(n, wbc));
        let mut group = match group {
            Ok(group) => group,
            Err(err) => {
                while let Some(folio) = self.folios.pop() {
                    folio.set_error(err);
                    folio.end_writeback();
                }
                return Err(err);
            }
        };
        // In file order: the group's folio `k` is the run's block `k`.
        self.folios.reverse();
        while let Some(folio) = self.folios.pop() {
            if let Err(folio) = group.add(folio) {
                // Cannot happen (one block each, room for all); the run fails if it does.
                folio.set_error(EIO);
                folio.end_writeback();
                group.set_error(EIO);
            }
        }
        // The folios do not change under writeback (stable writes).
        let summed = group.checksums(&mut sums);
        let result = if summed.is_ok() && group.len() == n {
            inode.super_block().info().and_then(|info| {
                info.with_fs(|fs| {
                    fs.write_placed(ino, pos, &sums, data_end, mtime, |dev, t| {
                        dev.write_folios(
                            &group,
                            t.physical,
                            t.from / BLOCK_BYTES,
                            t.len / BLOCK_BYTES,
                        )
                    })
                })
            })
        } else {
            Err(EIO)
        };
        match &result {
            Ok(e) => inode.set_blocks(e.bytes),
            Err(err) => group.set_error(*err),
        }
        // The writeback of the folios ends when the last bio completes.
        drop(group);
        result.map(|_| ())
    }
}

/// Writes `len` bytes of `folio` at its place in `inode` through an engine buffer.
fn write_through_engine(
    inode: &Inode<Ferrofs>,
    folio: &LockedFolio<Ferrofs>,
    len: usize,
) -> Result {
    let mut data: FVec<u8> = FVec::new();
    data.try_extend_with(len, 0).map_err(from_engine)?;
    folio.read_at(0, &mut data);
    let (ino, pos, (_, mtime, _)) = (inode.ino(), folio.pos(), inode.times());
    let e = inode
        .super_block()
        .info()?
        .with_fs(|fs| fs.write(ino, pos, &data, mtime))?;
    inode.set_blocks(e.bytes);
    Ok(())
}

/// A piece of a readahead window, as the engine mapped it.
struct Planned {
    /// Byte offset in the file (a block boundary).
    offset: u64,
    /// Length in bytes (whole blocks).
    len: u64,
    source: PlannedSource,
}

enum PlannedSource {
    Zeros,
    /// Blocks on device `devid` from byte `physical`, with their checksums.
    Device {
        devid: u64,
        reader: DevReader,
        physical: u64,
        csums: FVec<u32>,
    },
    /// Read through the engine.
    Engine,
}

/// Maps `len` bytes of `ino` from `pos` for readahead: where each piece is, with a reader
/// of its device, on which the writes still in flight to those blocks have completed.
fn plan_read(
    fs: &mut efs::Fs<KernelDev>,
    ino: u64,
    pos: u64,
    len: u64,
) -> EngineResult<FVec<Planned>> {
    let mut map = fs.map_read(ino, pos, len)?;
    let mut plan = FVec::try_with_capacity(map.len())?;
    // Taken off the end, so reversed first to keep file order.
    map.reverse();
    while let Some(piece) = map.pop() {
        let source = match piece.source {
            ReadSource::Zeros => PlannedSource::Zeros,
            ReadSource::Engine => PlannedSource::Engine,
            ReadSource::Device(d) => match fs.vol.dev_mut(d.devid) {
                Some(dev) => {
                    dev.settle(d.physical, piece.len);
                    PlannedSource::Device {
                        devid: d.devid,
                        reader: dev.reader(),
                        physical: d.physical,
                        csums: d.csums,
                    }
                }
                None => PlannedSource::Engine,
            },
        };
        plan.try_push(Planned {
            offset: piece.offset,
            len: piece.len,
            source,
        })?;
    }
    Ok(plan)
}

/// `readahead`: the window mapped by the engine under its lock, then read without it,
/// straight into the folios by bios of up to 1 MiB that check each block's checksum as
/// they complete and unlock the folios. Holes and preallocated ranges are zeroed; what
/// only the engine reads (or a folio that does not fit a bio) is read through it. Folios
/// left not up to date (an I/O error, a checksum mismatch) are read again, through the
/// engine's copies and repair, and the error reported, by `read_folio`.
pub(super) fn readahead(mut rac: Readahead<Ferrofs>) {
    let inode = rac.inode();
    let (ino, pos, len) = (inode.ino(), rac.pos(), rac.len() as u64);
    let end = pos.saturating_add(len);
    let plan = inode
        .super_block()
        .info()
        .and_then(|info| info.with_fs(|fs| plan_read(fs, ino, pos, len)));
    let Ok(plan) = plan else {
        while let Some(folio) = rac.next_folio() {
            folio.unlock();
        }
        return;
    };
    let _plug = Plug::start();
    // The read being built, and the device it reads.
    let mut read: Option<(u64, FolioRead)> = None;
    let mut at = 0usize;
    while let Some(folio) = rac.next_folio() {
        let fpos = folio.pos();
        while plan
            .get(at)
            .is_some_and(|p| p.offset.saturating_add(p.len) <= fpos)
        {
            at += 1;
        }
        let piece = plan.get(at).filter(|p| p.offset <= fpos);
        let folio = match piece.map(|p| (p, &p.source)) {
            Some((_, PlannedSource::Zeros)) if folio.size() == BLOCK_BYTES => {
                folio.zero(0, folio.size());
                folio.mark_uptodate();
                folio.unlock();
                continue;
            }
            Some((
                p,
                PlannedSource::Device {
                    devid,
                    reader,
                    physical,
                    csums,
                },
            )) => {
                let k = fpos.saturating_sub(p.offset) / BLOCK;
                let block = physical.saturating_add(k.saturating_mul(BLOCK));
                let csum = usize::try_from(k).ok().and_then(|k| csums.get(k)).copied();
                match (csum, read.take()) {
                    (Some(csum), Some((dev, mut r)))
                        if dev == *devid && r.next_offset() == block && !r.is_full() =>
                    {
                        match r.add(folio, csum) {
                            Ok(()) => {
                                read = Some((dev, r));
                                continue;
                            }
                            Err(folio) => {
                                r.submit();
                                folio
                            }
                        }
                    }
                    (Some(csum), current) => {
                        if let Some((_, r)) = current {
                            r.submit();
                        }
                        // Room for the rest of the window, not only of this piece: the
                        // next piece is often the next blocks on the same device (an
                        // extent written by another writeback run), and goes on in the
                        // same bio.
                        let left = end.saturating_sub(fpos);
                        let blocks = usize::try_from(left.div_ceil(BLOCK))
                            .unwrap_or(MAX_BIO_PAGES)
                            .clamp(1, MAX_BIO_PAGES);
                        match reader.read_at(block, blocks) {
                            Ok(mut r) => match r.add(folio, csum) {
                                Ok(()) => {
                                    read = Some((*devid, r));
                                    continue;
                                }
                                Err(folio) => folio,
                            },
                            Err(_) => folio,
                        }
                    }
                    (None, current) => {
                        read = current;
                        folio
                    }
                }
            }
            _ => folio,
        };
        // Through the engine; whatever is being built goes first.
        if let Some((_, r)) = read.take() {
            r.submit();
        }
        let _ = fill_folio(&folio);
        folio.unlock();
    }
    if let Some((_, r)) = read.take() {
        r.submit();
    }
}

/// Largest piece of a direct read or write the engine moves at once.
const DIRECT_PIECE: usize = 1 << 20;

/// `direct_IO`: an `O_DIRECT` read or write of whole blocks, not through the page cache.
/// A request whose file offset, length or memory is not block-aligned is done through the
/// page cache instead, as btrfs does.
///
/// A read goes straight from the devices into the caller's memory: the engine maps each
/// piece of up to 1 MiB under its lock, and a bio over the caller's pages reads it without
/// the lock, each block checked against its checksum before the call returns (a block
/// that fails is read again through the engine, which tries the other copies and
/// repairs). Holes and preallocated ranges are zeroed; the partial block at the end of
/// the file comes through the engine.
///
/// A write passes through one engine buffer, a piece of up to 1 MiB at a time: the
/// checksums must be those of the bytes that reach the disk, and the caller may change
/// its memory while a bio over it is in flight.
pub(super) fn direct_io(file: &File<Ferrofs>, pos: i64, iter: &mut IovIter<'_>) -> Result<usize> {
    let inode = file.inode();
    let Ok(pos) = u64::try_from(pos) else {
        return Err(EINVAL);
    };
    let count = iter.count();
    let mask = u64::from(format::BLOCK_SIZE) - 1;
    if pos & mask != 0 || count as u64 & mask != 0 || iter.alignment() & mask != 0 {
        return Ok(0);
    }
    if iter.is_source() {
        direct_write(inode, pos, count, iter)
    } else {
        direct_read(inode, pos, count, iter)
    }
}

/// The write half of [`direct_io`]. The VFS holds the inode lock and invalidated the page
/// cache over the range.
fn direct_write(
    inode: &Inode<Ferrofs>,
    pos: u64,
    count: usize,
    iter: &mut IovIter<'_>,
) -> Result<usize> {
    let info = inode.super_block().info()?;
    let ino = inode.ino();
    let mask = BLOCK_BYTES - 1;
    let (_, mtime, _) = inode.times();
    // One buffer for every piece, filled from the caller's memory each time.
    let mut buf: FVec<u8> = FVec::new();
    buf.try_extend_with(count.min(DIRECT_PIECE), 0)
        .map_err(from_engine)?;
    let mut done = 0usize;
    while done < count {
        let want = (count - done).min(DIRECT_PIECE);
        let piece = buf.get_mut(..want).ok_or(EINVAL)?;
        let copied = iter.copy_from(piece);
        // Only whole blocks go to the engine; a fault cuts the request there.
        let whole = copied & !mask;
        if whole > 0 {
            let at = pos.checked_add(done as u64).ok_or(EFBIG)?;
            let data = buf.get(..whole).ok_or(EINVAL)?;
            let e = info.with_fs(|fs| fs.write(ino, at, data, mtime))?;
            inode.set_blocks(e.bytes);
            done += whole;
        }
        if copied < want {
            return short_read(done as u64);
        }
    }
    Ok(done)
}

/// The read half of [`direct_io`], up to the end of the file (the VFS wrote its dirty
/// pages back first).
fn direct_read(
    inode: &Inode<Ferrofs>,
    pos: u64,
    count: usize,
    iter: &mut IovIter<'_>,
) -> Result<usize> {
    let info = inode.super_block().info()?;
    let ino = inode.ino();
    let end = pos.saturating_add(count as u64).min(inode.size());
    // Whole blocks below the end of the file go straight into the caller's memory.
    let direct_end = (end & !(BLOCK - 1)).max(pos);
    let mut at = pos;
    while at < direct_end {
        let want = (direct_end - at).min(DIRECT_PIECE as u64);
        let plan = info.with_fs(|fs| plan_read(fs, ino, at, want))?;
        let moved = read_planned(inode, at, want, &plan, iter)?;
        at = at.saturating_add(moved);
        if moved < want {
            return short_read(at - pos);
        }
    }
    if at < end {
        // The partial last block (fewer bytes if the file shrank meanwhile).
        let (moved, faulted) = read_through_engine(inode, at, end - at, iter)?;
        at = at.saturating_add(moved as u64);
        if faulted {
            return short_read(at - pos);
        }
    }
    Ok(usize::try_from(at - pos).unwrap_or(count))
}

/// What a direct read or write that moved `done` bytes and then faulted returns: a fault
/// on the first byte is `EFAULT`.
fn short_read(done: u64) -> Result<usize> {
    match usize::try_from(done) {
        Ok(0) | Err(_) => Err(EFAULT),
        Ok(done) => Ok(done),
    }
}

/// Reads `len` bytes of `inode` from `at` (whole blocks, all below the end of the file)
/// into the caller's memory as `plan` maps them; returns the bytes moved, fewer than
/// `len` where the memory faulted or the file ended meanwhile.
fn read_planned(
    inode: &Inode<Ferrofs>,
    at: u64,
    len: u64,
    plan: &[Planned],
    iter: &mut IovIter<'_>,
) -> Result<u64> {
    let end = at.saturating_add(len);
    let mut cursor = at;
    for piece in plan {
        let piece_end = piece.offset.saturating_add(piece.len).min(end);
        if piece_end <= cursor {
            continue;
        }
        if piece.offset > cursor {
            // Not mapped contiguously: the rest goes through the engine.
            break;
        }
        let n = piece_end - cursor;
        let moved = match &piece.source {
            PlannedSource::Zeros => iter.zero(usize::try_from(n).map_err(|_| EINVAL)?) as u64,
            PlannedSource::Device {
                reader,
                physical,
                csums,
                ..
            } => {
                let skip = (cursor - piece.offset) / BLOCK;
                read_device_direct(inode, cursor, n, reader, *physical, skip, csums, iter)?
            }
            PlannedSource::Engine => read_through_engine(inode, cursor, n, iter)?.0 as u64,
        };
        cursor = cursor.saturating_add(moved);
        if moved < n {
            return Ok(cursor - at);
        }
    }
    if cursor < end {
        let (moved, _) = read_through_engine(inode, cursor, end - cursor, iter)?;
        cursor = cursor.saturating_add(moved as u64);
    }
    Ok(cursor - at)
}

/// Reads `len` bytes of `inode` from `at`, placed on a device from byte `physical` plus
/// `skip` blocks, with the checksums `csums` from the piece's start: by bios straight into
/// the caller's memory, and through the engine from the first block a bio did not bring
/// whole and checked. Returns the bytes moved.
#[allow(clippy::too_many_arguments)]
fn read_device_direct(
    inode: &Inode<Ferrofs>,
    at: u64,
    len: u64,
    reader: &DevReader,
    physical: u64,
    skip: u64,
    csums: &[u32],
    iter: &mut IovIter<'_>,
) -> Result<u64> {
    let mut done = 0u64;
    while done < len {
        let blocks = ((len - done) / BLOCK).min(MAX_BIO_PAGES as u64);
        let first = skip.saturating_add(done / BLOCK);
        let sums = usize::try_from(first)
            .ok()
            .and_then(|first| csums.get(first..first.saturating_add(blocks as usize)));
        let good = match sums {
            Some(sums) if !sums.is_empty() => {
                let offset = physical.saturating_add(first.saturating_mul(BLOCK));
                // A bio that could not be made is no error: the engine reads instead.
                reader.read_direct(iter, offset, sums).unwrap_or(0) as u64
            }
            _ => 0,
        };
        done = done.saturating_add(good);
        let asked = blocks.saturating_mul(BLOCK).max(BLOCK);
        if good < asked {
            // The rest of this bio's share, through the engine (copies, repair, errors).
            let rest = asked.saturating_sub(good).min(len - done);
            let (moved, _) = read_through_engine(inode, at.saturating_add(done), rest, iter)?;
            let moved = moved as u64;
            done = done.saturating_add(moved);
            if moved < rest {
                break;
            }
        }
    }
    Ok(done)
}

/// Reads `len` bytes of `inode` from `at` through the engine (which tries every copy and
/// repairs) into the caller's memory: the bytes moved (fewer at the end of the file), and
/// whether the memory faulted.
fn read_through_engine(
    inode: &Inode<Ferrofs>,
    at: u64,
    len: u64,
    iter: &mut IovIter<'_>,
) -> Result<(usize, bool)> {
    let info = inode.super_block().info()?;
    let (ino, want) = (inode.ino(), usize::try_from(len).map_err(|_| EINVAL)?);
    let data = info.with_fs(|fs| fs.read(ino, at, want))?;
    let piece = data.get(..data.len().min(want)).ok_or(EINVAL)?;
    let copied = iter.copy_to(piece);
    Ok((copied, copied < piece.len()))
}

/// `fsync`: the file's data and times, then a record in the fsync log (or a commit).
pub(super) fn fsync(file: &File<Ferrofs>, start: i64, end: i64) -> Result {
    file.write_and_wait_range(start, end)?;
    let inode = file.inode();
    inode.sync_metadata()?;
    if inode.super_block().is_read_only() {
        return Ok(());
    }
    inode.super_block().info()?.fsync()
}

/// `fallocate`: preallocate (`KEEP_SIZE` or not), punch a hole, or zero a range.
pub(super) fn fallocate(file: &File<Ferrofs>, mode: i32, offset: i64, len: i64) -> Result {
    let (Ok(mode), Ok(offset), Ok(len)) = (
        u32::try_from(mode),
        u64::try_from(offset),
        u64::try_from(len),
    ) else {
        return Err(EINVAL);
    };
    let inode = file.inode();
    // Size and extents change under the inode lock.
    let _locked = inode.lock();
    file.modified()?;
    let supported =
        efs::FALLOC_FL_KEEP_SIZE | efs::FALLOC_FL_PUNCH_HOLE | efs::FALLOC_FL_ZERO_RANGE;
    if mode & !supported != 0 {
        return Err(eopnotsupp());
    }
    if inode.mode() & ei::S_IFMT != ei::S_IFREG {
        return Err(ENODEV);
    }
    let end = offset.checked_add(len).ok_or(EFBIG)?;
    if end > efs::MAX_FILE_SIZE {
        return Err(EFBIG);
    }
    if mode & efs::FALLOC_FL_KEEP_SIZE == 0 && end > inode.size() {
        // A size past the caller's file size limit is refused, as a write's or a
        // truncate's is.
        inode.newsize_ok(end)?;
    }
    let ino = inode.ino();
    let now = inode.now();
    if mode & efs::FALLOC_FL_PUNCH_HOLE == 0 {
        // The engine's size must cover what the page cache holds before it sets a
        // larger one.
        inode.write_and_wait(0, u64::MAX)?;
    }
    if mode & (efs::FALLOC_FL_PUNCH_HOLE | efs::FALLOC_FL_ZERO_RANGE) != 0 {
        // Dirty data in the range must not come back after the punch or the zeroing.
        inode.write_and_wait(offset, end.saturating_sub(1))?;
        inode.truncate_page_cache_range(offset, end.saturating_sub(1));
    }
    let e = inode
        .super_block()
        .info()?
        .with_fs(|fs| fs.fallocate(ino, mode, offset, len, now))?;
    if mode & efs::FALLOC_FL_KEEP_SIZE == 0 && e.size > inode.size() {
        inode.set_size(e.size);
    }
    inode.refresh(&e, Refresh::Meta);
    inode.touch_mtime(now);
    Ok(())
}

/// `llseek`: `SEEK_DATA` and `SEEK_HOLE` here, the rest as the VFS does it.
pub(super) fn llseek(file: &File<Ferrofs>, offset: i64, whence: i32) -> Result<i64> {
    if whence != file::SEEK_DATA && whence != file::SEEK_HOLE {
        return file.generic_llseek(offset, whence);
    }
    let start = u64::try_from(offset).map_err(|_| ENXIO)?;
    let inode = file.inode();
    let pos = {
        // Size and extents stay still meanwhile.
        let _locked = inode.lock();
        seek_data_hole(inode, start, whence == file::SEEK_DATA)?
    };
    file.set_pos(pos)
}

/// `SEEK_DATA` / `SEEK_HOLE` from `offset`: data is what regular extents hold
/// (preallocated ranges read as zeros and count as holes).
fn seek_data_hole(inode: &Inode<Ferrofs>, offset: u64, want_data: bool) -> Result<u64> {
    inode.write_and_wait(0, u64::MAX)?;
    let size = inode.size();
    if offset >= size {
        return Err(ENXIO);
    }
    let ino = inode.ino();
    let info = inode.super_block().info()?;
    let mut pos = offset;
    loop {
        let extents = info.with_fs(|fs| fs.extents(ino, pos, size, 64))?;
        let mut progressed = false;
        for &(off, e) in extents.iter() {
            let end = off.saturating_add(e.len);
            let data = e.kind == ExtentKind::Regular;
            if want_data {
                if data {
                    return Ok(off.max(offset));
                }
            } else if !data || off > pos {
                return Ok(pos.min(size));
            } else {
                pos = end;
            }
            pos = pos.max(end);
            progressed = true;
        }
        if !progressed || pos >= size {
            return if want_data {
                Err(ENXIO)
            } else {
                Ok(pos.min(size))
            };
        }
    }
}

/// How many extents FIEMAP takes from the engine at a time.
const FIEMAP_WINDOW: usize = 64;

/// One extent for FIEMAP: file offset, disk address, length, `FIEMAP_EXTENT_*` flags.
type FiemapExtent = (u64, u64, u64, u32);

/// `fiemap`: the extents of `[start, start + len)` (inline ones have no disk address
/// and are left out), and dirty data over holes as delayed allocation (as btrfs, XFS and
/// ext4 report it) until writeback places it.
pub(super) fn fiemap(
    inode: &Inode<Ferrofs>,
    info: &mut FiemapInfo,
    start: u64,
    len: u64,
) -> Result {
    let len = info.prepare(inode, start, len)?;
    let ino = inode.ino();
    let mapping = (inode.mode() & ei::S_IFMT == ei::S_IFREG).then(|| inode.mapping());
    let fs_info = inode.super_block().info()?;
    let end = start.saturating_add(len);
    let mut pos = start;
    loop {
        // Under the engine's lock, so that no writeback turns dirty pages into extents
        // between the two looks; the user's buffer is filled after, without it.
        let (extents, next, more) =
            fs_info.with_fs(|fs| fiemap_window(fs, ino, mapping, pos, end))?;
        for (i, &(off, disk, len, mut flags)) in extents.iter().enumerate() {
            if !more && i.saturating_add(1) == extents.len() {
                flags |= inode_ops::FIEMAP_EXTENT_LAST;
            }
            if !info.fill_next(off, disk, len, flags)? {
                return Ok(());
            }
        }
        if next >= end || !more {
            return Ok(());
        }
        pos = next;
    }
}

/// The extents FIEMAP reports from `pos` on, up to `end` or as many as fit one window, in
/// file order; where the window ends; and whether anything of the file follows it.
fn fiemap_window(
    fs: &mut efs::Fs<KernelDev>,
    ino: u64,
    mapping: Option<&Mapping<Ferrofs>>,
    pos: u64,
    end: u64,
) -> EngineResult<(FVec<FiemapExtent>, u64, bool)> {
    let placed = fs.extents(ino, pos, end, FIEMAP_WINDOW)?;
    let mut next = match placed.last() {
        Some(&(off, e)) if placed.len() == FIEMAP_WINDOW => off.saturating_add(e.len),
        _ => end,
    };
    let mut delayed = FVec::new();
    if let Some(mapping) = mapping {
        delayed_runs(fs, ino, mapping, pos, next, FIEMAP_WINDOW, &mut delayed)?;
        if delayed.len() == FIEMAP_WINDOW {
            // The window ends in a hole, so no extent straddles its new end.
            if let Some(&(off, len)) = delayed.last() {
                next = next.min(off.saturating_add(len));
            }
        }
    }
    let mut out = FVec::new();
    out.try_reserve(placed.len().saturating_add(delayed.len()))?;
    let mut delayed = delayed.iter().peekable();
    for &(off, e) in placed.iter() {
        if off >= next {
            break;
        }
        while let Some(&&(d_off, d_len)) = delayed.peek().filter(|d| d.0 < off) {
            out.try_push((d_off, 0, d_len, inode_ops::FIEMAP_EXTENT_DELALLOC))?;
            delayed.next();
        }
        let flags = match e.kind {
            ExtentKind::Inline => continue,
            ExtentKind::Prealloc => inode_ops::FIEMAP_EXTENT_UNWRITTEN,
            ExtentKind::Regular => 0,
        };
        out.try_push((off, e.disk, e.len, flags))?;
    }
    for &(d_off, d_len) in delayed {
        out.try_push((d_off, 0, d_len, inode_ops::FIEMAP_EXTENT_DELALLOC))?;
    }
    let more = !fs.extents(ino, next, u64::MAX, 1)?.is_empty() || {
        let mut after = FVec::new();
        if let Some(mapping) = mapping {
            delayed_runs(fs, ino, mapping, next, u64::MAX, 1, &mut after)?;
        }
        !after.is_empty()
    };
    Ok((out, next, more))
}

/// Appends to `out` (up to `max` in it) the byte ranges of whole blocks meeting
/// `[from, to)` that are dirty or under writeback in the page cache over blocks the
/// engine has no extent for: data writeback has yet to place (one page per block).
fn delayed_runs(
    fs: &mut efs::Fs<KernelDev>,
    ino: u64,
    mapping: &Mapping<Ferrofs>,
    from: u64,
    to: u64,
    max: usize,
    out: &mut FVec<(u64, u64)>,
) -> EngineResult<()> {
    let end_page = to.div_ceil(BLOCK);
    mapping.for_each_unwritten_run(from / BLOCK, |start, count| {
        if start >= end_page || out.len() >= max {
            return Ok(false);
        }
        let count = count.min(end_page.saturating_sub(start));
        let room = max.saturating_sub(out.len());
        for &(block, blocks) in fs.unmapped_runs(ino, start, count, room)?.iter() {
            let (off, len) = (block.saturating_mul(BLOCK), blocks.saturating_mul(BLOCK));
            match out.last_mut() {
                // Neighbours split only by a full batch of page runs.
                Some((last, last_len)) if last.saturating_add(*last_len) == off => {
                    *last_len = last_len.saturating_add(len);
                }
                _ => out.try_push((off, len))?,
            }
        }
        Ok(true)
    })
}

/// `writepages`: the dirty folios, in runs of neighbours written with one engine call
/// each, under a block plug so that their bios merge.
pub(super) fn writepages(mapping: &Mapping<Ferrofs>, wbc: &WritebackControl) -> Result {
    let _plug = Plug::start();
    let inode = mapping.host();
    let mut run = WriteRun::new();
    let iterated = wbc.for_each_folio(mapping, |folio| run.add(inode, wbc, folio));
    let flushed = run.flush(inode, wbc);
    iterated.and(flushed)
}
