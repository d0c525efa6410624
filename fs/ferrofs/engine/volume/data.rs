// SPDX-License-Identifier: GPL-2.0

//! Data blocks: their allocation and reference counts, reads and writes striped over the
//! copies of their chunk, and their checksums, against which every read is verified.

use super::super::chunk::{Copy, Kind};
use super::super::crc32c;
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format::BLOCK_SIZE;
use super::super::mem::FVec;
use super::{RefOwner, Volume, BLOCK};
use crate::platform;

/// A data block's size, as a length.
const BLOCK_BYTES: usize = BLOCK_SIZE as usize;

/// Where a piece of a data write goes: bytes `from..from + len` of the run, to byte
/// `physical` of device `devid` (see [`Volume::place_data`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataTarget {
    /// Byte offset of the piece in the run.
    pub from: usize,
    /// Its length in bytes (whole blocks).
    pub len: usize,
    /// The device it goes to.
    pub devid: u64,
    /// Byte offset on that device.
    pub physical: u64,
}

/// Data blocks that follow each other on one device: see [`Volume::map_data`].
pub struct DataPiece {
    /// Byte offset of the first block in the mapped range.
    pub from: usize,
    /// The device holding them.
    pub devid: u64,
    /// Byte offset of the first block on that device.
    pub physical: u64,
    /// The checksum of each block, in order (so also how many blocks there are).
    pub csums: FVec<u32>,
}

impl<D: BlockDev> Volume<D> {
    /// Allocates up to `max` contiguous data blocks (at least one), each with a reference
    /// count of one held by `owner` (the first block's; the others follow it in the file);
    /// returns the first block's address and how many were allocated. They start at
    /// `goal` (a data block address) if that block is free: where the file's previous
    /// extent leads, so that a file written back out of order (an `fsync` beside the
    /// flusher) still lies in file order on disk.
    pub fn alloc_data(
        &mut self,
        max: u64,
        owner: RefOwner,
        goal: Option<u64>,
    ) -> EngineResult<(u64, u64)> {
        let max = max.max(1);
        if let Some(goal) = goal {
            let at = self.chunk_index(goal).and_then(|i| {
                let chunk = self.chunks.get(i).filter(|c| c.kind == Kind::Data)?;
                let n = goal.checked_sub(chunk.logical)? / BLOCK;
                let logical = chunk.logical;
                let (n, count) = self.spaces.get_mut(i)?.take_run_at(n, max)?;
                Some((logical.checked_add(n.saturating_mul(BLOCK))?, count))
            });
            if let Some((start, count)) = at {
                return self.claim_data(start, count, owner);
            }
        }
        for round in 0..2 {
            let mut taken = None;
            for (chunk, space) in self.chunks.iter().zip(self.spaces.iter_mut()) {
                if chunk.kind != Kind::Data {
                    continue;
                }
                if let Some((n, count)) = space.take_run(max) {
                    let start = chunk
                        .logical
                        .checked_add(n.saturating_mul(BLOCK))
                        .ok_or(EngineError::NoSpace)?;
                    taken = Some((start, count));
                    break;
                }
            }
            if let Some((start, count)) = taken {
                return self.claim_data(start, count, owner);
            }
            if round == 0 {
                self.alloc_chunk(Kind::Data)?;
            }
        }
        Err(EngineError::NoSpace)
    }

    /// Gives the `count` data blocks from `start`, just taken from the allocator, their
    /// reference of `owner`; returns them.
    fn claim_data(&mut self, start: u64, count: u64, owner: RefOwner) -> EngineResult<(u64, u64)> {
        for i in 0..count {
            self.add_ref(
                start.saturating_add(i.saturating_mul(BLOCK)),
                1,
                owner.advanced(i),
            )?;
        }
        self.log_data_ref(start, count, 1, owner);
        Ok((start, count))
    }

    /// Whether `[logical, logical + len)` lies inside one data chunk.
    pub fn is_data_range(&self, logical: u64, len: u64) -> bool {
        let Some(last) = logical.checked_add(len).and_then(|e| e.checked_sub(1)) else {
            return false;
        };
        match self.chunk_index(logical).and_then(|i| self.chunks.get(i)) {
            Some(c) => c.kind == Kind::Data && c.contains(last),
            None => false,
        }
    }

    /// Adds `delta` to the reference count of data block `block`, held by `owner`.
    pub fn data_ref(&mut self, block: u64, delta: i64, owner: RefOwner) -> EngineResult<()> {
        match self.chunk_index(block).and_then(|i| self.chunks.get(i)) {
            Some(c) if c.kind == Kind::Data => {
                self.add_ref(block, delta, owner)?;
                self.log_data_ref(block, 1, delta, owner);
            }
            _ => {
                return Err(EngineError::Corrupt {
                    block,
                    reason: "file extent outside every data chunk",
                })
            }
        }
        // A block allocated and dropped within this transaction never reaches the space
        // tree: its space and checksum go now (the space is reusable after the commit, like
        // every block this transaction freed).
        if delta < 0 && !self.delayed.contains_key(block) && self.stored_refcount(block)? == 0 {
            self.pinned.try_push(block)?;
            self.remove_csums(block, 1)?;
        }
        Ok(())
    }

    /// Records the checksums `sums` of the data blocks at `logical`, which the caller
    /// writes to every copy (see [`Self::place_data`]) before the transaction's commit or
    /// its fsync log record flushes the devices.
    pub fn data_written(&mut self, logical: u64, sums: &[u32]) -> EngineResult<()> {
        self.changed();
        self.log_data(logical, sums);
        self.put_csums(logical, sums)
    }

    /// Where the data blocks at `logical` (`len` bytes, whole blocks) go: one
    /// [`DataTarget`] per contiguous piece of every present copy (one per copy for the
    /// whole run on mirrors).
    pub fn place_data(&self, logical: u64, len: usize) -> EngineResult<FVec<DataTarget>> {
        platform::relax();
        if len.checked_rem(BLOCK_BYTES) != Some(0) {
            return Err(EngineError::Invalid("data placement of a partial block"));
        }
        let mut out = FVec::new();
        for (copies, from, len) in self.runs(logical, len)?.iter() {
            for copy in copies.iter() {
                if self
                    .devs
                    .iter()
                    .any(|d| d.devid == copy.devid && d.dev.is_some())
                {
                    out.try_push(DataTarget {
                        from: *from,
                        len: *len,
                        devid: copy.devid,
                        physical: copy.physical,
                    })?;
                }
            }
        }
        Ok(out)
    }

    /// Reads data block `logical` into `buf` (4096 bytes), verifying its checksum and
    /// falling back to the other copies, which are rewritten from a good one.
    pub fn read_data(&mut self, logical: u64, buf: &mut [u8]) -> EngineResult<()> {
        platform::relax();
        let want = self.data_csum(logical)?;
        let copies = self.map_block(logical)?;
        let mut bad: FVec<Copy> = FVec::new();
        for copy in copies.iter() {
            let Some(dev) = self.dev_mut(copy.devid) else {
                continue;
            };
            if dev.read(copy.physical, buf).is_ok() && crc32c::checksum(buf) == want {
                if !self.read_only {
                    for b in bad.iter() {
                        if let Some(dev) = self.dev_mut(b.devid) {
                            if dev.write(b.physical, buf).is_ok() {
                                self.repairs.try_push((logical, b.devid))?;
                            }
                        }
                    }
                }
                return Ok(());
            }
            bad.try_push(*copy)?;
        }
        Err(EngineError::BadData { block: logical })
    }

    /// Reads the data blocks at `logical` into `buf` (whole blocks), one read per stripe
    /// piece from the first copy present; a block whose checksum fails there is read again
    /// through [`Self::read_data`], which tries the other copies and repairs.
    pub fn read_data_run(&mut self, logical: u64, buf: &mut [u8]) -> EngineResult<()> {
        platform::relax();
        if buf.len().checked_rem(BLOCK_SIZE as usize) != Some(0) {
            return Err(EngineError::Invalid("data read of a partial block"));
        }
        for (copies, from, len) in self.runs(logical, buf.len())?.iter() {
            let piece = buf
                .get_mut(*from..from.saturating_add(*len))
                .ok_or(EngineError::Range)?;
            let mut read = false;
            for copy in copies.iter() {
                if let Some(dev) = self.dev_mut(copy.devid) {
                    read = dev.read(copy.physical, piece).is_ok();
                    break;
                }
            }
            let at = logical.saturating_add(*from as u64);
            let sums = self.data_csums(at, piece.len() / BLOCK_BYTES)?;
            for (i, (block, &want)) in piece
                .chunks_mut(BLOCK_SIZE as usize)
                .zip(sums.iter())
                .enumerate()
            {
                if !read || crc32c::checksum(block) != want {
                    let at = at.saturating_add((i as u64).saturating_mul(BLOCK));
                    self.read_data(at, block)?;
                }
            }
        }
        Ok(())
    }

    /// Where to read the data blocks at `logical` (`len` bytes, whole blocks) without the
    /// engine: one [`DataPiece`] per stripe piece, on the first copy present, with the
    /// checksums its blocks must have. A reader whose blocks fail them reads them again
    /// through [`Self::read_data`], which tries the other copies and repairs.
    pub fn map_data(&mut self, logical: u64, len: usize) -> EngineResult<FVec<DataPiece>> {
        if len.checked_rem(BLOCK_BYTES) != Some(0) {
            return Err(EngineError::Invalid("data map of a partial block"));
        }
        let mut out = FVec::new();
        for (copies, from, len) in self.runs(logical, len)?.iter() {
            let Some(copy) = copies.iter().find(|c| {
                self.devs
                    .iter()
                    .any(|d| d.devid == c.devid && d.dev.is_some())
            }) else {
                return Err(EngineError::Io);
            };
            let at = logical.saturating_add(*from as u64);
            let csums = self.data_csums(at, len / BLOCK_BYTES)?;
            out.try_push(DataPiece {
                from: *from,
                devid: copy.devid,
                physical: copy.physical,
                csums,
            })?;
        }
        Ok(out)
    }

    /// Verifies every copy of data block `logical` against its checksum; with `repair`
    /// (and a writable volume), rewrites bad copies from a good one. Returns the devices
    /// of the bad copies and whether they were rewritten.
    pub fn check_data_block(
        &mut self,
        logical: u64,
        repair: bool,
    ) -> EngineResult<FVec<(u64, bool)>> {
        let want = self.data_csum(logical)?;
        let (good, bad) = self.sort_copies(logical, |buf| crc32c::checksum(buf) == want)?;
        let mut out = FVec::new();
        for copy in bad.iter() {
            let mut fixed = false;
            if let (true, false, Some(data)) = (repair, self.read_only, good.as_ref()) {
                if let Some(dev) = self.dev_mut(copy.devid) {
                    fixed = dev.write(copy.physical, data).is_ok();
                }
            }
            out.try_push((copy.devid, fixed))?;
        }
        Ok(out)
    }
}
