// SPDX-License-Identifier: GPL-2.0

//! Transactions: the change count, commit (in two steps, see the [`volume`](super)
//! documentation) and abort, root items and superblock writing.

use super::super::bytes;
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format::{self, item, Superblock, BLOCK_SIZE};
use super::super::key::Key;
use super::super::mem::{self, FVec};
use super::super::node::NodeRef;
use super::super::spacemap;
use super::{OpenOptions, Tree, Volume, BLOCK, ROOT_ITEM_SIZE};
use crate::platform;

/// Dirty tree blocks encoded at once by a commit before they are written.
const WRITE_BATCH_BLOCKS: usize = 1024;
/// Largest single write of tree blocks a commit makes.
const MAX_WRITE_BYTES: usize = 1 << 20;

/// Passes of the commit loop before giving up: each pass applies the reference changes the
/// previous one made, and real commits settle within a handful.
const MAX_COMMIT_PASSES: usize = 64;

/// What a started commit still has to do once its superblocks are on disk.
pub(super) struct PendingState {
    generation: u64,
    /// The superblock of the commit, as it was when its blocks were written.
    sb: Superblock,
    /// Blocks the committed transaction freed: reusable only once it is durable.
    pinned: FVec<u64>,
    /// `changes` as the commit left it.
    changes: u64,
}

/// A started commit ([`Volume::commit_start`]), to be finished with
/// [`Volume::commit_finish`].
#[must_use = "a started commit must be finished"]
#[derive(Debug)]
pub struct CommitTicket {
    generation: u64,
}

/// A root item's value.
fn encode_root_item(root: &NodeRef) -> [u8; ROOT_ITEM_SIZE] {
    let mut out = [0u8; ROOT_ITEM_SIZE];
    bytes::put_u64(&mut out, 0, root.block);
    bytes::put_u64(&mut out, 8, root.generation);
    bytes::put_u8(&mut out, 16, root.level);
    out
}

/// Decodes a root item read from root tree block `from`.
pub(super) fn decode_root_item(data: &[u8], from: u64) -> EngineResult<NodeRef> {
    let corrupt = EngineError::Corrupt {
        block: from,
        reason: "root item has the wrong size",
    };
    if data.len() != ROOT_ITEM_SIZE {
        return Err(corrupt);
    }
    match (
        bytes::u64_at(data, 0),
        bytes::u64_at(data, 8),
        bytes::u8_at(data, 16),
    ) {
        (Some(block), Some(generation), Some(level)) => Ok(NodeRef {
            block,
            generation,
            level,
            first_key: None,
        }),
        _ => Err(corrupt),
    }
}

impl<D: BlockDev> Volume<D> {
    /// How many changes the volume has seen (see [`Volume::abort`]).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Whether anything changed since the last commit.
    pub fn needs_commit(&self) -> bool {
        self.changes != self.committed_changes
    }

    pub(super) fn changed(&mut self) {
        self.changes = self.changes.wrapping_add(1);
    }

    /// Drops the running transaction after a failure left it half-done: everything since
    /// the last commit is forgotten, the volume is read again from its devices, and it
    /// stays read-only, as the last commit on disk is the only state known to be whole.
    /// If the devices cannot be read again, the volume is left without them (every read
    /// fails with an I/O error).
    pub fn abort(&mut self) -> EngineResult<()> {
        let mut slots = core::mem::take(&mut self.devs);
        self.read_only = true;
        self.cache.clear();
        self.delayed.clear();
        self.pinned.clear();
        self.in_flight.clear();
        let mut devs = FVec::try_with_capacity(slots.len())?;
        while let Some(slot) = slots.pop() {
            if let Some(dev) = slot.dev {
                devs.try_push(dev)?;
            }
        }
        let opts = OpenOptions {
            degraded: true,
            read_only: true,
        };
        *self = Self::open_with(devs, opts)?;
        Ok(())
    }

    /// Writes changed tree roots into the root tree.
    fn update_root_items(&mut self) -> EngineResult<()> {
        for i in 0..self.roots.len() {
            let Some(&(id, root)) = self.roots.get(i) else {
                continue;
            };
            let key = Key::new(id, item::ROOT, 0);
            let value = encode_root_item(&root);
            if self.lookup(Tree::ROOT, &key)?.as_deref() != Some(&value[..]) {
                self.insert(Tree::ROOT, key, &value)?;
            }
        }
        Ok(())
    }

    /// Commits the running transaction (see the [`volume`](super) documentation for the order), and
    /// first finishes a commit started and not finished yet.
    pub fn commit(&mut self) -> EngineResult<()> {
        self.finish_pending()?;
        let ticket = self.commit_start()?;
        self.commit_finish(ticket, false)
    }

    /// Finishes a commit started and not finished yet, if there is one (flushing the
    /// devices itself).
    pub(super) fn finish_pending(&mut self) -> EngineResult<()> {
        match self.pending.as_ref().map(|p| p.generation) {
            Some(generation) => self.commit_finish(CommitTicket { generation }, false),
            None => Ok(()),
        }
    }

    /// Starts a commit: settles the reference counts and writes every dirty block to every
    /// copy, then lets a new transaction begin at once. Until [`Self::commit_finish`], the
    /// blocks the committed transaction freed stay allocated and the superblocks still point
    /// at the previous commit. The devices need not be flushed under the caller's lock: the
    /// kernel flushes them while the new transaction runs, and then finishes.
    pub fn commit_start(&mut self) -> EngineResult<CommitTicket> {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        if self.pending.is_some() {
            return Err(EngineError::Invalid("a commit is already started"));
        }
        // A generation repeated would make stale blocks look current: never clamp it.
        let next_generation = self.generation.checked_add(1).ok_or(EngineError::Corrupt {
            block: format::SUPERBLOCK_OFFSET,
            reason: "transaction generation exhausted",
        })?;
        self.changed();
        let mut settled = false;
        for _ in 0..MAX_COMMIT_PASSES {
            self.update_root_items()?;
            self.update_block_groups()?;
            if self.delayed.is_empty() && self.spaces.iter().all(|s| !s.used_dirty) {
                settled = true;
                break;
            }
            // The changes of the blocks of one bitmap item go together.
            let blocks = self.delayed.sorted_keys()?;
            let mut batch: FVec<(u64, i64)> = FVec::new();
            let mut group = None;
            for &b in blocks.iter() {
                let (_, chunk_logical) =
                    self.chunk_of(b, "reference change outside every chunk")?;
                let (index, _) = spacemap::position(b.saturating_sub(chunk_logical) / BLOCK);
                if group != Some((chunk_logical, index)) {
                    self.apply_batch(&batch)?;
                    batch.clear();
                    group = Some((chunk_logical, index));
                }
                if let Some(delta) = self.delayed.remove(b) {
                    batch.try_push((b, delta))?;
                }
            }
            self.apply_batch(&batch)?;
        }
        if !settled {
            return Err(EngineError::Invalid("commit did not settle"));
        }
        // Every dirty block, to every copy. Only blocks of this transaction change, so the
        // dirty ones are among them (the cache may hold many more).
        let dirty = self.fresh.sorted_keys()?;
        for batch in dirty.chunks(WRITE_BATCH_BLOCKS) {
            self.write_dirty(batch)?;
        }
        self.sb.generation = self.generation;
        self.sb.root_tree = self.root_tree.block;
        self.sb.root_tree_generation = self.root_tree.generation;
        self.sb.root_tree_level = self.root_tree.level;
        self.sb.chunk_tree = self.chunk_root.block;
        self.sb.chunk_tree_generation = self.chunk_root.generation;
        self.sb.chunk_tree_level = self.chunk_root.level;
        self.sb.bytes_used = self
            .spaces
            .iter()
            .try_fold(0u64, |sum, s| sum.checked_add(s.used_bytes))
            .ok_or(EngineError::Corrupt {
                block: format::SUPERBLOCK_OFFSET,
                reason: "chunk usage adds up past 2^64 bytes",
            })?;
        // From here the written blocks belong to the commit: the next transaction copies
        // them before any change, and frees nothing of it before the commit is durable.
        let mut pinned = FVec::new();
        pinned.try_reserve(self.pinned.len())?;
        for (_, cached) in self.cache.iter_mut() {
            cached.dirty = false;
        }
        self.fresh.clear();
        if self.cache.len() > self.cache_limit {
            // Every cached block is clean and committed now: any of them can be read
            // again from the devices, the least used go.
            self.evict_cold()?;
        }
        while let Some(b) = self.pinned.pop() {
            pinned.try_push(b)?;
        }
        let generation = self.generation;
        self.pending = Some(PendingState {
            generation,
            sb: self.sb.try_clone()?,
            pinned,
            changes: self.changes,
        });
        self.generation = next_generation;
        // The next transaction starts with an empty log (its records name its generation).
        self.log.reset();
        Ok(CommitTicket { generation })
    }

    /// Writes the dirty ones of cached tree blocks `blocks` to every copy: the copies sorted
    /// by device and place, and those that follow each other on a device in one write, so
    /// that the devices see few large writes (a DUP chunk's two copies no longer alternate).
    fn write_dirty(&mut self, blocks: &[u64]) -> EngineResult<()> {
        let fsid = self.sb.fsid;
        let mut encoded = FVec::new();
        // (device, place on it, index of the block in `encoded`)
        let mut places: FVec<(u64, u64, usize)> = FVec::new();
        let mut count = 0usize;
        for &b in blocks.iter() {
            platform::relax();
            let Some(cached) = self.cache.get(b) else {
                continue;
            };
            if !cached.dirty {
                continue;
            }
            let at = encoded.len();
            encoded.try_resize(at.saturating_add(BLOCK_SIZE as usize), 0)?;
            let buf = encoded.get_mut(at..).ok_or(EngineError::Range)?;
            cached.node.encode(&fsid, b, buf)?;
            for copy in self.map_block(b)?.iter() {
                places.try_push((copy.devid, copy.physical, count))?;
            }
            count = count.saturating_add(1);
        }
        mem::sort(&mut places);
        let block_bytes = BLOCK_SIZE as usize;
        let mut run: FVec<u8> = FVec::new();
        let mut i = 0usize;
        while let Some(&(devid, start, _)) = places.get(i) {
            // The copies that follow this one on its device without a gap.
            run.clear();
            let mut next = start;
            while let Some(&(d, physical, index)) = places.get(i) {
                if d != devid || physical != next || run.len() >= MAX_WRITE_BYTES {
                    break;
                }
                let from = index.saturating_mul(block_bytes);
                let block = encoded
                    .get(from..from.saturating_add(block_bytes))
                    .ok_or(EngineError::Range)?;
                run.try_extend_from_slice(block)?;
                next = next.saturating_add(BLOCK);
                i = i.saturating_add(1);
            }
            if let Some(dev) = self.dev_mut(devid) {
                dev.write(start, &run)?;
            }
        }
        Ok(())
    }

    /// Finishes the commit `ticket` started: flushes every device unless the caller did so
    /// after [`Self::commit_start`] (`flushed`), writes the superblocks, and frees
    /// the blocks the commit freed. A commit that [`Self::commit`] finished already is
    /// `Ok`; one that an abort dropped is `ReadOnly`.
    pub fn commit_finish(&mut self, ticket: CommitTicket, flushed: bool) -> EngineResult<()> {
        let mut pending = match self.pending.take() {
            Some(p) if p.generation == ticket.generation => p,
            other => {
                self.pending = other;
                return if self.durable_generation >= ticket.generation {
                    Ok(())
                } else {
                    Err(EngineError::ReadOnly)
                };
            }
        };
        if let Err(err) = self.flush_and_write_superblocks(&pending.sb, flushed) {
            self.pending = Some(pending);
            return Err(err);
        }
        self.durable_generation = ticket.generation;
        while let Some(b) = pending.pinned.pop() {
            if let Some(i) = self.chunk_index(b) {
                let logical = self.chunks.get(i).map(|c| c.logical).unwrap_or(b);
                if let Some(space) = self.spaces.get_mut(i) {
                    space.set(b.saturating_sub(logical) / BLOCK, false);
                }
            }
        }
        self.committed_changes = pending.changes;
        Ok(())
    }

    /// Flushes every device (unless the caller did), then writes the superblock copies of
    /// every device: the primary durably (FUA), the backups by the next flush.
    fn flush_and_write_superblocks(
        &mut self,
        committed: &Superblock,
        flushed: bool,
    ) -> EngineResult<()> {
        if !flushed {
            for slot in self.devs.iter_mut() {
                if let Some(dev) = slot.dev.as_mut() {
                    dev.flush()?;
                }
            }
        }
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let mut written = 0usize;
        for i in 0..self.devs.len() {
            let Some(slot) = self.devs.get(i) else {
                continue;
            };
            let mut sb = committed.try_clone()?;
            sb.devid = slot.devid;
            sb.dev_uuid = slot.uuid;
            sb.dev_total_bytes = slot.size;
            let size = slot.size;
            for &offset in format::SUPERBLOCK_OFFSETS.iter() {
                if offset.saturating_add(BLOCK) > size {
                    continue;
                }
                sb.encode(offset, &mut buf)?;
                if let Some(dev) = self.devs.get_mut(i).and_then(|s| s.dev.as_mut()) {
                    // The primary copy makes the commit durable; the others follow with
                    // plain writes, made durable by the next commit's flush (a FUA write
                    // costs a cache flush on devices without FUA). Each backup is written
                    // after its primary is on stable media, so it is never the newer one.
                    if offset == format::SUPERBLOCK_OFFSET {
                        dev.write_fua(offset, &buf)?;
                    } else {
                        dev.write(offset, &buf)?;
                    }
                    written = written.saturating_add(1);
                }
            }
        }
        if written == 0 {
            return Err(EngineError::Io);
        }
        Ok(())
    }
}
