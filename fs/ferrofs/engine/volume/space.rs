// SPDX-License-Identifier: GPL-2.0

//! The space map and the allocator: the in-memory allocation bitmap of each chunk,
//! reference counts (queued as deltas, applied to the space tree at commit), block and
//! chunk allocation, and how much space is free.

use super::super::btree;
use super::super::bytes;
use super::super::chunk::{Chunk, Kind, Profile, Stripe, STRIPE_LEN};
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format::{self, item};
use super::super::key::Key;
use super::super::mem::{self, FVec};
use super::super::node::{self, NodeRef};
use super::super::spacemap;
use super::{child_refs, u64_value, DevSlot, RefOwner, Tree, Volume, BLOCK};
use crate::platform;

/// In-memory allocation state of one chunk: one bit per block, set while the block is
/// referenced, allocated in this transaction, or pinned until the commit completes.
pub(super) struct ChunkSpace {
    bits: FVec<u64>,
    pub(super) blocks: u64,
    hint: u64,
    /// Bytes with a non-zero reference count (as applied to the space tree so far).
    pub(super) used_bytes: u64,
    /// `used_bytes` differs from the block group item.
    pub(super) used_dirty: bool,
}

impl ChunkSpace {
    pub(super) fn new(length: u64) -> EngineResult<Self> {
        let blocks = length / BLOCK;
        let words = usize::try_from(blocks.div_ceil(64)).map_err(|_| EngineError::NoMemory)?;
        let mut bits = FVec::new();
        bits.try_resize(words, 0)?;
        Ok(Self {
            bits,
            blocks,
            hint: 0,
            used_bytes: 0,
            used_dirty: true,
        })
    }

    fn get(&self, n: u64) -> bool {
        let word = usize::try_from(n / 64).unwrap_or(usize::MAX);
        self.bits
            .get(word)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    pub(super) fn set(&mut self, n: u64, value: bool) {
        let word = usize::try_from(n / 64).unwrap_or(usize::MAX);
        if let Some(w) = self.bits.get_mut(word) {
            if value {
                *w |= 1 << (n % 64);
            } else {
                *w &= !(1 << (n % 64));
            }
        }
    }

    /// Finds and marks a free block, starting at the hint.
    fn take_free(&mut self) -> Option<u64> {
        for pass in 0..2u64 {
            let start = if pass == 0 { self.hint } else { 0 };
            let mut n = start;
            while n < self.blocks {
                let word = usize::try_from(n / 64).ok()?;
                let w = self.bits.get(word).copied()?;
                if w == u64::MAX && n % 64 == 0 {
                    n = n.saturating_add(64);
                    continue;
                }
                if !self.get(n) {
                    self.set(n, true);
                    self.hint = n.saturating_add(1);
                    return Some(n);
                }
                n = n.saturating_add(1);
            }
        }
        None
    }

    /// Finds and marks up to `max` consecutive free blocks; returns the first and count.
    pub(super) fn take_run(&mut self, max: u64) -> Option<(u64, u64)> {
        let first = self.take_free()?;
        Some(self.extend_run(first, max))
    }

    /// Marks up to `max` consecutive free blocks from block `first`, if it is free;
    /// returns the first and count.
    pub(super) fn take_run_at(&mut self, first: u64, max: u64) -> Option<(u64, u64)> {
        if first >= self.blocks || self.get(first) {
            return None;
        }
        self.set(first, true);
        Some(self.extend_run(first, max))
    }

    /// Marks the free blocks after `first` (taken) up to `max` in all; returns the first
    /// and count.
    fn extend_run(&mut self, first: u64, max: u64) -> (u64, u64) {
        let mut count = 1u64;
        while count < max {
            let n = first.saturating_add(count);
            if n >= self.blocks || self.get(n) {
                break;
            }
            self.set(n, true);
            count = count.saturating_add(1);
        }
        self.hint = first.saturating_add(count);
        (first, count)
    }

    fn free_blocks(&self) -> u64 {
        // Set bits of an in-memory bitmap: far below 2^64.
        let used = self
            .bits
            .iter()
            .fold(0u64, |n, w| n.saturating_add(u64::from(w.count_ones())));
        self.blocks.saturating_sub(used)
    }
}

impl<D: BlockDev> Volume<D> {
    /// Sets the stored reference count of `block` to `count` (fsck's repair, once every
    /// reference has been counted): the space map, the chunk usage and the allocator's
    /// view follow.
    pub fn set_refcount(&mut self, block: u64, count: u64) -> EngineResult<()> {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        let (i, chunk_logical) = self.chunk_of(block, "block address outside every chunk")?;
        let old = self.stored_refcount(block)?;
        let delta = i128::from(count)
            .checked_sub(i128::from(old))
            .and_then(|d| i64::try_from(d).ok())
            .ok_or(EngineError::Range)?;
        if delta == 0 {
            return Ok(());
        }
        self.changed();
        self.apply_delta(block, delta)?;
        if count > 0 {
            if let Some(space) = self.spaces.get_mut(i) {
                space.set(block.saturating_sub(chunk_logical) / BLOCK, true);
            }
        }
        Ok(())
    }

    /// Queues `delta` to the reference count of `block`, held by `owner`.
    pub(super) fn add_ref(&mut self, block: u64, delta: i64, owner: RefOwner) -> EngineResult<()> {
        platform::relax();
        // A reference goes to a block of the kind its owner uses. (The reverse mapping,
        // when there is one, records `owner` here too.)
        let kind = self
            .chunk_index(block)
            .and_then(|i| self.chunks.get(i))
            .map(|c| c.kind);
        let fits = matches!(
            (owner, kind),
            (RefOwner::File { .. }, Some(Kind::Data))
                | (RefOwner::Tree(_), Some(Kind::Metadata | Kind::System))
        );
        if !fits {
            return Err(EngineError::Corrupt {
                block,
                reason: "reference to a block outside every chunk of its owner's kind",
            });
        }
        self.changed();
        let now = self.delayed.get(block).copied().unwrap_or(0);
        let sum = now
            .checked_add(delta)
            .ok_or(EngineError::Invalid("reference count overflow"))?;
        if sum == 0 {
            self.delayed.remove(block);
        } else {
            self.delayed.insert(block, sum)?;
        }
        Ok(())
    }

    /// The reference count of `block` as recorded in the space tree (changes applied so far).
    pub fn stored_refcount(&mut self, block: u64) -> EngineResult<u64> {
        let (_, chunk_logical) = self.chunk_of(block, "block address outside every chunk")?;
        let (index, entry) = spacemap::position(block.saturating_sub(chunk_logical) / BLOCK);
        let Some(root) = self.root(Tree::SPACE) else {
            return Ok(0);
        };
        let bitmap = btree::lookup(
            &mut self.store(Tree::SPACE),
            &root,
            &Key::new(chunk_logical, item::BITMAP, index),
        )?;
        let value = bitmap
            .as_deref()
            .map_or(0, |b| spacemap::get_entry(b, entry));
        if value < spacemap::OVERFLOW {
            return Ok(u64::from(value));
        }
        let over = btree::lookup(
            &mut self.store(Tree::SPACE),
            &root,
            &Key::new(block, item::REFCOUNT, 0),
        )?;
        match over.as_deref().and_then(|d| bytes::u32_at(d, 0)) {
            Some(n) if n >= 3 => Ok(u64::from(n)),
            _ => Err(EngineError::Corrupt {
                block: root.block,
                reason: "space map overflow entry without a valid count",
            }),
        }
    }

    /// The current reference count of `block`, including changes not yet applied.
    pub fn refcount(&mut self, block: u64) -> EngineResult<u64> {
        let in_flight = self
            .in_flight
            .binary_search_by_key(&block, |&(b, _)| b)
            .ok()
            .and_then(|at| self.in_flight.get(at));
        let stored = match in_flight {
            Some(&(_, count)) => count,
            None => self.stored_refcount(block)?,
        };
        let delta = self.delayed.get(block).copied().unwrap_or(0);
        i128::from(stored)
            .checked_add(i128::from(delta))
            .and_then(|count| u64::try_from(count).ok())
            .ok_or(EngineError::Corrupt {
                block,
                reason: "reference count below zero",
            })
    }

    /// Drops one reference to the tree block `at` points at, of `tree`; at the last
    /// one, drops the node's references to its children too.
    pub(super) fn drop_tree_ref(
        &mut self,
        at: &NodeRef,
        tree: Tree,
        depth: u8,
        shared: bool,
    ) -> EngineResult<()> {
        let block = at.block;
        if depth > node::MAX_LEVEL {
            return Err(EngineError::Corrupt {
                block,
                reason: "tree deeper than the maximum level",
            });
        }
        let count = if shared { self.refcount(block)? } else { 1 };
        if count == 1 {
            let node = if self.fresh.contains_key(block) {
                self.own_node(block)?
            } else {
                self.read_node(at, tree.id())?
            };
            let children = child_refs(node)?;
            for child in children.iter() {
                self.drop_tree_ref(child, tree, depth.saturating_add(1), shared)?;
            }
            self.forget(block)?;
        }
        self.add_ref(block, -1, RefOwner::Tree(tree))
    }

    pub(super) fn alloc_block(&mut self, kind: Kind) -> EngineResult<u64> {
        if let Some(block) = self.take_free_block(kind)? {
            return Ok(block);
        }
        // Every chunk of the kind is full: add one (usable at once) and take from it.
        self.alloc_chunk(kind)?;
        self.take_free_block(kind)?.ok_or(EngineError::NoSpace)
    }

    fn take_free_block(&mut self, kind: Kind) -> EngineResult<Option<u64>> {
        for (chunk, space) in self.chunks.iter().zip(self.spaces.iter_mut()) {
            if chunk.kind != kind {
                continue;
            }
            if let Some(n) = space.take_free() {
                return chunk
                    .logical
                    .checked_add(n.saturating_mul(BLOCK))
                    .map(Some)
                    .ok_or(EngineError::NoSpace);
            }
        }
        Ok(None)
    }

    /// Adds a chunk of `kind` in the running transaction, with the profile of the kind's
    /// newest chunk, on the devices with the most unallocated space. The chunk is usable at
    /// once; its chunk item, device extents and (for system chunks) superblock entry are
    /// written with the transaction.
    pub fn alloc_chunk(&mut self, kind: Kind) -> EngineResult<()> {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        self.changed();
        self.log_block();
        let profile = self
            .chunks
            .iter()
            .rev()
            .find(|c| c.kind == kind)
            .map(|c| c.profile)
            .ok_or(EngineError::Invalid(
                "no chunk of this kind to take the profile from",
            ))?;
        let mut used: FVec<(u64, u64, u64)> = FVec::new();
        let mut extents = self.range(Tree::DEV, Key::MIN, Key::MAX);
        while let Some((k, v)) = self.next_in(&mut extents)? {
            if k.kind == item::DEV_EXTENT {
                let len = bytes::u64_at(&v, 8).ok_or(EngineError::Corrupt {
                    block: k.offset,
                    reason: "short device extent item",
                })?;
                used.try_push((k.objectid, k.offset, len))?;
            }
        }
        let next = self
            .chunks
            .iter()
            .map(|c| c.logical.saturating_add(c.length))
            .max()
            .unwrap_or(1 << 20);
        let next = round_down(next.saturating_add((1 << 20) - 1), 1 << 20);
        let chunk = plan_chunk(next, &self.devs, &used, kind, profile, self.sb.total_bytes)?;
        let logical = chunk.logical;
        self.add_chunk(chunk)?;
        let i = self
            .chunk_index(logical)
            .ok_or(EngineError::Invalid("new chunk not found"))?;
        self.record_chunk(i)
    }

    /// Free bytes in chunks of `kind` (not counting unallocated device space).
    pub fn free_bytes(&self, kind: Kind) -> u64 {
        self.chunks
            .iter()
            .zip(self.spaces.iter())
            .filter(|(c, _)| c.kind == kind)
            .map(|(_, s)| s.free_blocks().saturating_mul(BLOCK))
            .fold(0, u64::saturating_add)
    }

    /// Bytes the blocks in use take on the devices: every used block of every chunk, once
    /// for each copy its profile keeps.
    pub fn used_raw_bytes(&self) -> u64 {
        self.chunks
            .iter()
            .zip(self.spaces.iter())
            .map(|(c, s)| {
                let used = s.blocks.saturating_sub(s.free_blocks());
                used.saturating_mul(BLOCK)
                    .saturating_mul(c.profile.copies() as u64)
            })
            .fold(0, u64::saturating_add)
    }

    /// Device bytes the fsync log area takes, every copy counted: set aside at mkfs, like
    /// the superblock areas, rather than used by files.
    pub fn log_area_raw_bytes(&self) -> u64 {
        let Some(area) = self.log.area else {
            return 0;
        };
        let copies = self
            .chunk_index(area.start)
            .and_then(|i| self.chunks.get(i))
            .map_or(1, |c| c.profile.copies() as u64);
        area.blocks.saturating_mul(BLOCK).saturating_mul(copies)
    }

    /// Bytes files could still be given: free blocks of the data chunks, and what new data
    /// chunks (with the newest data chunk's profile) could take of the unallocated space of
    /// the devices present.
    pub fn data_free_bytes(&self) -> u64 {
        self.kind_free_bytes(Kind::Data)
    }

    /// Bytes of `kind` still to be had: free blocks of its chunks, and what new chunks
    /// with its newest chunk's profile could take from the unallocated space.
    pub fn kind_free_bytes(&self, kind: Kind) -> u64 {
        self.kind_free_upto(kind, u64::MAX)
    }

    /// [`Self::kind_free_bytes`], counted only until it reaches `want` (what a change
    /// needs). New chunks are counted as [`alloc_chunk`](Self::alloc_chunk) would make
    /// them, one after another on the devices' free gaps (so that the answer is never more
    /// than can be allocated: a change admitted on it does not run out half-way); past
    /// [`MAX_PLANNED_CHUNKS`] of them the rest is estimated.
    pub fn kind_free_upto(&self, kind: Kind, want: u64) -> u64 {
        let in_chunks = self.free_bytes(kind);
        if in_chunks >= want {
            return in_chunks;
        }
        let profile = self
            .chunks
            .iter()
            .rev()
            .find(|c| c.kind == kind)
            .map_or(Profile::Single, |c| c.profile);
        let mut used: FVec<(u64, u64, u64)> = FVec::new();
        for c in self.chunks.iter() {
            for st in c.stripes.iter() {
                if used
                    .try_push((st.devid, st.physical, c.stripe_size()))
                    .is_err()
                {
                    return in_chunks;
                }
            }
        }
        let mut logical = self
            .chunks
            .iter()
            .map(|c| c.logical.saturating_add(c.length))
            .max()
            .unwrap_or(1 << 20);
        let mut total = in_chunks;
        for _ in 0..MAX_PLANNED_CHUNKS {
            if total >= want {
                return total;
            }
            logical = round_down(logical.saturating_add((1 << 20) - 1), 1 << 20);
            let Ok(chunk) = plan_chunk(
                logical,
                &self.devs,
                &used,
                kind,
                profile,
                self.sb.total_bytes,
            ) else {
                return total;
            };
            total = total.saturating_add(chunk.length);
            logical = logical.saturating_add(chunk.length);
            for st in chunk.stripes.iter() {
                if used
                    .try_push((st.devid, st.physical, chunk.stripe_size()))
                    .is_err()
                {
                    return total;
                }
            }
        }
        // Many chunks still to come: the rest estimated from the free bytes per device.
        let mut free: FVec<u64> = FVec::new();
        for slot in self.devs.iter().filter(|d| d.dev.is_some()) {
            let on_dev = used
                .iter()
                .filter(|u| u.0 == slot.devid)
                .map(|u| u.2)
                .fold(0, u64::saturating_add);
            let reserved: u64 = format::RESERVED_RANGES
                .iter()
                .filter(|(start, _)| *start < slot.size)
                .map(|(_, len)| *len)
                .fold(0, u64::saturating_add);
            if free
                .try_push(slot.size.saturating_sub(on_dev).saturating_sub(reserved))
                .is_err()
            {
                return total;
            }
        }
        total.saturating_add(allocatable(&mut free, profile))
    }

    /// Applies one queued reference change to the space tree.
    pub(super) fn apply_delta(&mut self, block: u64, delta: i64) -> EngineResult<()> {
        self.apply_batch(&[(block, delta)])
    }

    /// Applies queued reference changes `(block, delta)` of blocks in one bitmap item (of
    /// one chunk), in increasing block order: the item is read and written once for all of
    /// them, and REFCOUNT items change only for counts of 3 and more.
    pub(super) fn apply_batch(&mut self, batch: &[(u64, i64)]) -> EngineResult<()> {
        platform::relax();
        let Some(&(first, _)) = batch.first() else {
            return Ok(());
        };
        let (i, chunk_logical) = self.chunk_of(first, "reference change outside every chunk")?;
        let (index, _) = spacemap::position(first.saturating_sub(chunk_logical) / BLOCK);
        let bkey = Key::new(chunk_logical, item::BITMAP, index);
        let mut bitmap = match self.lookup(Tree::SPACE, &bkey)? {
            Some(b) if b.len() == spacemap::BITMAP_BYTES => b,
            Some(_) => {
                return Err(EngineError::Corrupt {
                    block: first,
                    reason: "space map bitmap item of the wrong size",
                })
            }
            None => mem::zeroed_bytes(spacemap::BITMAP_BYTES)?,
        };
        // Old and new counts of each block; the new ones are what `refcount` answers
        // while the space tree is written (its copy-on-write asks for counts).
        let mut counts: FVec<(u64, u64, u64)> = FVec::try_with_capacity(batch.len())?;
        for &(block, delta) in batch.iter() {
            let (at, entry) = spacemap::position(block.saturating_sub(chunk_logical) / BLOCK);
            if at != index || block < chunk_logical {
                return Err(EngineError::Invalid("reference batch across bitmap items"));
            }
            let old = match spacemap::get_entry(&bitmap, entry) {
                e if e < spacemap::OVERFLOW => u64::from(e),
                _ => self.stored_refcount(block)?,
            };
            let new = i128::from(old)
                .checked_add(i128::from(delta))
                .and_then(|new| u64::try_from(new).ok())
                .ok_or(EngineError::Corrupt {
                    block,
                    reason: "reference count below zero",
                })?;
            spacemap::set_entry(&mut bitmap, entry, spacemap::entry_for(new));
            counts.try_push((block, old, new))?;
        }
        self.in_flight.clear();
        self.in_flight.try_reserve(counts.len())?;
        for &(block, _, new) in counts.iter() {
            self.in_flight.try_push((block, new))?;
        }
        let result = self.write_batch(bkey, &bitmap, &counts);
        self.in_flight.clear();
        result?;
        let is_data = self.chunks.get(i).is_some_and(|c| c.kind == Kind::Data);
        // Runs of freed data blocks, whose checksums go: (first block, blocks).
        let mut freed: Option<(u64, u64)> = None;
        for &(block, old, new) in counts.iter() {
            if let Some(space) = self.spaces.get_mut(i) {
                // The usage counts the blocks of the chunk's space map: it can go
                // neither past the chunk nor below zero unless the map was wrong.
                let wrong = EngineError::Corrupt {
                    block,
                    reason: "chunk usage disagrees with its space map",
                };
                if old == 0 && new > 0 {
                    space.used_bytes = space.used_bytes.checked_add(BLOCK).ok_or(wrong)?;
                    space.used_dirty = true;
                } else if old > 0 && new == 0 {
                    space.used_bytes = space.used_bytes.checked_sub(BLOCK).ok_or(wrong)?;
                    space.used_dirty = true;
                    self.pinned.try_push(block)?;
                }
            }
            if is_data && old > 0 && new == 0 {
                freed = match freed {
                    Some((start, n)) if start.saturating_add(n.saturating_mul(BLOCK)) == block => {
                        Some((start, n.saturating_add(1)))
                    }
                    Some((start, n)) => {
                        self.remove_csums(start, n)?;
                        Some((block, 1))
                    }
                    None => Some((block, 1)),
                };
            }
        }
        if let Some((start, n)) = freed {
            self.remove_csums(start, n)?;
        }
        Ok(())
    }

    /// Stores the bitmap item `bkey` as `bitmap` (removed when all zero), and the REFCOUNT
    /// items of `counts` (block, old, new) for counts of 3 and more.
    fn write_batch(
        &mut self,
        bkey: Key,
        bitmap: &[u8],
        counts: &[(u64, u64, u64)],
    ) -> EngineResult<()> {
        if bitmap.iter().all(|&b| b == 0) {
            self.remove(Tree::SPACE, &bkey)?;
        } else {
            self.insert(Tree::SPACE, bkey, bitmap)?;
        }
        for &(block, old, new) in counts.iter() {
            let okey = Key::new(block, item::REFCOUNT, 0);
            if new >= 3 {
                let n = u32::try_from(new)
                    .map_err(|_| EngineError::Invalid("reference count overflow"))?;
                self.insert(Tree::SPACE, okey, &n.to_le_bytes())?;
            } else if old >= 3 {
                self.remove(Tree::SPACE, &okey)?;
            }
        }
        Ok(())
    }

    /// Writes changed block group usage into the space tree.
    pub(super) fn update_block_groups(&mut self) -> EngineResult<()> {
        for i in 0..self.chunks.len() {
            let Some(space) = self.spaces.get_mut(i) else {
                continue;
            };
            if !space.used_dirty {
                continue;
            }
            space.used_dirty = false;
            let used = space.used_bytes;
            let logical = self
                .chunks
                .get(i)
                .map(|c| c.logical)
                .ok_or(EngineError::Io)?;
            self.put_u64_if_changed(Tree::SPACE, Key::new(logical, item::BLOCK_GROUP, 0), used)?;
        }
        Ok(())
    }

    /// Stores a `u64` item unless it already holds `value`: rewriting an unchanged item
    /// would still copy its path, and the commit loop would never settle.
    fn put_u64_if_changed(&mut self, tree: Tree, key: Key, value: u64) -> EngineResult<()> {
        if self.lookup(tree, &key)?.as_deref().and_then(u64_value) != Some(value) {
            self.insert(tree, key, &value.to_le_bytes())?;
        }
        Ok(())
    }
}

/// Rounds `v` down to a multiple of `unit` (a power of two or any non-zero value).
pub(super) fn round_down(v: u64, unit: u64) -> u64 {
    v.checked_rem(unit).map_or(v, |r| v.saturating_sub(r))
}

/// Data bytes chunks of `profile` could take from devices with `free` unallocated bytes
/// each: copies on distinct devices for the mirrored profiles, so the devices fill
/// unevenly; a greedy fill in 64 MiB steps (the answer is an estimate, as for `df`).
fn allocatable(free: &mut [u64], profile: Profile) -> u64 {
    let copies = profile.copies() as u64;
    let total = free.iter().fold(0u64, |sum, &f| sum.saturating_add(f));
    match profile {
        Profile::Single | Profile::Raid0 | Profile::Dup => total.checked_div(copies).unwrap_or(0),
        Profile::Raid1 | Profile::Raid1c3 | Profile::Raid10 => {
            const STEP: u64 = 64 << 20;
            let width = profile.copies();
            let mut data = 0u64;
            loop {
                mem::sort_by(free, |a, b| b.cmp(a));
                let Some(&smallest) = free.get(width.saturating_sub(1)) else {
                    return data;
                };
                let step = smallest.min(STEP);
                if step == 0 {
                    return data;
                }
                for f in free.iter_mut().take(width) {
                    *f = f.saturating_sub(step);
                }
                data = data.saturating_add(step);
            }
        }
    }
}

/// New chunks [`Volume::kind_free_upto`] plans one by one before it estimates the rest.
const MAX_PLANNED_CHUNKS: usize = 64;

/// Volumes smaller than this (in bytes, all devices together) get chunks scaled to them.
const SMALL_VOLUME: u64 = 64 << 20;

/// Chooses devices and extents for a new chunk of `kind` with `profile`.
pub(super) fn plan_chunk<D>(
    logical: u64,
    devs: &[DevSlot<D>],
    used: &[(u64, u64, u64)],
    kind: Kind,
    profile: Profile,
    total: u64,
) -> EngineResult<Chunk> {
    // Target sizes: small volumes get chunks of about a tenth of their size; those below
    // SMALL_VOLUME smaller ones still, so that room is left for the chunks that follow.
    let target = if total < SMALL_VOLUME {
        match kind {
            Kind::System => 1 << 20,
            Kind::Metadata => (total / 8).max(1 << 20),
            Kind::Data => (total / 4).max(1 << 20),
        }
    } else {
        match kind {
            Kind::System => 4 << 20,
            Kind::Metadata => (total / 10).clamp(16 << 20, 256 << 20),
            Kind::Data => (total / 10).clamp(32 << 20, 1 << 30),
        }
    };
    let devices = profile
        .devices_for(devs.len())
        .ok_or(EngineError::Invalid("not enough devices for the profile"))?;
    let stripes = profile.stripes_for(devices);
    let data_stripes = profile.data_stripes(stripes) as u64;
    let unit = if data_stripes > 1 {
        STRIPE_LEN
    } else {
        1 << 20
    };
    // Pick the devices with the largest free gap.
    let mut candidates: FVec<(u64, u64, u64)> = FVec::new(); // (gap length, devid, start)
    for d in devs.iter().filter(|d| d.dev.is_some()) {
        let per_dev = if profile == Profile::Dup { 2 } else { 1 };
        if let Some((start, len)) = largest_gap(d, used)? {
            candidates.try_push((len.checked_div(per_dev).unwrap_or(0), d.devid, start))?;
        }
    }
    mem::sort_by(&mut candidates, |a, b| b.cmp(a));
    let chosen = candidates.get(..devices).ok_or(EngineError::NoSpace)?;
    let smallest = chosen.iter().map(|c| c.0).min().unwrap_or(0);
    let stripe_size = round_down(
        target.checked_div(data_stripes).unwrap_or(0).min(smallest),
        unit.max(STRIPE_LEN),
    );
    if stripe_size == 0 {
        return Err(EngineError::NoSpace);
    }
    let mut out = FVec::new();
    for &(_, devid, start) in chosen.iter() {
        out.try_push(Stripe {
            devid,
            physical: start,
        })?;
        if profile == Profile::Dup {
            out.try_push(Stripe {
                devid,
                physical: start.saturating_add(stripe_size),
            })?;
        }
    }
    let chunk = Chunk {
        logical,
        length: stripe_size.saturating_mul(data_stripes),
        kind,
        profile,
        stripes: out,
    };
    chunk
        .validate()
        .map_err(|_| EngineError::Invalid("planned chunk is invalid"))?;
    Ok(chunk)
}

/// The largest free range of a device outside the reserved areas and `used` extents.
fn largest_gap<D>(dev: &DevSlot<D>, used: &[(u64, u64, u64)]) -> EngineResult<Option<(u64, u64)>> {
    let mut busy: FVec<(u64, u64)> = FVec::new();
    for &(start, len) in format::RESERVED_RANGES.iter() {
        busy.try_push((start, start.saturating_add(len)))?;
    }
    for &(devid, start, len) in used.iter() {
        if devid == dev.devid {
            busy.try_push((start, start.saturating_add(len)))?;
        }
    }
    mem::sort(&mut busy);
    let mut best: Option<(u64, u64)> = None;
    let mut pos = 0u64;
    for &(s, e) in busy.iter() {
        let len = s.min(dev.size).saturating_sub(pos);
        if len > 0 && best.map_or(true, |b| len > b.1) {
            best = Some((pos, len));
        }
        pos = pos.max(e);
    }
    let len = dev.size.saturating_sub(pos);
    if len > 0 && best.map_or(true, |b| len > b.1) {
        best = Some((pos, len));
    }
    Ok(best)
}
