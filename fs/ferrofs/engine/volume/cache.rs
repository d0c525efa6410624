// SPDX-License-Identifier: GPL-2.0

//! The tree block cache, and reading tree blocks: every block read is checked against the
//! pointer that led to it, and copies that fail are repaired from a good one.

use super::super::chunk::Copy;
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format::BLOCK_SIZE;
use super::super::mem::{self, FVec};
use super::super::node::{Node, NodeRef};
use super::Volume;

/// A tree block in the cache, and whether it changed since it was read or last written.
pub(super) struct Cached {
    pub(super) node: Node,
    pub(super) dirty: bool,
    /// Read since the last sweep of [`Volume::evict_cold`] passed it (the "clock" bit).
    pub(super) used: bool,
}

impl Cached {
    /// A block just read or made.
    pub(super) fn new(node: Node, dirty: bool) -> Self {
        Self {
            node,
            dirty,
            used: true,
        }
    }
}

/// Decodes tree block `at` of tree `owner` from `buf` and checks it against `at`.
fn decode_checked(fsid: &[u8; 16], at: &NodeRef, owner: u64, buf: &[u8]) -> EngineResult<Node> {
    let node = Node::decode(fsid, at.block, buf)?;
    node.verify(at, owner)
        .map_err(|reason| EngineError::Corrupt {
            block: at.block,
            reason,
        })?;
    Ok(node)
}

impl<D: BlockDev> Volume<D> {
    /// Reads and verifies the tree block `at` points at, of tree `owner`, trying each copy
    /// in turn and rewriting copies that failed (a bad checksum, or contents other than
    /// the pointer says: a lost, misdirected or stale write) from the first good one.
    fn load(&mut self, at: &NodeRef, owner: u64) -> EngineResult<Node> {
        let logical = at.block;
        let copies = self.map_block(logical)?;
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let mut first_err = None;
        let mut bad: FVec<Copy> = FVec::new();
        let fsid = self.sb.fsid;
        for copy in copies.iter() {
            let Some(dev) = self.dev_mut(copy.devid) else {
                continue;
            };
            let result = dev
                .read(copy.physical, &mut buf)
                .and_then(|()| decode_checked(&fsid, at, owner, &buf));
            match result {
                Ok(node) => {
                    if !self.read_only {
                        for b in bad.iter() {
                            if let Some(dev) = self.dev_mut(b.devid) {
                                if dev.write(b.physical, &buf).is_ok() {
                                    self.repairs.try_push((logical, b.devid))?;
                                }
                            }
                        }
                    }
                    return Ok(node);
                }
                Err(err) => {
                    first_err.get_or_insert(err);
                    bad.try_push(*copy)?;
                }
            }
        }
        Err(first_err.unwrap_or(EngineError::Io))
    }

    /// Reads one copy of the tree block `at` points at, of tree `owner`, and verifies it.
    /// `Ok(None)` if the copy's device is missing.
    pub fn read_copy(
        &mut self,
        at: &NodeRef,
        owner: u64,
        copy: &Copy,
    ) -> EngineResult<Option<Node>> {
        let fsid = self.sb.fsid;
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let Some(dev) = self.dev_mut(copy.devid) else {
            return Ok(None);
        };
        dev.read(copy.physical, &mut buf)?;
        decode_checked(&fsid, at, owner, &buf).map(Some)
    }

    /// Rewrites the copies of the tree block `at` points at (of tree `owner`) that fail
    /// verification from one that passes; returns how many were rewritten.
    pub fn repair_block(&mut self, at: &NodeRef, owner: u64) -> EngineResult<usize> {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        let fsid = self.sb.fsid;
        let logical = at.block;
        let (good, bad) =
            self.sort_copies(logical, |buf| decode_checked(&fsid, at, owner, buf).is_ok())?;
        let Some(good) = good else {
            return Err(EngineError::Corrupt {
                block: logical,
                reason: "no good copy to repair from",
            });
        };
        let mut fixed = 0usize;
        for copy in bad.iter() {
            if let Some(dev) = self.dev_mut(copy.devid) {
                dev.write(copy.physical, &good)?;
                fixed = fixed.saturating_add(1);
            }
        }
        for slot in self.devs.iter_mut() {
            if let Some(dev) = slot.dev.as_mut() {
                dev.flush()?;
            }
        }
        Ok(fixed)
    }

    /// The node of tree `owner` that `at` points at, from the cache or the devices, and
    /// checked against `at` either way (a node reached from two places that disagree is
    /// as corrupt as a stale copy).
    pub fn read_node(&mut self, at: &NodeRef, owner: u64) -> EngineResult<&Node> {
        let logical = at.block;
        if let Some(hit) = self.cache.get_mut(logical) {
            hit.used = true;
        } else {
            let node = self.load(at, owner)?;
            if self.cache.len() >= self.cache_limit {
                self.evict_cold()?;
            }
            self.cache.insert(logical, Cached::new(node, false))?;
        }
        let node = self
            .cache
            .get(logical)
            .map(|c| &c.node)
            .ok_or(EngineError::Io)?;
        node.verify(at, owner)
            .map_err(|reason| EngineError::Corrupt {
                block: logical,
                reason,
            })?;
        Ok(node)
    }

    /// A node of the running transaction (shadowed or allocated in it).
    pub fn own_node(&mut self, block: u64) -> EngineResult<&Node> {
        if !self.fresh.contains_key(block) {
            return Err(EngineError::Invalid(
                "read of a block as the transaction's own that is not",
            ));
        }
        self.cache
            .get(block)
            .map(|c| &c.node)
            .ok_or(EngineError::Invalid("fresh block missing from the cache"))
    }

    /// The root reference to `block`, a node of the running transaction.
    pub(super) fn own_ref(&mut self, block: u64) -> EngineResult<NodeRef> {
        let node = self.own_node(block)?;
        Ok(NodeRef {
            block,
            generation: node.generation,
            level: node.level,
            first_key: None,
        })
    }

    /// Tree blocks in the cache now.
    pub fn cached_blocks(&self) -> usize {
        self.cache.len()
    }

    /// Sets how many tree blocks the cache keeps across a commit.
    pub fn set_cache_limit(&mut self, blocks: usize) {
        self.cache_limit = blocks;
    }

    /// Drops clean cached nodes, keeping what the transaction needs.
    pub fn trim_cache(&mut self) -> EngineResult<()> {
        let keys = self.cache.sorted_keys()?;
        for k in keys.iter() {
            if self.cache.get(*k).is_some_and(|c| !c.dirty) && !self.fresh.contains_key(*k) {
                self.cache.remove(*k);
            }
        }
        Ok(())
    }

    /// Makes the cache smaller than three quarters of its limit where it can: drops clean
    /// blocks the transaction did not make, those not read since the last sweep first
    /// (an approximation of least recently used that costs one bit per block), and clears
    /// the bits of the rest. Blocks the running transaction changed stay.
    pub(super) fn evict_cold(&mut self) -> EngineResult<()> {
        let target = self.cache_limit.saturating_mul(3) / 4;
        for pass in 0..2 {
            let mut cold = FVec::new();
            for (block, cached) in self.cache.iter_mut() {
                if cached.dirty || self.fresh.contains_key(block) {
                    continue;
                }
                if cached.used && pass == 0 {
                    cached.used = false;
                } else {
                    cold.try_push(block)?;
                }
            }
            for &block in cold.iter() {
                if self.cache.len() <= target {
                    return Ok(());
                }
                self.cache.remove(block);
            }
        }
        Ok(())
    }

    /// Drops a tree block whose last reference is going: out of the cache, and pinned so
    /// that its space is reusable once this transaction is committed (also when it was
    /// allocated and freed within the transaction, and so never reaches the space tree).
    pub(super) fn forget(&mut self, block: u64) -> EngineResult<()> {
        self.cache.remove(block);
        self.fresh.remove(block);
        self.pinned.try_push(block)
    }
}
