// SPDX-License-Identifier: GPL-2.0

//! Chunk mapping and I/O: which chunk holds a logical block, where its copies are on
//! which device, and reading every copy of a block to tell good ones from bad.

use super::super::chunk::Copy;
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format::BLOCK_SIZE;
use super::super::mem::{self, FVec};
use super::{Volume, BLOCK};

impl<D: BlockDev> Volume<D> {
    pub(super) fn chunk_index(&self, logical: u64) -> Option<usize> {
        let i = self
            .chunks
            .partition_point(|c| c.logical <= logical)
            .checked_sub(1)?;
        self.chunks
            .get(i)
            .filter(|c| c.contains(logical))
            .map(|_| i)
    }

    /// Index and start of the chunk holding `block`; `reason` names the failure otherwise.
    pub(super) fn chunk_of(&self, block: u64, reason: &'static str) -> EngineResult<(usize, u64)> {
        self.chunk_index(block)
            .and_then(|i| self.chunks.get(i).map(|c| (i, c.logical)))
            .ok_or(EngineError::Corrupt { block, reason })
    }

    /// Device `devid`, if present.
    pub fn dev_mut(&mut self, devid: u64) -> Option<&mut D> {
        self.devs
            .iter_mut()
            .find(|d| d.devid == devid)?
            .dev
            .as_mut()
    }

    /// Every copy of the block at `logical`.
    pub fn map_block(&self, logical: u64) -> EngineResult<FVec<Copy>> {
        let mut runs = self.runs(logical, BLOCK_SIZE as usize)?;
        runs.pop()
            .map(|(copies, _, _)| copies)
            .ok_or(EngineError::Io)
    }

    /// The pieces of the `len` bytes (whole blocks) at `logical` that are contiguous on
    /// each device: their copies, and their offset and length in the range.
    pub(super) fn runs(
        &self,
        logical: u64,
        len: usize,
    ) -> EngineResult<FVec<(FVec<Copy>, usize, usize)>> {
        let mut out = FVec::new();
        let mut done = 0usize;
        while done < len {
            let at = logical.saturating_add(done as u64);
            let i = self.chunk_index(at).ok_or(EngineError::Corrupt {
                block: at,
                reason: "block address outside every chunk",
            })?;
            let chunk = self.chunks.get(i).ok_or(EngineError::Io)?;
            let (copies, covered) = chunk.map(at, len.saturating_sub(done) as u64)?;
            let covered = (covered & !(BLOCK - 1)) as usize;
            if covered == 0 {
                return Err(EngineError::Corrupt {
                    block: at,
                    reason: "block straddles a stripe boundary",
                });
            }
            out.try_push((copies, done, covered))?;
            done = done.saturating_add(covered);
        }
        Ok(out)
    }

    /// Reads every present copy of block `logical`: the contents of the first that passes
    /// `verify`, and the copies that fail it (or cannot be read).
    pub(super) fn sort_copies(
        &mut self,
        logical: u64,
        verify: impl Fn(&[u8]) -> bool,
    ) -> EngineResult<(Option<FVec<u8>>, FVec<Copy>)> {
        let copies = self.map_block(logical)?;
        let mut good: Option<FVec<u8>> = None;
        let mut bad: FVec<Copy> = FVec::new();
        for copy in copies.iter() {
            let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
            let Some(dev) = self.dev_mut(copy.devid) else {
                continue;
            };
            if dev.read(copy.physical, &mut buf).is_ok() && verify(&buf) {
                good.get_or_insert(buf);
            } else {
                bad.try_push(*copy)?;
            }
        }
        Ok((good, bad))
    }

    /// Writes `data` (whole blocks) at `logical` to every present copy: one write per
    /// contiguous piece of each copy (one for the whole run on mirrors).
    pub(super) fn write_all_copies(&mut self, logical: u64, data: &[u8]) -> EngineResult<()> {
        for (copies, from, len) in self.runs(logical, data.len())?.iter() {
            let piece = data
                .get(*from..from.saturating_add(*len))
                .ok_or(EngineError::Range)?;
            for copy in copies.iter() {
                if let Some(dev) = self.dev_mut(copy.devid) {
                    dev.write(copy.physical, piece)?;
                }
            }
        }
        Ok(())
    }
}
