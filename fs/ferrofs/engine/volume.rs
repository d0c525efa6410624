// SPDX-License-Identifier: GPL-2.0

//! A mounted ferrofs volume: devices, chunks, the block cache, the space map and
//! transactions.
//!
//! # Transactions
//!
//! Everything a transaction changes goes to blocks it allocated itself ("fresh" blocks);
//! committed blocks are never written in place. Reference count changes are queued as
//! deltas and applied to the space tree at commit, which itself changes the space tree and
//! so queues more deltas: commit repeats until nothing is left. Commit then writes every
//! dirty block to every copy of its chunk, flushes every device and writes the primary
//! superblocks with FUA (the backup copies plainly, durable at the next flush). Blocks whose count dropped to zero stay allocated ("pinned") until that
//! sequence is complete, so a crash at any point finds either the previous or the new tree
//! intact.
//!
//! A commit comes in two steps, so that the device flush, its longest part, need not hold
//! up the filesystem: [`Volume::commit_start`] writes the blocks and opens the next
//! transaction (which copies the written blocks before changing them, like any committed
//! block), and [`Volume::commit_finish`] writes the superblocks once the devices are
//! flushed and only then lets the pinned blocks be reused.

use super::btree::{self, NodeStore};
use super::bytes;
use super::chunk::{Chunk, Copy, Kind, Profile, Stripe};
use super::dev::BlockDev;
use super::error::{EngineError, EngineResult};
use super::format::{self, item, tree_id, Superblock, BLOCK_SIZE};
use super::key::Key;
use super::map::U64Map;
use super::mem::{self, FVec};
use super::node::{Body, Node};
use super::spacemap;
use crate::platform;

const BLOCK: u64 = BLOCK_SIZE as u64;

/// Passes of the commit loop before giving up: each pass applies the reference changes the
/// previous one made, and real commits settle within a handful.
const MAX_COMMIT_PASSES: usize = 64;

/// Tree blocks the cache keeps across commits by default (32 MiB of blocks).
pub const DEFAULT_CACHE_LIMIT: usize = 8192;

/// A superblock copy that cannot serve as one: where it is and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadSuperblock {
    /// Device holding the copy.
    pub devid: u64,
    /// Byte offset of the copy on that device.
    pub offset: u64,
    /// What is wrong with it.
    pub what: &'static str,
}

/// A device slot of the volume.
pub struct DevSlot<D> {
    /// Id within the filesystem.
    pub devid: u64,
    /// Device UUID.
    pub uuid: [u8; 16],
    /// Bytes of the device the filesystem uses.
    pub size: u64,
    /// The open device, or `None` if it is missing (degraded mount).
    pub dev: Option<D>,
}

struct Cached {
    node: Node,
    dirty: bool,
}

/// In-memory allocation state of one chunk: one bit per block, set while the block is
/// referenced, allocated in this transaction, or pinned until the commit completes.
struct ChunkSpace {
    bits: FVec<u64>,
    blocks: u64,
    hint: u64,
    /// Bytes with a non-zero reference count (as applied to the space tree so far).
    used_bytes: u64,
    /// `used_bytes` differs from the block group item.
    used_dirty: bool,
}

impl ChunkSpace {
    fn new(length: u64) -> EngineResult<Self> {
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

    fn set(&mut self, n: u64, value: bool) {
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
    fn take_run(&mut self, max: u64) -> Option<(u64, u64)> {
        let first = self.take_free()?;
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
        Some((first, count))
    }

    fn free_blocks(&self) -> u64 {
        let used: u64 = self.bits.iter().map(|w| u64::from(w.count_ones())).sum();
        self.blocks.saturating_sub(used)
    }
}

/// How to mount.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// Allow devices to be missing as long as every chunk keeps a copy.
    pub degraded: bool,
    /// Never write.
    pub read_only: bool,
}

/// How to make a new filesystem.
pub struct MkfsOptions<'a> {
    /// Profile of data chunks.
    pub data: Profile,
    /// Profile of metadata and system chunks.
    pub metadata: Profile,
    /// Label (at most [`format::LABEL_MAX`] bytes).
    pub label: &'a [u8],
    /// Filesystem UUID.
    pub fsid: [u8; 16],
    /// One UUID per device.
    pub dev_uuids: &'a [[u8; 16]],
}

/// A mounted (or being created) ferrofs volume over devices of type `D`.
pub struct Volume<D: BlockDev> {
    sb: Superblock,
    devs: FVec<DevSlot<D>>,
    chunks: FVec<Chunk>,
    spaces: FVec<ChunkSpace>,
    generation: u64,
    root_tree: u64,
    chunk_root: u64,
    /// Roots of the trees listed in the root tree: (tree id, root block).
    roots: FVec<(u64, u64)>,
    cache: U64Map<Cached>,
    /// Most tree blocks the cache keeps across a commit: past it, a commit drops the clean
    /// ones (all of them, once the commit has written its blocks).
    cache_limit: usize,
    fresh: U64Map<()>,
    delayed: U64Map<i64>,
    pinned: FVec<u64>,
    /// The block whose count is being written to the space tree, and its new count: while
    /// the space tree items change, reading them back would give a half-written answer.
    in_flight: Option<(u64, u64)>,
    /// Copies that failed verification when read and were rewritten from a good copy:
    /// (logical block, device id).
    pub repairs: FVec<(u64, u64)>,
    read_only: bool,
    /// Bumped by every change to the running transaction: a caller that fails after a
    /// change knows the transaction is half-done and must be aborted.
    changes: u64,
    /// `changes` as the last commit left it.
    committed_changes: u64,
    /// A commit whose tree blocks are written and whose superblocks are not yet.
    pending: Option<PendingState>,
    /// Generation of the newest superblocks written (found at mount, or written since).
    durable_generation: u64,
}

/// What a started commit still has to do once its superblocks are on disk.
struct PendingState {
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

/// The node store of one tree of a volume: allocations go to the tree's kind of chunk.
pub struct TreeStore<'a, D: BlockDev> {
    vol: &'a mut Volume<D>,
    owner: u64,
}

impl<D: BlockDev> NodeStore for TreeStore<'_, D> {
    fn node(&mut self, block: u64) -> EngineResult<&Node> {
        self.vol.node(block)
    }

    fn node_mut(&mut self, block: u64) -> EngineResult<&mut Node> {
        if !self.vol.fresh.contains_key(block) {
            return Err(EngineError::Invalid(
                "change to a block not shadowed in this transaction",
            ));
        }
        let cached = self
            .vol
            .cache
            .get_mut(block)
            .ok_or(EngineError::Invalid("fresh block missing from the cache"))?;
        cached.dirty = true;
        Ok(&mut cached.node)
    }

    fn shadow(&mut self, block: u64) -> EngineResult<u64> {
        let count = if self.may_share() {
            self.vol.refcount(block)?
        } else {
            1
        };
        if count == 1 && self.vol.fresh.contains_key(block) {
            return Ok(block);
        }
        let mut copy = self.vol.node(block)?.try_clone()?;
        copy.generation = self.vol.generation;
        let children = internal_children(&copy)?;
        let new = self.alloc(copy)?;
        if count > 1 {
            // Still shared: the copy takes its own reference on every child.
            for child in children.iter() {
                self.vol.add_ref(*child, 1)?;
            }
            self.vol.add_ref(block, -1)?;
        } else {
            // Ours alone: the copy inherits the references of the original.
            self.vol.add_ref(block, -1)?;
            self.vol.forget(block)?;
        }
        Ok(new)
    }

    fn alloc(&mut self, mut node: Node) -> EngineResult<u64> {
        let kind = if self.owner == tree_id::CHUNK {
            Kind::System
        } else {
            Kind::Metadata
        };
        node.owner = self.owner;
        node.generation = self.vol.generation;
        let block = self.vol.alloc_block(kind)?;
        self.vol.add_ref(block, 1)?;
        self.vol.fresh.insert(block, ())?;
        self.vol.cache.insert(block, Cached { node, dirty: true })?;
        Ok(block)
    }

    fn free(&mut self, block: u64) -> EngineResult<()> {
        let shared = self.may_share();
        self.vol.drop_tree_ref(block, 0, shared)
    }

    fn generation(&self) -> u64 {
        self.vol.generation
    }
}

impl<D: BlockDev> TreeStore<'_, D> {
    /// Whether blocks of this tree can be shared with another tree, so that their reference
    /// counts must be read. The space, root, chunk, device and checksum trees are never
    /// shared: each of their blocks has exactly one reference. Not reading counts for them
    /// also keeps the space tree from being read while a change to it is half done.
    fn may_share(&self) -> bool {
        self.owner == tree_id::FS
    }
}

/// The child addresses of an internal node (empty for a leaf).
fn internal_children(node: &Node) -> EngineResult<FVec<u64>> {
    let mut out = FVec::new();
    if let Body::Internal(children) = &node.body {
        out.try_reserve(children.len())?;
        for c in children.iter() {
            out.try_push(c.block)?;
        }
    }
    Ok(out)
}

fn u64_value(data: &[u8]) -> Option<u64> {
    bytes::u64_at(data, 0)
}

impl<D: BlockDev> Volume<D> {
    /// The running transaction's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The filesystem UUID.
    pub fn fsid(&self) -> [u8; 16] {
        self.sb.fsid
    }

    /// The superblock as last committed (per-device fields of the first device).
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The chunks, ordered by logical address.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The devices.
    pub fn devices(&self) -> &[DevSlot<D>] {
        &self.devs
    }

    /// Reads every superblock copy that fits on each present device and says what is wrong
    /// with it, if anything: fsck's view of the copies the mount chose among. An older copy
    /// is not wrong (the backups of the last commit may not have reached the media before a
    /// power cut); a copy that fails to decode, or that names another filesystem or device,
    /// is.
    pub fn check_superblock_copies(&mut self) -> EngineResult<FVec<BadSuperblock>> {
        let mut bad = FVec::new();
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let fsid = self.sb.fsid;
        for slot in self.devs.iter_mut() {
            let (devid, size) = (slot.devid, slot.size);
            let Some(dev) = slot.dev.as_mut() else {
                continue;
            };
            for &offset in format::SUPERBLOCK_OFFSETS.iter() {
                let end = offset.checked_add(BLOCK).ok_or(EngineError::Corrupt {
                    block: offset,
                    reason: "superblock offset overflows",
                })?;
                if end > size.min(dev.size()) {
                    continue;
                }
                let what = match dev
                    .read(offset, &mut buf)
                    .and_then(|()| Superblock::decode(offset, &buf))
                {
                    Ok(sb) if sb.fsid != fsid => Some("superblock copy of another filesystem"),
                    Ok(sb) if sb.devid != devid => Some("superblock copy of another device"),
                    Ok(_) => None,
                    Err(EngineError::Corrupt { reason, .. }) => Some(reason),
                    Err(EngineError::Io) => Some("superblock copy unreadable (I/O error)"),
                    Err(other) => return Err(other),
                };
                if let Some(what) = what {
                    bad.try_push(BadSuperblock {
                        devid,
                        offset,
                        what,
                    })?;
                }
            }
        }
        Ok(bad)
    }

    /// Gives back the devices (after unmount, or to reopen them).
    pub fn into_devices(self) -> FVec<DevSlot<D>> {
        self.devs
    }

    /// Root block of tree `id`.
    pub fn root(&self, id: u64) -> Option<u64> {
        match id {
            tree_id::ROOT => Some(self.root_tree),
            tree_id::CHUNK => Some(self.chunk_root),
            _ => self.roots.iter().find(|(t, _)| *t == id).map(|(_, r)| *r),
        }
    }

    fn set_root(&mut self, id: u64, root: u64) -> EngineResult<()> {
        match id {
            tree_id::ROOT => self.root_tree = root,
            tree_id::CHUNK => self.chunk_root = root,
            _ => match self.roots.iter_mut().find(|(t, _)| *t == id) {
                Some(entry) => entry.1 = root,
                None => self.roots.try_push((id, root))?,
            },
        }
        Ok(())
    }

    /// Whether the volume refuses changes (mounted read-only, or after an abort).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Turns changes off (or on again).
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    /// How many changes the volume has seen (see [`Volume::abort`]).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Whether anything changed since the last commit.
    pub fn needs_commit(&self) -> bool {
        self.changes != self.committed_changes
    }

    fn changed(&mut self) {
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
        self.in_flight = None;
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

    /// Sets the stored reference count of `block` to `count` (fsck's repair, once every
    /// reference has been counted): the space map, the chunk usage and the allocator's
    /// view follow.
    pub fn set_refcount(&mut self, block: u64, count: u64) -> EngineResult<()> {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        let (i, chunk_logical) = self.chunk_of(block, "block address outside every chunk")?;
        let old = self.stored_refcount(block)?;
        let delta = i64::try_from(i128::from(count).saturating_sub(i128::from(old)))
            .map_err(|_| EngineError::Range)?;
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

    /// The node store of tree `owner`.
    pub fn store(&mut self, owner: u64) -> TreeStore<'_, D> {
        TreeStore { vol: self, owner }
    }

    /// Looks up `key` in tree `id`.
    pub fn lookup(&mut self, id: u64, key: &Key) -> EngineResult<Option<FVec<u8>>> {
        let root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        btree::lookup(&mut self.store(id), root, key)
    }

    /// The first item of tree `id` at or after `key` (or at or before it, backward).
    pub fn seek(
        &mut self,
        id: u64,
        key: &Key,
        dir: btree::Direction,
    ) -> EngineResult<Option<(Key, FVec<u8>)>> {
        let root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        btree::seek(&mut self.store(id), root, key, dir)
    }

    /// Inserts or replaces an item of tree `id`.
    pub fn insert(&mut self, id: u64, key: Key, value: &[u8]) -> EngineResult<Option<FVec<u8>>> {
        self.changed();
        let mut root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        let old = btree::insert(&mut self.store(id), &mut root, key, value)?;
        self.set_root(id, root)?;
        Ok(old)
    }

    /// Removes an item of tree `id`.
    pub fn remove(&mut self, id: u64, key: &Key) -> EngineResult<Option<FVec<u8>>> {
        self.changed();
        let mut root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        let old = btree::remove(&mut self.store(id), &mut root, key)?;
        self.set_root(id, root)?;
        Ok(old)
    }

    /// Creates an empty tree `id`.
    pub fn create_tree(&mut self, id: u64) -> EngineResult<()> {
        self.changed();
        if self.root(id).is_some_and(|r| r != 0) {
            return Err(EngineError::Invalid("tree exists"));
        }
        let generation = self.generation;
        let root = self.store(id).alloc(Node::new_leaf(id, generation))?;
        self.set_root(id, root)
    }

    // ---- chunks and I/O ----

    fn chunk_index(&self, logical: u64) -> Option<usize> {
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
    fn chunk_of(&self, block: u64, reason: &'static str) -> EngineResult<(usize, u64)> {
        self.chunk_index(block)
            .and_then(|i| self.chunks.get(i).map(|c| (i, c.logical)))
            .ok_or(EngineError::Corrupt { block, reason })
    }

    fn dev_mut(&mut self, devid: u64) -> Option<&mut D> {
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

    /// Reads and verifies the tree block at `logical`, trying each copy in turn and
    /// rewriting copies that failed from the first good one.
    fn load(&mut self, logical: u64) -> EngineResult<Node> {
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
                .and_then(|()| Node::decode(&fsid, logical, &buf));
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

    /// Reads one copy of tree block `logical` and verifies it. `Ok(None)` if the copy's
    /// device is missing.
    pub fn read_copy(&mut self, logical: u64, copy: &Copy) -> EngineResult<Option<Node>> {
        let fsid = self.sb.fsid;
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let Some(dev) = self.dev_mut(copy.devid) else {
            return Ok(None);
        };
        dev.read(copy.physical, &mut buf)?;
        Node::decode(&fsid, logical, &buf).map(Some)
    }

    /// Reads every present copy of block `logical`: the contents of the first that passes
    /// `verify`, and the copies that fail it (or cannot be read).
    fn sort_copies(
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

    /// Rewrites the copies of tree block `logical` that fail verification from one that
    /// passes; returns how many were rewritten.
    pub fn repair_block(&mut self, logical: u64) -> EngineResult<usize> {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        let fsid = self.sb.fsid;
        let (good, bad) =
            self.sort_copies(logical, |buf| Node::decode(&fsid, logical, buf).is_ok())?;
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

    /// Ids of every tree, the root and chunk trees first.
    pub fn tree_ids(&self) -> EngineResult<FVec<u64>> {
        let mut ids = FVec::try_with_capacity(self.roots.len().saturating_add(2))?;
        ids.try_push(tree_id::ROOT)?;
        ids.try_push(tree_id::CHUNK)?;
        for (id, _) in self.roots.iter() {
            ids.try_push(*id)?;
        }
        Ok(ids)
    }

    /// The node at `logical`, from the cache or the devices.
    pub fn node(&mut self, logical: u64) -> EngineResult<&Node> {
        if !self.cache.contains_key(logical) {
            let node = self.load(logical)?;
            self.cache.insert(logical, Cached { node, dirty: false })?;
        }
        self.cache
            .get(logical)
            .map(|c| &c.node)
            .ok_or(EngineError::Io)
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

    /// Drops a tree block whose last reference is going: out of the cache, and pinned so
    /// that its space is reusable once this transaction is committed (also when it was
    /// allocated and freed within the transaction, and so never reaches the space tree).
    fn forget(&mut self, block: u64) -> EngineResult<()> {
        self.cache.remove(block);
        self.fresh.remove(block);
        self.pinned.try_push(block)
    }

    // ---- space map ----

    fn add_ref(&mut self, block: u64, delta: i64) -> EngineResult<()> {
        platform::relax();
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
        let Some(root) = self.root(tree_id::SPACE) else {
            return Ok(0);
        };
        let bitmap = btree::lookup(
            &mut self.store(tree_id::SPACE),
            root,
            &Key::new(chunk_logical, item::BITMAP, index),
        )?;
        let value = bitmap
            .as_deref()
            .map_or(0, |b| spacemap::get_entry(b, entry));
        if value < spacemap::OVERFLOW {
            return Ok(u64::from(value));
        }
        let over = btree::lookup(
            &mut self.store(tree_id::SPACE),
            root,
            &Key::new(block, item::REFCOUNT, 0),
        )?;
        match over.as_deref().and_then(|d| bytes::u32_at(d, 0)) {
            Some(n) if n >= 3 => Ok(u64::from(n)),
            _ => Err(EngineError::Corrupt {
                block: root,
                reason: "space map overflow entry without a valid count",
            }),
        }
    }

    /// The current reference count of `block`, including changes not yet applied.
    pub fn refcount(&mut self, block: u64) -> EngineResult<u64> {
        let stored = match self.in_flight {
            Some((b, count)) if b == block => count,
            _ => self.stored_refcount(block)?,
        };
        let delta = self.delayed.get(block).copied().unwrap_or(0);
        let count = i128::from(stored).saturating_add(i128::from(delta));
        u64::try_from(count).map_err(|_| EngineError::Corrupt {
            block,
            reason: "reference count below zero",
        })
    }

    /// Drops one reference to tree block `block`; at the last one, drops the node's
    /// references to its children too.
    fn drop_tree_ref(&mut self, block: u64, depth: u8, shared: bool) -> EngineResult<()> {
        if depth > super::node::MAX_LEVEL {
            return Err(EngineError::Corrupt {
                block,
                reason: "tree deeper than the maximum level",
            });
        }
        let count = if shared { self.refcount(block)? } else { 1 };
        if count == 1 {
            let children = internal_children(self.node(block)?)?;
            for child in children.iter() {
                self.drop_tree_ref(*child, depth.saturating_add(1), shared)?;
            }
            self.forget(block)?;
        }
        self.add_ref(block, -1)
    }

    fn alloc_block(&mut self, kind: Kind) -> EngineResult<u64> {
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
        let mut key = Key::MIN;
        while let Some((k, v)) = self.seek(tree_id::DEV, &key, btree::Direction::Forward)? {
            if k.kind == item::DEV_EXTENT {
                let len = bytes::u64_at(&v, 8).ok_or(EngineError::Corrupt {
                    block: k.offset,
                    reason: "short device extent item",
                })?;
                used.try_push((k.objectid, k.offset, len))?;
            }
            match k.successor() {
                Some(next) => key = next,
                None => break,
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

    // ---- data blocks ----

    /// Allocates up to `max` contiguous data blocks (at least one), each with a reference
    /// count of one; returns the first block's address and how many were allocated.
    pub fn alloc_data(&mut self, max: u64) -> EngineResult<(u64, u64)> {
        let max = max.max(1);
        for round in 0..2 {
            for (chunk, space) in self.chunks.iter().zip(self.spaces.iter_mut()) {
                if chunk.kind != Kind::Data {
                    continue;
                }
                if let Some((n, count)) = space.take_run(max) {
                    let start = chunk
                        .logical
                        .checked_add(n.saturating_mul(BLOCK))
                        .ok_or(EngineError::NoSpace)?;
                    for i in 0..count {
                        self.add_ref(start.saturating_add(i.saturating_mul(BLOCK)), 1)?;
                    }
                    return Ok((start, count));
                }
            }
            if round == 0 {
                self.alloc_chunk(Kind::Data)?;
            }
        }
        Err(EngineError::NoSpace)
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

    /// Adds `delta` to the reference count of data block `block`.
    pub fn data_ref(&mut self, block: u64, delta: i64) -> EngineResult<()> {
        match self.chunk_index(block).and_then(|i| self.chunks.get(i)) {
            Some(c) if c.kind == Kind::Data => self.add_ref(block, delta)?,
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
            self.remove(tree_id::CSUM, &super::inode::csum_key(block))?;
        }
        Ok(())
    }

    /// Writes whole data blocks at `logical` to every copy, and records their checksums.
    /// Each copy gets one write per stripe piece (one for the whole run on mirrors).
    pub fn write_data(&mut self, logical: u64, data: &[u8]) -> EngineResult<()> {
        platform::relax();
        self.changed();
        if data.len().checked_rem(BLOCK_SIZE as usize) != Some(0) {
            return Err(EngineError::Invalid("data write of a partial block"));
        }
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
        for (i, block) in data.chunks(BLOCK_SIZE as usize).enumerate() {
            let at = logical.saturating_add((i as u64).saturating_mul(BLOCK));
            let csum = super::crc32c::checksum(block);
            self.insert(
                tree_id::CSUM,
                super::inode::csum_key(at),
                &csum.to_le_bytes(),
            )?;
        }
        Ok(())
    }

    /// The pieces of the `len` bytes (whole blocks) at `logical` that are contiguous on
    /// each device: their copies, and their offset and length in the range.
    fn runs(&self, logical: u64, len: usize) -> EngineResult<FVec<(FVec<Copy>, usize, usize)>> {
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

    /// The recorded checksum of data block `logical`.
    fn data_csum(&mut self, logical: u64) -> EngineResult<u32> {
        self.lookup(tree_id::CSUM, &super::inode::csum_key(logical))?
            .as_deref()
            .and_then(|d| bytes::u32_at(d, 0))
            .ok_or(EngineError::Corrupt {
                block: logical,
                reason: "data block without a checksum",
            })
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
            if dev.read(copy.physical, buf).is_ok() && super::crc32c::checksum(buf) == want {
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
        Err(EngineError::Corrupt {
            block: logical,
            reason: "data checksum mismatch on every copy",
        })
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
            for (i, block) in piece.chunks_mut(BLOCK_SIZE as usize).enumerate() {
                let at = at.saturating_add((i as u64).saturating_mul(BLOCK));
                let want = self.data_csum(at)?;
                if !read || super::crc32c::checksum(block) != want {
                    self.read_data(at, block)?;
                }
            }
        }
        Ok(())
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
        let (good, bad) = self.sort_copies(logical, |buf| super::crc32c::checksum(buf) == want)?;
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

    /// Free bytes in chunks of `kind` (not counting unallocated device space).
    pub fn free_bytes(&self, kind: Kind) -> u64 {
        self.chunks
            .iter()
            .zip(self.spaces.iter())
            .filter(|(c, _)| c.kind == kind)
            .map(|(_, s)| s.free_blocks().saturating_mul(BLOCK))
            .sum()
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
            .sum()
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
        let in_chunks = self.free_bytes(kind);
        let profile = self
            .chunks
            .iter()
            .rev()
            .find(|c| c.kind == kind)
            .map_or(Profile::Single, |c| c.profile);
        let mut free: FVec<u64> = FVec::new();
        for slot in self.devs.iter().filter(|d| d.dev.is_some()) {
            let used: u64 = self
                .chunks
                .iter()
                .map(|c| {
                    let n = c.stripes.iter().filter(|s| s.devid == slot.devid).count() as u64;
                    n.saturating_mul(c.stripe_size())
                })
                .sum();
            let reserved: u64 = format::RESERVED_RANGES
                .iter()
                .filter(|(start, _)| *start < slot.size)
                .map(|(_, len)| *len)
                .sum();
            if free
                .try_push(slot.size.saturating_sub(used).saturating_sub(reserved))
                .is_err()
            {
                return in_chunks;
            }
        }
        in_chunks.saturating_add(allocatable(&mut free, profile))
    }

    /// Applies one queued reference change to the space tree.
    fn apply_delta(&mut self, block: u64, delta: i64) -> EngineResult<()> {
        platform::relax();
        let (i, chunk_logical) = self.chunk_of(block, "reference change outside every chunk")?;
        let old = self.stored_refcount(block)?;
        let new = i128::from(old).saturating_add(i128::from(delta));
        let new = u64::try_from(new).map_err(|_| EngineError::Corrupt {
            block,
            reason: "reference count below zero",
        })?;
        self.in_flight = Some((block, new));
        let result = self.write_refcount(block, chunk_logical, old, new);
        self.in_flight = None;
        result?;
        if let Some(space) = self.spaces.get_mut(i) {
            if old == 0 && new > 0 {
                space.used_bytes = space.used_bytes.saturating_add(BLOCK);
                space.used_dirty = true;
            } else if old > 0 && new == 0 {
                space.used_bytes = space.used_bytes.saturating_sub(BLOCK);
                space.used_dirty = true;
                self.pinned.try_push(block)?;
            }
        }
        let is_data = self.chunks.get(i).is_some_and(|c| c.kind == Kind::Data);
        if is_data && old > 0 && new == 0 {
            self.remove(tree_id::CSUM, &super::inode::csum_key(block))?;
        }
        Ok(())
    }

    /// Stores count `new` (was `old`) of `block` in the space tree: the bitmap entry, and
    /// the REFCOUNT item for counts of 3 and more.
    fn write_refcount(
        &mut self,
        block: u64,
        chunk_logical: u64,
        old: u64,
        new: u64,
    ) -> EngineResult<()> {
        let (index, entry) = spacemap::position(block.saturating_sub(chunk_logical) / BLOCK);
        let bkey = Key::new(chunk_logical, item::BITMAP, index);
        let mut bitmap = match self.lookup(tree_id::SPACE, &bkey)? {
            Some(b) if b.len() == spacemap::BITMAP_BYTES => b,
            Some(_) => {
                return Err(EngineError::Corrupt {
                    block,
                    reason: "space map bitmap item of the wrong size",
                })
            }
            None => mem::zeroed_bytes(spacemap::BITMAP_BYTES)?,
        };
        spacemap::set_entry(&mut bitmap, entry, spacemap::entry_for(new));
        if bitmap.iter().all(|&b| b == 0) {
            self.remove(tree_id::SPACE, &bkey)?;
        } else {
            self.insert(tree_id::SPACE, bkey, &bitmap)?;
        }
        let okey = Key::new(block, item::REFCOUNT, 0);
        if new >= 3 {
            let n =
                u32::try_from(new).map_err(|_| EngineError::Invalid("reference count overflow"))?;
            self.insert(tree_id::SPACE, okey, &n.to_le_bytes())?;
        } else if old >= 3 {
            self.remove(tree_id::SPACE, &okey)?;
        }
        Ok(())
    }

    /// Writes changed block group usage into the space tree.
    fn update_block_groups(&mut self) -> EngineResult<()> {
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
            self.put_u64_if_changed(
                tree_id::SPACE,
                Key::new(logical, item::BLOCK_GROUP, 0),
                used,
            )?;
        }
        Ok(())
    }

    /// Writes changed tree roots into the root tree.
    fn update_root_items(&mut self) -> EngineResult<()> {
        for i in 0..self.roots.len() {
            let Some(&(id, root)) = self.roots.get(i) else {
                continue;
            };
            self.put_u64_if_changed(tree_id::ROOT, Key::new(id, item::ROOT, 0), root)?;
        }
        Ok(())
    }

    /// Stores a `u64` item unless it already holds `value`: rewriting an unchanged item
    /// would still copy its path, and the commit loop would never settle.
    fn put_u64_if_changed(&mut self, tree: u64, key: Key, value: u64) -> EngineResult<()> {
        if self.lookup(tree, &key)?.as_deref().and_then(u64_value) != Some(value) {
            self.insert(tree, key, &value.to_le_bytes())?;
        }
        Ok(())
    }

    /// Commits the running transaction (see the module documentation for the order), and
    /// first finishes a commit started and not finished yet.
    pub fn commit(&mut self) -> EngineResult<()> {
        if let Some(generation) = self.pending.as_ref().map(|p| p.generation) {
            self.commit_finish(CommitTicket { generation }, false)?;
        }
        let ticket = self.commit_start()?;
        self.commit_finish(ticket, false)
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
        self.changed();
        let mut settled = false;
        for _ in 0..MAX_COMMIT_PASSES {
            self.update_root_items()?;
            self.update_block_groups()?;
            if self.delayed.is_empty() && self.spaces.iter().all(|s| !s.used_dirty) {
                settled = true;
                break;
            }
            let blocks = self.delayed.sorted_keys()?;
            for &b in blocks.iter() {
                if let Some(delta) = self.delayed.remove(b) {
                    self.apply_delta(b, delta)?;
                }
            }
        }
        if !settled {
            return Err(EngineError::Invalid("commit did not settle"));
        }
        // Every dirty block, to every copy. Only blocks of this transaction change, so the
        // dirty ones are among them (the cache may hold many more).
        let dirty = self.fresh.sorted_keys()?;
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let fsid = self.sb.fsid;
        for &b in dirty.iter() {
            platform::relax();
            let Some(cached) = self.cache.get(b) else {
                continue;
            };
            if !cached.dirty {
                continue;
            }
            cached.node.encode(&fsid, b, &mut buf)?;
            let copies = self.map_block(b)?;
            for copy in copies.iter() {
                if let Some(dev) = self.dev_mut(copy.devid) {
                    dev.write(copy.physical, &buf)?;
                }
            }
        }
        self.sb.generation = self.generation;
        self.sb.root_tree = self.root_tree;
        self.sb.chunk_tree = self.chunk_root;
        self.sb.bytes_used = self.spaces.iter().map(|s| s.used_bytes).sum();
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
            // again from the devices.
            self.cache.clear();
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
        self.generation = self.generation.saturating_add(1);
        Ok(CommitTicket { generation })
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

    // ---- creating a filesystem ----

    /// Formats `devs` as a new ferrofs and returns it mounted, at generation 2.
    pub fn mkfs(devs: FVec<D>, opts: &MkfsOptions<'_>) -> EngineResult<Self> {
        if devs.is_empty() || devs.len() != opts.dev_uuids.len() {
            return Err(EngineError::Invalid("one device UUID per device is needed"));
        }
        if opts.label.len() > format::LABEL_MAX || opts.label.contains(&0) {
            return Err(EngineError::Invalid("label too long or contains NUL"));
        }
        for profile in [opts.data, opts.metadata] {
            if devs.len() < profile.min_devices() {
                return Err(EngineError::Invalid("not enough devices for the profile"));
            }
        }
        let mut sb = Superblock::empty()?;
        sb.fsid = opts.fsid;
        sb.num_devices = devs.len() as u64;
        if let Some(dst) = sb.label.get_mut(..opts.label.len()) {
            dst.copy_from_slice(opts.label);
        }
        let mut slots = FVec::try_with_capacity(devs.len())?;
        let mut devs = devs;
        let mut devid = devs.len() as u64;
        let mut total = 0u64;
        while let Some(dev) = devs.pop() {
            let size = dev.size() & !(BLOCK - 1);
            if size < MIN_DEVICE_SIZE {
                return Err(EngineError::Invalid("device smaller than the minimum"));
            }
            total = total.saturating_add(size);
            let uuid = opts
                .dev_uuids
                .get(usize::try_from(devid.saturating_sub(1)).unwrap_or(usize::MAX))
                .copied()
                .ok_or(EngineError::Invalid("missing device UUID"))?;
            slots.try_push(DevSlot {
                devid,
                uuid,
                size,
                dev: Some(dev),
            })?;
            devid = devid.saturating_sub(1);
        }
        slots.reverse();
        sb.total_bytes = total;
        let mut vol = Self {
            sb,
            devs: slots,
            chunks: FVec::new(),
            spaces: FVec::new(),
            generation: 1,
            root_tree: 0,
            chunk_root: 0,
            roots: FVec::new(),
            cache: U64Map::new(),
            cache_limit: DEFAULT_CACHE_LIMIT,
            fresh: U64Map::new(),
            delayed: U64Map::new(),
            pinned: FVec::new(),
            pending: None,
            in_flight: None,
            repairs: FVec::new(),
            read_only: false,
            changes: 0,
            committed_changes: 0,
            durable_generation: 0,
        };
        // Chunks first (in memory), then the trees that describe them.
        let mut extents: FVec<(u64, u64, u64)> = FVec::new(); // (devid, physical, length)
        for (kind, profile) in [
            (Kind::System, opts.metadata),
            (Kind::Metadata, opts.metadata),
            (Kind::Data, opts.data),
        ] {
            // Logical addresses start at 1 MiB and chunks follow each other 1 MiB-aligned.
            let next = vol
                .chunks
                .last()
                .map_or(1 << 20, |c| c.logical.saturating_add(c.length));
            let next = round_down(next.saturating_add((1 << 20) - 1), 1 << 20);
            let chunk = plan_chunk(next, &vol.devs, &extents, kind, profile, total)?;
            for s in chunk.stripes.iter() {
                extents.try_push((s.devid, s.physical, chunk.stripe_size()))?;
            }
            vol.add_chunk(chunk)?;
        }
        vol.root_tree = vol
            .store(tree_id::ROOT)
            .alloc(Node::new_leaf(tree_id::ROOT, 1))?;
        vol.chunk_root = vol
            .store(tree_id::CHUNK)
            .alloc(Node::new_leaf(tree_id::CHUNK, 1))?;
        for id in [tree_id::SPACE, tree_id::DEV, tree_id::FS, tree_id::CSUM] {
            vol.create_tree(id)?;
        }
        for i in 0..vol.devs.len() {
            let Some(slot) = vol.devs.get(i) else {
                continue;
            };
            let (devid, size, uuid) = (slot.devid, slot.size, slot.uuid);
            let mut item = mem::zeroed_bytes(DEV_ITEM_SIZE)?;
            bytes::put_u64(&mut item, 0, size);
            bytes::put(&mut item, 8, &uuid);
            vol.insert(
                tree_id::CHUNK,
                Key::new(format::DEV_ITEMS_OBJECTID, item::DEV, devid),
                &item,
            )?;
        }
        for i in 0..vol.chunks.len() {
            vol.record_chunk(i)?;
        }
        vol.commit()?;
        Ok(vol)
    }

    /// Writes chunk `i` into the chunk tree, its stripes into the device tree and, for a
    /// system chunk, its item into the superblock's system chunk array.
    fn record_chunk(&mut self, i: usize) -> EngineResult<()> {
        let chunk = self
            .chunks
            .get(i)
            .ok_or(EngineError::Invalid("no such chunk"))?;
        let (logical, kind, stripe_size) = (chunk.logical, chunk.kind, chunk.stripe_size());
        let stripes = chunk.stripes.try_clone()?;
        let mut encoded = FVec::new();
        chunk.encode(&mut encoded)?;
        if kind == Kind::System {
            let start = self.sb.sys_chunks_len;
            let end = start.saturating_add(8).saturating_add(encoded.len());
            let dst = self
                .sb
                .sys_chunks
                .get_mut(start..end)
                .ok_or(EngineError::NoSpace)?;
            let (head, tail) = dst.split_at_mut(8);
            head.copy_from_slice(&logical.to_le_bytes());
            tail.copy_from_slice(&encoded);
            self.sb.sys_chunks_len = end;
        }
        self.insert(
            tree_id::CHUNK,
            Key::new(format::CHUNK_OBJECTID, item::CHUNK, logical),
            &encoded,
        )?;
        for s in stripes.iter() {
            let mut ext = [0u8; 16];
            bytes::put_u64(&mut ext, 0, logical);
            bytes::put_u64(&mut ext, 8, stripe_size);
            self.insert(
                tree_id::DEV,
                Key::new(s.devid, item::DEV_EXTENT, s.physical),
                &ext,
            )?;
        }
        Ok(())
    }
    fn add_chunk(&mut self, chunk: Chunk) -> EngineResult<()> {
        let at = self.chunks.partition_point(|c| c.logical < chunk.logical);
        let space = ChunkSpace::new(chunk.length)?;
        self.chunks.try_insert(at, chunk)?;
        self.spaces.try_insert(at, space)
    }

    // ---- mounting ----

    /// Mounts the filesystem on `devs`. With `degraded`, devices may be missing as long as
    /// every chunk keeps a copy.
    pub fn open(devs: FVec<D>, degraded: bool) -> EngineResult<Self> {
        Self::open_with(
            devs,
            OpenOptions {
                degraded,
                read_only: false,
            },
        )
    }

    /// Mounts the filesystem on `devs` with `opts`. Read-only mounts never write: not even
    /// to repair a bad copy found while reading.
    pub fn open_with(devs: FVec<D>, opts: OpenOptions) -> EngineResult<Self> {
        let degraded = opts.degraded;
        let mut devs = devs;
        // The newest valid superblock of every device.
        let mut found: FVec<(Superblock, D)> = FVec::new();
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let mut last_err = EngineError::Invalid("no ferrofs superblock found");
        while let Some(mut dev) = devs.pop() {
            let mut best: Option<Superblock> = None;
            for &offset in format::SUPERBLOCK_OFFSETS.iter() {
                if offset.saturating_add(BLOCK) > dev.size() {
                    continue;
                }
                let sb = dev
                    .read(offset, &mut buf)
                    .and_then(|()| Superblock::decode(offset, &buf));
                match sb {
                    Ok(sb) if best.as_ref().map_or(true, |b| sb.generation > b.generation) => {
                        best = Some(sb)
                    }
                    Ok(_) => {}
                    Err(err) => {
                        if offset == format::SUPERBLOCK_OFFSET {
                            last_err = err;
                        }
                    }
                }
            }
            match best {
                Some(sb) => found.try_push((sb, dev))?,
                None => return Err(last_err),
            }
        }
        let newest = found
            .iter()
            .map(|(sb, _)| sb)
            .max_by_key(|sb| sb.generation)
            .ok_or(EngineError::Invalid("no devices"))?
            .try_clone()?;
        let mut slots: FVec<DevSlot<D>> = FVec::new();
        while let Some((sb, dev)) = found.pop() {
            if sb.fsid != newest.fsid {
                return Err(EngineError::Invalid(
                    "devices belong to different filesystems",
                ));
            }
            if slots.iter().any(|s| s.devid == sb.devid) {
                return Err(EngineError::Invalid("two devices with the same device id"));
            }
            slots.try_push(DevSlot {
                devid: sb.devid,
                uuid: sb.dev_uuid,
                size: sb.dev_total_bytes,
                dev: Some(dev),
            })?;
        }
        let mut vol = Self {
            sb: newest.try_clone()?,
            devs: slots,
            chunks: FVec::new(),
            spaces: FVec::new(),
            generation: newest.generation.saturating_add(1),
            root_tree: newest.root_tree,
            chunk_root: newest.chunk_tree,
            roots: FVec::new(),
            cache: U64Map::new(),
            cache_limit: DEFAULT_CACHE_LIMIT,
            fresh: U64Map::new(),
            delayed: U64Map::new(),
            pinned: FVec::new(),
            pending: None,
            in_flight: None,
            repairs: FVec::new(),
            read_only: opts.read_only,
            changes: 0,
            committed_changes: 0,
            durable_generation: newest.generation,
        };
        // Bootstrap the system chunks from the superblock, then read the chunk tree.
        let sys = newest.sys_chunk_bytes();
        let mut off = 0usize;
        while off < sys.len() {
            let logical = bytes::u64_at(sys, off).ok_or(EngineError::Corrupt {
                block: format::SUPERBLOCK_OFFSET,
                reason: "truncated system chunk array",
            })?;
            let rest = sys.get(off.saturating_add(8)..).unwrap_or(&[]);
            let (chunk, used) = Chunk::decode(logical, rest, format::SUPERBLOCK_OFFSET)?;
            vol.add_chunk(chunk)?;
            off = off.saturating_add(8).saturating_add(used);
        }
        vol.load_chunk_tree()?;
        // Devices listed in the chunk tree but not given.
        let present = vol.devs.iter().filter(|d| d.dev.is_some()).count() as u64;
        if present < newest.num_devices && !degraded {
            return Err(EngineError::Invalid(
                "devices missing: mount with degraded to continue",
            ));
        }
        vol.check_chunks_readable()?;
        vol.load_roots()?;
        vol.load_space_map()?;
        Ok(vol)
    }

    fn load_chunk_tree(&mut self) -> EngineResult<()> {
        let mut key = Key::new(format::DEV_ITEMS_OBJECTID, item::DEV, 0);
        while let Some((k, v)) = self.seek(tree_id::CHUNK, &key, btree::Direction::Forward)? {
            if k.kind == item::DEV && k.objectid == format::DEV_ITEMS_OBJECTID {
                let size = u64_value(&v).ok_or(EngineError::Corrupt {
                    block: self.chunk_root,
                    reason: "short device item",
                })?;
                let uuid: [u8; 16] = bytes::array(&v, 8).ok_or(EngineError::Corrupt {
                    block: self.chunk_root,
                    reason: "short device item",
                })?;
                if !self.devs.iter().any(|d| d.devid == k.offset) {
                    self.devs.try_push(DevSlot {
                        devid: k.offset,
                        uuid,
                        size,
                        dev: None,
                    })?;
                }
            } else if k.kind == item::CHUNK
                && k.objectid == format::CHUNK_OBJECTID
                && self.chunk_index(k.offset).is_none()
            {
                let (chunk, _) = Chunk::decode(k.offset, &v, self.chunk_root)?;
                self.add_chunk(chunk)?;
            }
            match k.successor() {
                Some(next) => key = next,
                None => break,
            }
        }
        Ok(())
    }

    fn check_chunks_readable(&self) -> EngineResult<()> {
        let present = |devid: u64| {
            self.devs
                .iter()
                .any(|d| d.devid == devid && d.dev.is_some())
        };
        for chunk in self.chunks.iter() {
            if !chunk.is_readable(present) {
                return Err(EngineError::Invalid(
                    "too many devices missing to read every chunk",
                ));
            }
        }
        Ok(())
    }

    fn load_roots(&mut self) -> EngineResult<()> {
        let mut key = Key::new(0, item::ROOT, 0);
        while let Some((k, v)) = self.seek(tree_id::ROOT, &key, btree::Direction::Forward)? {
            if k.kind == item::ROOT {
                let root = u64_value(&v).ok_or(EngineError::Corrupt {
                    block: self.root_tree,
                    reason: "short root item",
                })?;
                self.roots.try_push((k.objectid, root))?;
            }
            match k.successor() {
                Some(next) => key = next,
                None => break,
            }
        }
        for id in [tree_id::SPACE, tree_id::DEV, tree_id::FS, tree_id::CSUM] {
            if self.root(id).is_none() {
                return Err(EngineError::Corrupt {
                    block: self.root_tree,
                    reason: "root tree lacks a required tree",
                });
            }
        }
        Ok(())
    }

    fn load_space_map(&mut self) -> EngineResult<()> {
        for i in 0..self.chunks.len() {
            let logical = self
                .chunks
                .get(i)
                .map(|c| c.logical)
                .ok_or(EngineError::Io)?;
            let mut key = Key::new(logical, item::BITMAP, 0);
            while let Some((k, v)) = self.seek(tree_id::SPACE, &key, btree::Direction::Forward)? {
                if k.objectid != logical || k.kind != item::BITMAP {
                    break;
                }
                let base = k.offset.saturating_mul(spacemap::BLOCKS_PER_BITMAP);
                let space = self.spaces.get_mut(i).ok_or(EngineError::Io)?;
                for e in 0..spacemap::BLOCKS_PER_BITMAP {
                    if spacemap::get_entry(&v, e as usize) != 0 {
                        let n = base.saturating_add(e);
                        if n >= space.blocks {
                            return Err(EngineError::Corrupt {
                                block: logical,
                                reason: "space map entry beyond the end of its chunk",
                            });
                        }
                        space.set(n, true);
                        space.used_bytes = space.used_bytes.saturating_add(BLOCK);
                    }
                }
                match k.successor() {
                    Some(next) => key = next,
                    None => break,
                }
            }
            if let Some(space) = self.spaces.get_mut(i) {
                space.used_dirty = false;
            }
        }
        Ok(())
    }
}

/// Encoded size of a device item: size (8), UUID (16).
pub const DEV_ITEM_SIZE: usize = 24;

/// Smallest device mkfs accepts.
pub const MIN_DEVICE_SIZE: u64 = 64 << 20;

/// Rounds `v` down to a multiple of `unit` (a power of two or any non-zero value).
fn round_down(v: u64, unit: u64) -> u64 {
    v.checked_rem(unit).map_or(v, |r| v.saturating_sub(r))
}

/// Data bytes chunks of `profile` could take from devices with `free` unallocated bytes
/// each: copies on distinct devices for the mirrored profiles, so the devices fill
/// unevenly; a greedy fill in 64 MiB steps (the answer is an estimate, as for `df`).
fn allocatable(free: &mut [u64], profile: Profile) -> u64 {
    let copies = profile.copies() as u64;
    let total: u64 = free.iter().sum();
    match profile {
        Profile::Single | Profile::Raid0 | Profile::Dup => total.checked_div(copies).unwrap_or(0),
        Profile::Raid1 | Profile::Raid1c3 | Profile::Raid10 => {
            const STEP: u64 = 64 << 20;
            let width = profile.copies();
            let mut data = 0u64;
            loop {
                free.sort_unstable_by(|a, b| b.cmp(a));
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

/// Chooses devices and extents for a new chunk of `kind` with `profile`.
fn plan_chunk<D>(
    logical: u64,
    devs: &[DevSlot<D>],
    used: &[(u64, u64, u64)],
    kind: Kind,
    profile: Profile,
    total: u64,
) -> EngineResult<Chunk> {
    // Target sizes: small volumes get chunks of about a tenth of their size.
    let target = match kind {
        Kind::System => 4 << 20,
        Kind::Metadata => (total / 10).clamp(16 << 20, 256 << 20),
        Kind::Data => (total / 10).clamp(32 << 20, 1 << 30),
    };
    let devices = profile
        .devices_for(devs.len())
        .ok_or(EngineError::Invalid("not enough devices for the profile"))?;
    let stripes = profile.stripes_for(devices);
    let data_stripes = profile.data_stripes(stripes) as u64;
    let unit = if data_stripes > 1 {
        super::chunk::STRIPE_LEN
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
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    let chosen = candidates.get(..devices).ok_or(EngineError::NoSpace)?;
    let smallest = chosen.iter().map(|c| c.0).min().unwrap_or(0);
    let stripe_size = round_down(
        target.checked_div(data_stripes).unwrap_or(0).min(smallest),
        unit.max(super::chunk::STRIPE_LEN),
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
    busy.sort_unstable();
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
