// SPDX-License-Identifier: GPL-2.0

//! A mounted ferrofs volume: devices, chunks, the block cache, the space map and
//! transactions.
//!
//! [`Volume`] is one type; its methods are spread over the files of this module by what
//! they deal with: `tree` (the node store of each tree, and item lookups, changes and
//! walks), `cache` (the tree block cache, and reading, checking and repairing tree blocks),
//! `chunk_io` (where the copies of a logical block are, on which device), `space` (the
//! space map, reference counts and the allocator), `data` (data blocks and their
//! checksums), `transaction` (commit and abort, superblocks, root items) and `open` (mkfs
//! and mount).
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

mod cache;
mod chunk_io;
mod csum;
mod data;
mod log;
mod open;
mod space;
mod transaction;
mod tree;

pub use data::{DataPiece, DataTarget};
pub use log::{LogArea, LogTicket, LogWrite, LOG_AREA_ITEM_SIZE, LOG_AREA_MAX_BLOCKS};
pub use transaction::CommitTicket;
pub use tree::{child_refs, Range, RefOwner, Tree, TreeStore};

use super::bytes;
use super::chunk::{Chunk, Profile};
use super::dev::BlockDev;
use super::error::{EngineError, EngineResult};
use super::format::{self, tree_id, Superblock, BLOCK_SIZE};
use super::map::U64Map;
use super::mem::FVec;
use super::node::NodeRef;
use cache::Cached;
use space::ChunkSpace;
use transaction::PendingState;

const BLOCK: u64 = BLOCK_SIZE as u64;

/// Tree blocks the cache keeps across commits by default (32 MiB of blocks).
pub const DEFAULT_CACHE_LIMIT: usize = 8192;

/// Encoded size of a root item: root block (8), its generation (8), its level (1).
pub const ROOT_ITEM_SIZE: usize = 17;

/// Encoded size of a device item: size (8), UUID (16).
pub const DEV_ITEM_SIZE: usize = 24;

/// Smallest device mkfs accepts (xfstests makes 25 MiB filesystems for some tests).
pub const MIN_DEVICE_SIZE: u64 = 16 << 20;

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
    root_tree: NodeRef,
    chunk_root: NodeRef,
    /// Roots of the trees listed in the root tree: (tree id, root).
    roots: FVec<(u64, NodeRef)>,
    cache: U64Map<Cached>,
    /// Most tree blocks the cache keeps across a commit: past it, a commit drops the clean
    /// ones (all of them, once the commit has written its blocks).
    cache_limit: usize,
    fresh: U64Map<()>,
    delayed: U64Map<i64>,
    pinned: FVec<u64>,
    /// The blocks whose counts are being written to the space tree, with their new counts,
    /// sorted by block: while the space tree items change, reading them back would give a
    /// half-written answer.
    in_flight: FVec<(u64, u64)>,
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
    /// The fsync log: its area and what the running transaction recorded for it.
    log: log::FsyncLog,
    /// `changes` as the last durable log write left it.
    logged_changes: u64,
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

    /// The filesystem label (at most [`format::LABEL_MAX`] bytes, no NUL).
    pub fn label(&self) -> &[u8] {
        self.sb.label_bytes()
    }

    /// Marks the volume as using incompatible feature `feature` (a
    /// [`format::INCOMPAT_SUPPORTED`] bit), written with the next commit: engines without
    /// it refuse the volume from then on.
    pub fn enable_incompat(&mut self, feature: u64) {
        if self.sb.incompat & feature != feature {
            self.sb.incompat |= feature;
            self.changed();
            self.log_block();
        }
    }

    /// Sets the label; the next commit writes it into every superblock copy.
    pub fn set_label(&mut self, label: &[u8]) -> EngineResult<()> {
        if self.read_only {
            return Err(EngineError::ReadOnly);
        }
        if label.len() > format::LABEL_MAX {
            return Err(EngineError::NameTooLong);
        }
        if label.contains(&0) {
            return Err(EngineError::Invalid("label contains a NUL byte"));
        }
        self.sb.label.fill(0);
        let dst = self
            .sb
            .label
            .get_mut(..label.len())
            .ok_or(EngineError::NameTooLong)?;
        dst.copy_from_slice(label);
        self.changed();
        self.log_block();
        Ok(())
    }

    /// The chunks, ordered by logical address.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The devices.
    pub fn devices(&self) -> &[DevSlot<D>] {
        &self.devs
    }

    /// Gives back the devices (after unmount, or to reopen them).
    pub fn into_devices(self) -> FVec<DevSlot<D>> {
        self.devs
    }

    /// Root of `tree`.
    pub fn root(&self, tree: Tree) -> Option<NodeRef> {
        match tree {
            Tree::ROOT => Some(self.root_tree),
            Tree::CHUNK => Some(self.chunk_root),
            _ => self
                .roots
                .iter()
                .find(|(t, _)| *t == tree.id())
                .map(|(_, r)| *r),
        }
    }

    /// Root block of `tree` (to name the tree in reports).
    pub fn root_block(&self, tree: Tree) -> Option<u64> {
        self.root(tree).map(|r| r.block)
    }

    fn set_root(&mut self, tree: Tree, root: NodeRef) -> EngineResult<()> {
        let id = tree.id();
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
}
