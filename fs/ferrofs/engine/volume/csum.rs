// SPDX-License-Identifier: GPL-2.0

//! Data checksums: items of the checksum tree, each the CRC-32Cs of a run of consecutive
//! data blocks, keyed by the run's first block, so that a run of writes costs an item per
//! [`inode::CSUMS_PER_ITEM`] blocks and a read finds a run's checksums in one walk.

use super::super::bytes;
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format;
use super::super::inode;
use super::super::key::Key;
use super::super::mem::FVec;
use super::{Tree, Volume, BLOCK};

/// A checksum item read from disk: its first block and its checksums.
struct CsumRun {
    start: u64,
    sums: FVec<u8>,
}

impl CsumRun {
    /// Checks the item at `key` holding `value`: a block-aligned start and a whole, non-empty
    /// number of checksums that does not run past the address space.
    fn decode(key: &Key, value: FVec<u8>) -> EngineResult<Self> {
        let corrupt = EngineError::Corrupt {
            block: key.offset,
            reason: "malformed data checksum item",
        };
        let count = value.len() / 4;
        let fits = u64::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(BLOCK))
            .and_then(|len| key.offset.checked_add(len))
            .is_some();
        if value.is_empty() || value.len() % 4 != 0 || key.offset % BLOCK != 0 || !fits {
            return Err(corrupt);
        }
        Ok(Self {
            start: key.offset,
            sums: value,
        })
    }

    /// Blocks it covers.
    fn count(&self) -> u64 {
        (self.sums.len() / 4) as u64
    }

    /// The first block after it (checked at decode not to overflow).
    fn end(&self) -> u64 {
        self.start
            .saturating_add(self.count().saturating_mul(BLOCK))
    }

    /// The checksum of `block`, if the item covers it.
    fn get(&self, block: u64) -> Option<u32> {
        if block < self.start || block >= self.end() {
            return None;
        }
        let at =
            usize::try_from((block.saturating_sub(self.start) / BLOCK).saturating_mul(4)).ok()?;
        bytes::u32_at(&self.sums, at)
    }
}

impl<D: BlockDev> Volume<D> {
    /// The checksum item covering `block`, if any.
    fn csum_run_at(&mut self, block: u64) -> EngineResult<Option<CsumRun>> {
        match self.last_at_or_before(Tree::CSUM, &inode::csum_key(block))? {
            Some((k, v)) if k.objectid == inode::CSUM_OBJECTID && k.kind == inode::EXTENT_CSUM => {
                let run = CsumRun::decode(&k, v)?;
                Ok((block < run.end()).then_some(run))
            }
            _ => Ok(None),
        }
    }

    /// The recorded checksums of the `count` data blocks from `logical`, in order; a
    /// block without one is corruption.
    pub(super) fn data_csums(&mut self, logical: u64, count: usize) -> EngineResult<FVec<u32>> {
        let missing = |block| EngineError::Corrupt {
            block,
            reason: "data block without a checksum",
        };
        let mut out = FVec::try_with_capacity(count)?;
        let mut run = self.csum_run_at(logical)?;
        let mut block = logical;
        while out.len() < count {
            let sum = match run.as_ref().and_then(|r| r.get(block)) {
                Some(sum) => sum,
                None => {
                    // The next item must start at this very block.
                    let next = self.lookup(Tree::CSUM, &inode::csum_key(block))?;
                    let next = next.ok_or_else(|| missing(block))?;
                    let next = CsumRun::decode(&inode::csum_key(block), next)?;
                    let sum = next.get(block).ok_or_else(|| missing(block))?;
                    run = Some(next);
                    sum
                }
            };
            out.try_push(sum)?;
            block = block.checked_add(BLOCK).ok_or_else(|| missing(block))?;
        }
        Ok(out)
    }

    /// The recorded checksum of data block `logical`.
    pub(super) fn data_csum(&mut self, logical: u64) -> EngineResult<u32> {
        let sums = self.data_csums(logical, 1)?;
        sums.first().copied().ok_or(EngineError::Corrupt {
            block: logical,
            reason: "data block without a checksum",
        })
    }

    /// Records `sums`, the checksums of the data blocks from `logical` (blocks written in
    /// this transaction, which no item covers yet), in items of at most
    /// [`inode::CSUMS_PER_ITEM`].
    pub(super) fn put_csums(&mut self, logical: u64, sums: &[u32]) -> EngineResult<()> {
        let mut start = logical;
        for piece in sums.chunks(inode::CSUMS_PER_ITEM) {
            let mut value = FVec::try_with_capacity(piece.len().saturating_mul(4))?;
            for sum in piece {
                value.try_extend_from_slice(&sum.to_le_bytes())?;
            }
            if piece.len() > 1 {
                self.enable_incompat(format::INCOMPAT_PACKED_CSUMS);
            }
            self.insert(Tree::CSUM, inode::csum_key(start), &value)?;
            let len = (piece.len() as u64).saturating_mul(BLOCK);
            start = start.checked_add(len).ok_or(EngineError::Range)?;
        }
        Ok(())
    }

    /// Drops the checksums of the `count` data blocks from `logical` (freed blocks): the
    /// items covering them go, and what they held of the blocks around stays.
    pub(super) fn remove_csums(&mut self, logical: u64, count: u64) -> EngineResult<()> {
        let end = count
            .checked_mul(BLOCK)
            .and_then(|len| logical.checked_add(len))
            .ok_or(EngineError::Range)?;
        // Items overlapping [logical, end): the one covering `logical`, and those starting
        // inside the range.
        let mut runs: FVec<CsumRun> = FVec::new();
        if let Some(run) = self.csum_run_at(logical)? {
            runs.try_push(run)?;
        }
        let mut inside = self.range(
            Tree::CSUM,
            inode::csum_key(logical.saturating_add(1)),
            inode::csum_key(end.saturating_sub(1)),
        );
        while let Some((k, v)) = self.next_in(&mut inside)? {
            runs.try_push(CsumRun::decode(&k, v)?)?;
        }
        for run in runs.iter() {
            self.remove(Tree::CSUM, &inode::csum_key(run.start))?;
            // The parts before and after the range stay.
            let keep_before = logical.saturating_sub(run.start) / BLOCK;
            let keep_after = run.end().saturating_sub(end.max(run.start)) / BLOCK;
            let bytes_before =
                usize::try_from(keep_before.saturating_mul(4)).map_err(|_| EngineError::Range)?;
            let bytes_after =
                usize::try_from(keep_after.saturating_mul(4)).map_err(|_| EngineError::Range)?;
            if let Some(before) = run.sums.get(..bytes_before).filter(|b| !b.is_empty()) {
                self.insert(Tree::CSUM, inode::csum_key(run.start), before)?;
            }
            let from = run.sums.len().saturating_sub(bytes_after);
            if let Some(after) = run.sums.get(from..).filter(|a| !a.is_empty()) {
                let at = run.end().saturating_sub(keep_after.saturating_mul(BLOCK));
                self.insert(Tree::CSUM, inode::csum_key(at), after)?;
            }
        }
        Ok(())
    }

    /// Drops the checksum of data block `block` (fsck's repair of a checksum no reference
    /// needs).
    pub fn remove_stray_csum(&mut self, block: u64) -> EngineResult<()> {
        self.remove_csums(block, 1)
    }

    /// Every checksum item, for fsck: (first block, blocks covered), or (key offset, 0)
    /// for an item that is malformed.
    pub fn csum_runs(&mut self) -> EngineResult<FVec<(u64, u64)>> {
        let mut out = FVec::new();
        let mut items = self.range(Tree::CSUM, inode::csum_key(0), inode::csum_key(u64::MAX));
        while let Some((k, v)) = self.next_in(&mut items)? {
            match CsumRun::decode(&k, v) {
                Ok(run) => out.try_push((run.start, run.count()))?,
                Err(EngineError::Corrupt { .. }) => out.try_push((k.offset, 0))?,
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }
}
