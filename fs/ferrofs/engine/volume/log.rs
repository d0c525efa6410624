// SPDX-License-Identifier: GPL-2.0

//! The fsync log: what `fsync` writes instead of a whole commit, and its replay at mount.
//!
//! A commit rewrites every tree a transaction touched, from leaf to root, in every copy,
//! and then the superblocks: a dozen tree blocks and two cache flushes for a 4 KiB write.
//! The log makes a running transaction durable with far less: the changes it made to the
//! trees files live in (the filesystem and checksum trees) are recorded as they happen,
//! as item inserts and removals, data reference changes and the checksums of the data
//! written, and `fsync` appends those recorded since the last log write to the log area,
//! a run of metadata blocks mkfs set aside, in one write per copy and one flush.
//!
//! Mounting after a crash replays the log's records on top of the last commit, in order,
//! and commits: the trees come out as the transaction had them at the last log write. The
//! derived state (space map, tree roots, chunk usage) is not logged; replay rebuilds it
//! as any transaction does. A record counts only if every block of it is whole (checksum,
//! filesystem, generation, place) and every data block it references reads back with the
//! checksum it recorded: a power cut before the flush of a log write may leave the log
//! blocks on disk without the data, and such a record, whose `fsync` never returned, is
//! dropped with every record after it.
//!
//! Records carry the generation of the transaction they extend (the last commit's plus
//! one), so a commit empties the log without writing it: the old records name a
//! generation that is no longer the next one. What the log cannot replay (a new chunk, a
//! new tree, a label or feature change) blocks it until the next commit, which `fsync`
//! then does instead; so does a log too full for the next record.

use super::super::bytes;
use super::super::chunk::Kind;
use super::super::crc32c;
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format::{self, tree_id, BLOCK_SIZE};
use super::super::key::Key;
use super::super::mem::{self, FVec};
use super::{RefOwner, Tree, Volume, BLOCK};
use crate::platform;

/// Bytes of a log block's header: checksum (4), payload bytes (4), magic (8), filesystem
/// id (16), generation (8), place in the area (8), first block of its record (8), blocks
/// in its record (4), reserved (4).
const HEADER: usize = 64;
/// Payload bytes of one log block.
const PAYLOAD: usize = BLOCK_SIZE as usize - HEADER;
/// Identifies a log block.
const MAGIC: &[u8; 8] = b"FRFSLOG1";

/// Encoded size of the root-tree item naming the log area: first block (8), blocks (8).
pub const LOG_AREA_ITEM_SIZE: usize = 16;
/// Blocks mkfs sets aside for the log at most (4 MiB): room for hundreds of small fsyncs
/// between commits.
pub const LOG_AREA_MAX_BLOCKS: u64 = 1024;

/// Record operations.
mod op {
    /// An item inserted or replaced: tree, key, value length (`u32`), value.
    pub(super) const INSERT: u8 = 1;
    /// An item removed: tree, key.
    pub(super) const REMOVE: u8 = 2;
    /// A data reference change of a run of blocks: first block, blocks, delta (`i64`),
    /// owner (tree, inode, file offset of the first block).
    pub(super) const DATA_REF: u8 = 3;
    /// Data written: first block, blocks (`u32`), then the checksum of each block.
    pub(super) const DATA: u8 = 4;
}

/// The log area: `blocks` metadata blocks from `start`, named by a root-tree item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogArea {
    /// Logical address of the first block.
    pub start: u64,
    /// Number of blocks.
    pub blocks: u64,
}

impl LogArea {
    /// The root-tree key of the item naming the area.
    pub const KEY: Key = Key::new(format::LOG_OBJECTID, format::item::LOG_AREA, 0);

    /// The item's value.
    pub fn encode(&self) -> [u8; LOG_AREA_ITEM_SIZE] {
        let mut out = [0u8; LOG_AREA_ITEM_SIZE];
        bytes::put_u64(&mut out, 0, self.start);
        bytes::put_u64(&mut out, 8, self.blocks);
        out
    }

    /// Decodes the item read from root tree block `from`.
    pub fn decode(data: &[u8], from: u64) -> EngineResult<Self> {
        let corrupt = |reason| EngineError::Corrupt {
            block: from,
            reason,
        };
        if data.len() != LOG_AREA_ITEM_SIZE {
            return Err(corrupt("log area item has the wrong size"));
        }
        match (bytes::u64_at(data, 0), bytes::u64_at(data, 8)) {
            (Some(start), Some(blocks)) if blocks > 0 && start % BLOCK == 0 => {
                Ok(Self { start, blocks })
            }
            _ => Err(corrupt("log area item names no blocks")),
        }
    }

    /// Address of block `i` of the area.
    pub fn block(&self, i: u64) -> EngineResult<u64> {
        i.checked_mul(BLOCK)
            .and_then(|off| self.start.checked_add(off))
            .filter(|_| i < self.blocks)
            .ok_or(EngineError::Range)
    }
}

/// The log's state in a mounted volume.
#[derive(Default)]
pub(super) struct FsyncLog {
    /// Where the log is; `None` on a volume made without one (fsync commits).
    pub(super) area: Option<LogArea>,
    /// Operations of the running transaction recorded since the last log write.
    ops: FVec<u8>,
    /// Blocks of the area the running transaction's records take so far.
    next: u64,
    /// The running transaction did something the log cannot replay, or recording failed:
    /// `fsync` must commit.
    blocked: bool,
    /// Replay is applying records: they are not recorded again.
    replaying: bool,
}

/// A log write started by [`Volume::log_start`], to be finished by
/// [`Volume::log_finish`] once the devices are flushed.
#[must_use = "a started log write must be finished"]
#[derive(Debug, PartialEq, Eq)]
pub struct LogTicket {
    /// `changes` of the volume when the records were written.
    changes: u64,
}

/// What a log write did.
#[derive(Debug, PartialEq, Eq)]
pub enum LogWrite {
    /// Nothing was recorded since the last log write or commit.
    Nothing,
    /// Records written; durable once every device is flushed.
    Started(LogTicket),
    /// The log cannot take the transaction (blocked, full, or no log): commit instead.
    NeedsCommit,
}

fn put_key(out: &mut FVec<u8>, tree: Tree, key: &Key) -> EngineResult<()> {
    out.try_extend_from_slice(&tree.id().to_le_bytes())?;
    out.try_extend_from_slice(&key.objectid.to_le_bytes())?;
    out.try_push(key.kind)?;
    out.try_extend_from_slice(&key.offset.to_le_bytes())
}

/// Reads the fields of encoded records, failing with `Corrupt` naming the log block.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    block: u64,
}

impl Reader<'_> {
    fn corrupt(&self) -> EngineError {
        EngineError::Corrupt {
            block: self.block,
            reason: "log record truncated",
        }
    }

    fn take(&mut self, n: usize) -> EngineResult<&[u8]> {
        let end = self.at.checked_add(n).ok_or_else(|| self.corrupt())?;
        let got = self.data.get(self.at..end).ok_or_else(|| self.corrupt())?;
        self.at = end;
        Ok(got)
    }

    fn u8(&mut self) -> EngineResult<u8> {
        Ok(bytes::u8_at(self.take(1)?, 0).unwrap_or(0))
    }

    fn u32(&mut self) -> EngineResult<u32> {
        bytes::u32_at(self.take(4)?, 0).ok_or_else(|| self.corrupt())
    }

    fn u64(&mut self) -> EngineResult<u64> {
        bytes::u64_at(self.take(8)?, 0).ok_or_else(|| self.corrupt())
    }

    fn key(&mut self) -> EngineResult<(Tree, Key)> {
        let tree = Tree::with_id(self.u64()?);
        let objectid = self.u64()?;
        let kind = self.u8()?;
        let offset = self.u64()?;
        Ok((tree, Key::new(objectid, kind, offset)))
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// Whether changes to `tree` are logged: every tree files live in. The others are derived
/// from those changes (space map, roots) or change only in ways that block the log.
fn logged_tree(tree: Tree) -> bool {
    !matches!(
        tree.id(),
        tree_id::ROOT | tree_id::SPACE | tree_id::CHUNK | tree_id::DEV
    )
}

impl FsyncLog {
    fn recording(&self) -> bool {
        self.area.is_some() && !self.blocked && !self.replaying
    }

    /// Blocks the log until the next commit, dropping what it recorded.
    pub(super) fn block(&mut self) {
        if self.area.is_some() {
            self.blocked = true;
            self.ops = FVec::new();
        }
    }

    /// Records `encode`'s operation, or blocks the log if memory runs out or the records
    /// could no longer fit in the area (so a transaction writing gigabytes between fsyncs
    /// does not hold their records in memory).
    fn record(&mut self, encode: impl FnOnce(&mut FVec<u8>) -> EngineResult<()>) {
        if !self.recording() {
            return;
        }
        let room = self
            .area
            .map_or(0, |a| a.blocks.saturating_sub(self.next))
            .saturating_mul(PAYLOAD as u64);
        let at = self.ops.len();
        if encode(&mut self.ops).is_err() || self.ops.len() as u64 > room {
            self.ops.truncate(at);
            self.block();
        }
    }

    /// A new transaction begins (a commit started): the old records are obsolete.
    pub(super) fn reset(&mut self) {
        self.ops = FVec::new();
        self.next = 0;
        self.blocked = false;
    }
}

impl<D: BlockDev> Volume<D> {
    /// The log area, if the volume has one.
    pub fn log_area(&self) -> Option<LogArea> {
        self.log.area
    }

    /// Records an insert into `tree` for the log.
    pub(super) fn log_insert(&mut self, tree: Tree, key: &Key, value: &[u8]) {
        if !logged_tree(tree) {
            return;
        }
        self.log.record(|out| {
            out.try_push(op::INSERT)?;
            put_key(out, tree, key)?;
            let len = u32::try_from(value.len()).map_err(|_| EngineError::Range)?;
            out.try_extend_from_slice(&len.to_le_bytes())?;
            out.try_extend_from_slice(value)
        });
    }

    /// Records a removal from `tree` for the log.
    pub(super) fn log_remove(&mut self, tree: Tree, key: &Key) {
        if !logged_tree(tree) {
            return;
        }
        self.log.record(|out| {
            out.try_push(op::REMOVE)?;
            put_key(out, tree, key)
        });
    }

    /// Records a reference change of `count` data blocks from `block`, held by `owner`.
    pub(super) fn log_data_ref(&mut self, block: u64, count: u64, delta: i64, owner: RefOwner) {
        let RefOwner::File { tree, ino, offset } = owner else {
            return;
        };
        self.log.record(|out| {
            out.try_push(op::DATA_REF)?;
            for v in [block, count] {
                out.try_extend_from_slice(&v.to_le_bytes())?;
            }
            out.try_extend_from_slice(&delta.to_le_bytes())?;
            for v in [tree.id(), ino, offset] {
                out.try_extend_from_slice(&v.to_le_bytes())?;
            }
            Ok(())
        });
    }

    /// Records data written at `logical`, with the checksum of each block.
    pub(super) fn log_data(&mut self, logical: u64, sums: &[u32]) {
        self.log.record(|out| {
            out.try_push(op::DATA)?;
            out.try_extend_from_slice(&logical.to_le_bytes())?;
            let count = u32::try_from(sums.len()).map_err(|_| EngineError::Range)?;
            out.try_extend_from_slice(&count.to_le_bytes())?;
            for s in sums.iter() {
                out.try_extend_from_slice(&s.to_le_bytes())?;
            }
            Ok(())
        });
    }

    /// Something the log cannot replay happened: `fsync` commits until the next commit.
    pub(super) fn log_block(&mut self) {
        self.log.block();
    }

    /// Starts a log write: appends the records of the running transaction made since the
    /// last log write to the log area, on every copy. Durable once every device is
    /// flushed, which [`Self::log_finish`] is told of. A commit started and not finished
    /// is finished first (the records extend the transaction after it).
    pub fn log_start(&mut self) -> EngineResult<LogWrite> {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        let Some(area) = self.log.area else {
            return Ok(LogWrite::NeedsCommit);
        };
        if self.log.blocked {
            return Ok(LogWrite::NeedsCommit);
        }
        if self.log.ops.is_empty() {
            // Nothing recorded: either nothing changed since the last commit or log write,
            // or only what a commit writes.
            let unrecorded = self.needs_commit() && self.changes != self.logged_changes;
            return Ok(if unrecorded {
                LogWrite::NeedsCommit
            } else {
                LogWrite::Nothing
            });
        }
        self.finish_pending()?;
        let len = self.log.ops.len();
        let blocks = len.div_ceil(PAYLOAD).max(1);
        let blocks_u64 = blocks as u64;
        let first = self.log.next;
        if first
            .checked_add(blocks_u64)
            .map_or(true, |end| end > area.blocks)
        {
            return Ok(LogWrite::NeedsCommit);
        }
        let record_blocks = u32::try_from(blocks).map_err(|_| EngineError::Range)?;
        let mut encoded = mem::zeroed_bytes(blocks.saturating_mul(BLOCK_SIZE as usize))?;
        for (i, (block, payload)) in encoded
            .chunks_mut(BLOCK_SIZE as usize)
            .zip(self.log.ops.chunks(PAYLOAD))
            .enumerate()
        {
            let place = first.saturating_add(i as u64);
            let fields = bytes::put_u32(block, 4, payload.len() as u32)
                .and_then(|()| bytes::put(block, 8, MAGIC))
                .and_then(|()| bytes::put(block, 16, &self.sb.fsid))
                .and_then(|()| bytes::put_u64(block, 32, self.generation))
                .and_then(|()| bytes::put_u64(block, 40, place))
                .and_then(|()| bytes::put_u64(block, 48, first))
                .and_then(|()| bytes::put_u32(block, 56, record_blocks))
                .and_then(|()| bytes::put(block, HEADER, payload));
            fields.ok_or(EngineError::Range)?;
            let crc = crc32c::checksum(block.get(4..).ok_or(EngineError::Range)?);
            bytes::put_u32(block, 0, crc).ok_or(EngineError::Range)?;
        }
        // The area is contiguous in one chunk, so each copy is one write.
        if let Err(err) = self.write_all_copies(area.block(first)?, &encoded) {
            // What reached the area is unknown: only a commit is sure now.
            self.log.block();
            return Err(err);
        }
        self.log.next = first.saturating_add(blocks_u64);
        self.log.ops.clear();
        Ok(LogWrite::Started(LogTicket {
            changes: self.changes,
        }))
    }

    /// Finishes the log write of `ticket` once the caller flushed every device since it
    /// started (`flushed` is how that went). A failed flush leaves the log's state on disk
    /// unknown, and means a write since the last flush failed, perhaps of data the
    /// running transaction points at: the log is blocked, and the caller must not commit
    /// that transaction but abort it. (A mount replays no record whose data has no good
    /// copy.)
    pub fn log_finish(&mut self, ticket: LogTicket, flushed: EngineResult<()>) -> EngineResult<()> {
        match flushed {
            Ok(()) => {
                self.logged_changes = self.logged_changes.max(ticket.changes);
                Ok(())
            }
            Err(err) => {
                self.log.block();
                Err(err)
            }
        }
    }

    /// Flushes every present device; the first error, after trying them all.
    pub fn flush_devices(&mut self) -> EngineResult<()> {
        let mut flushed = Ok(());
        for slot in self.devs.iter_mut() {
            if let Some(dev) = slot.dev.as_mut() {
                flushed = flushed.and(dev.flush());
            }
        }
        flushed
    }

    /// Reads block `place` of the log area into `buf`: the first copy that is a whole log
    /// block of this filesystem, the transaction `generation` and that place; `false` if
    /// no copy is.
    fn read_log_block(
        &mut self,
        area: &LogArea,
        place: u64,
        generation: u64,
        buf: &mut FVec<u8>,
    ) -> EngineResult<bool> {
        let fsid = self.sb.fsid;
        let (good, _) = self.sort_copies(area.block(place)?, |b| {
            let whole = bytes::u32_at(b, 0)
                .zip(b.get(4..))
                .is_some_and(|(crc, rest)| crc == crc32c::checksum(rest));
            whole
                && b.get(8..16) == Some(&MAGIC[..])
                && b.get(16..32) == Some(&fsid[..])
                && bytes::u64_at(b, 32) == Some(generation)
                && bytes::u64_at(b, 40) == Some(place)
        })?;
        match good {
            Some(block) => {
                *buf = block;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether every data block `DATA` records of `payload` names reads back, from some
    /// copy, with its recorded checksum.
    fn log_data_durable(&mut self, payload: &[u8], from: u64) -> EngineResult<bool> {
        let mut r = Reader {
            data: payload,
            at: 0,
            block: from,
        };
        while !r.done() {
            match r.u8()? {
                op::INSERT => {
                    r.key()?;
                    let len = r.u32()? as usize;
                    r.take(len)?;
                }
                op::REMOVE => {
                    r.key()?;
                }
                op::DATA_REF => {
                    r.take(48)?;
                }
                op::DATA => {
                    let logical = r.u64()?;
                    let count = r.u32()?;
                    for i in 0..u64::from(count) {
                        let want = r.u32()?;
                        let block = i
                            .checked_mul(BLOCK)
                            .and_then(|off| logical.checked_add(off))
                            .ok_or_else(|| r.corrupt())?;
                        if !self.is_data_range(block, BLOCK) {
                            return Err(EngineError::Corrupt {
                                block: from,
                                reason: "log record names data outside every data chunk",
                            });
                        }
                        // A cut between the writes of two copies leaves one of them old:
                        // it is rewritten from a good one (not reported as damage: the
                        // write was never finished).
                        let (good, stale) =
                            self.sort_copies(block, |b| crc32c::checksum(b) == want)?;
                        let Some(good) = good else {
                            return Ok(false);
                        };
                        if !self.read_only {
                            for copy in stale.iter() {
                                if let Some(dev) = self.dev_mut(copy.devid) {
                                    dev.write(copy.physical, &good)?;
                                }
                            }
                        }
                    }
                }
                _ => {
                    return Err(EngineError::Corrupt {
                        block: from,
                        reason: "unknown log record operation",
                    })
                }
            }
        }
        Ok(true)
    }

    /// Applies the operations of one record.
    fn apply_log_record(&mut self, payload: &[u8], from: u64) -> EngineResult<()> {
        let mut r = Reader {
            data: payload,
            at: 0,
            block: from,
        };
        let bad_tree = EngineError::Corrupt {
            block: from,
            reason: "log record changes a tree that is not logged or not there",
        };
        while !r.done() {
            platform::relax();
            match r.u8()? {
                op::INSERT => {
                    let (tree, key) = r.key()?;
                    let len = r.u32()? as usize;
                    let value = r.take(len)?;
                    if !logged_tree(tree) || self.root(tree).is_none() {
                        return Err(bad_tree);
                    }
                    self.insert(tree, key, value)?;
                }
                op::REMOVE => {
                    let (tree, key) = r.key()?;
                    if !logged_tree(tree) || self.root(tree).is_none() {
                        return Err(bad_tree);
                    }
                    self.remove(tree, &key)?;
                }
                op::DATA_REF => {
                    let block = r.u64()?;
                    let count = r.u64()?;
                    let delta = r.u64()? as i64;
                    let tree = Tree::with_id(r.u64()?);
                    let ino = r.u64()?;
                    let offset = r.u64()?;
                    let owner = RefOwner::File { tree, ino, offset };
                    for i in 0..count {
                        let b = i
                            .checked_mul(BLOCK)
                            .and_then(|off| block.checked_add(off))
                            .ok_or_else(|| r.corrupt())?;
                        self.replay_data_ref(b, delta, owner.advanced(i), from)?;
                    }
                }
                op::DATA => {
                    r.u64()?;
                    let count = r.u32()? as usize;
                    r.take(count.saturating_mul(4))?;
                }
                _ => {
                    return Err(EngineError::Corrupt {
                        block: from,
                        reason: "unknown log record operation",
                    })
                }
            }
        }
        Ok(())
    }

    /// A data reference change of a replayed record: the block is taken (a new one was
    /// free in the last commit's space map), and a block allocated and dropped in the
    /// transaction is freed at the commit, as [`Self::data_ref`] does.
    fn replay_data_ref(
        &mut self,
        block: u64,
        delta: i64,
        owner: RefOwner,
        from: u64,
    ) -> EngineResult<()> {
        let (i, chunk_logical) =
            self.chunk_of(block, "log record references a block outside every chunk")?;
        if self.chunks.get(i).map(|c| c.kind) != Some(Kind::Data) {
            return Err(EngineError::Corrupt {
                block: from,
                reason: "log record references a block outside every data chunk",
            });
        }
        if delta > 0 {
            if let Some(space) = self.spaces.get_mut(i) {
                space.set(block.saturating_sub(chunk_logical) / BLOCK, true);
            }
        }
        self.add_ref(block, delta, owner)?;
        if delta < 0 && !self.delayed.contains_key(block) && self.stored_refcount(block)? == 0 {
            self.pinned.try_push(block)?;
        }
        Ok(())
    }

    /// Replays the log on top of the last commit (see the module documentation): the
    /// running transaction then holds every change of the records that are whole, which
    /// the caller commits (or, mounted read-only, only reads). Returns how many records
    /// were applied. New records append after them, in the same transaction.
    pub fn replay_log(&mut self) -> EngineResult<u64> {
        let Some(area) = self.log.area else {
            return Ok(0);
        };
        let generation = self.generation;
        let mut block = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let mut payload: FVec<u8> = FVec::new();
        let mut place = 0u64;
        let mut records = 0u64;
        self.log.replaying = true;
        let result = loop {
            // The record's first block says how many follow.
            match self.read_log_block(&area, place, generation, &mut block) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(err) => break Err(err),
            }
            let count = u64::from(bytes::u32_at(&block, 56).unwrap_or(0));
            let end = place
                .checked_add(count)
                .filter(|&e| count > 0 && e <= area.blocks);
            let (Some(end), Some(place_first)) = (end, bytes::u64_at(&block, 48)) else {
                break Ok(());
            };
            if place_first != place {
                break Ok(());
            }
            payload.clear();
            let mut whole = true;
            for p in place..end {
                if p != place {
                    match self.read_log_block(&area, p, generation, &mut block) {
                        Ok(true) => {}
                        Ok(false) => {
                            whole = false;
                            break;
                        }
                        Err(err) => return self.end_replay(Err(err)),
                    }
                    if bytes::u64_at(&block, 48) != Some(place)
                        || bytes::u32_at(&block, 56).map(u64::from) != Some(count)
                    {
                        whole = false;
                        break;
                    }
                }
                let len = bytes::u32_at(&block, 4).unwrap_or(u32::MAX) as usize;
                let Some(part) = block.get(HEADER..HEADER.saturating_add(len)) else {
                    whole = false;
                    break;
                };
                if let Err(err) = payload.try_extend_from_slice(part) {
                    return self.end_replay(Err(err));
                }
            }
            if !whole {
                break Ok(());
            }
            let from = area.block(place).unwrap_or(area.start);
            match self.log_data_durable(&payload, from) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(err) => break Err(err),
            }
            if let Err(err) = self.apply_log_record(&payload, from) {
                break Err(err);
            }
            records = records.saturating_add(1);
            place = end;
        };
        self.log.next = place;
        self.end_replay(result.map(|()| records))
    }

    fn end_replay<T>(&mut self, result: EngineResult<T>) -> EngineResult<T> {
        self.log.replaying = false;
        if self.read_only {
            // Nothing is written: the records stay for a writable mount to replay.
            self.log.block();
        }
        result
    }
}
