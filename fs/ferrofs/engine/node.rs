// SPDX-License-Identifier: GPL-2.0

//! B-tree nodes: their in-memory form and their on-disk block format.
//!
//! On disk a node is one metadata block:
//!
//! ```text
//! 0   csum        u32   CRC-32C of bytes 4..BLOCK_SIZE
//! 4   (reserved)  u32   zero
//! 8   fsid        [16]  filesystem UUID
//! 24  bytenr      u64   logical address of this block
//! 32  generation  u64   transaction that wrote it
//! 40  owner       u64   id of the tree it belongs to
//! 48  nritems     u32   number of items (leaf) or children (internal node)
//! 52  level       u8    0 for a leaf, height above the leaves otherwise
//! 53  (reserved)  [11]  zero
//! 64  entries
//! ```
//!
//! Internal node entries are 33 bytes each: key (17), child address (8), child generation
//! (8). Leaf entries are 25-byte item headers, key (17), data offset (4, from the start of
//! the block), data size (4), in key order from the front, with the item data packed from
//! the end of the block towards the headers.

use super::bytes;
use super::crc32c;
use super::error::{EngineError, EngineResult};
use super::format::BLOCK_SIZE;
use super::key::{Key, KEY_SIZE};
use super::mem::{self, FVec};

/// Size of the node header.
pub const HEADER_SIZE: usize = 64;
/// Bytes available to entries in a node.
pub const NODE_CAPACITY: usize = BLOCK_SIZE as usize - HEADER_SIZE;
/// Size of an internal node entry.
pub const CHILD_SIZE: usize = KEY_SIZE + 16;
/// Size of a leaf item header.
pub const ITEM_HEADER_SIZE: usize = KEY_SIZE + 8;
/// Most children an internal node holds.
pub const MAX_CHILDREN: usize = NODE_CAPACITY / CHILD_SIZE;
/// Largest item data: small enough that a leaf always holds at least four items, which
/// keeps both halves of a split and the result of a rebalance reasonably full.
pub const MAX_ITEM_DATA: usize = NODE_CAPACITY / 4 - ITEM_HEADER_SIZE;
/// Deepest tree accepted: far more than 2^64 items need, so anything deeper is corrupt.
pub const MAX_LEVEL: u8 = 8;

const OFF_CSUM: usize = 0;
const OFF_FSID: usize = 8;
const OFF_BYTENR: usize = 24;
const OFF_GENERATION: usize = 32;
const OFF_OWNER: usize = 40;
const OFF_NRITEMS: usize = 48;
const OFF_LEVEL: usize = 52;

/// A leaf item: a key and its data.
#[derive(Debug, PartialEq, Eq)]
pub struct Item {
    /// The item's key.
    pub key: Key,
    /// The item's data (at most [`MAX_ITEM_DATA`] bytes).
    pub data: FVec<u8>,
}

/// What the pointer to a tree block (a parent's entry, a root item, the superblock) says
/// about the block: checked whenever the block is read, so that a lost or misdirected
/// write, or a stale mirror copy, all with valid checksums, is not taken as the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRef {
    /// Logical address of the block.
    pub block: u64,
    /// Generation the block was written in.
    pub generation: u64,
    /// The node's level.
    pub level: u8,
    /// The parent's key for the node, which is the node's first key; `None` for a tree's
    /// root, the only node that may be empty.
    pub first_key: Option<Key>,
}

impl NodeRef {
    /// The reference a parent's entry makes to a child at `level`.
    pub fn child(entry: &Child, level: u8) -> Self {
        Self {
            block: entry.block,
            generation: entry.generation,
            level,
            first_key: Some(entry.key),
        }
    }
}

/// An internal node entry: the smallest key below a child, and where the child is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child {
    /// Smallest key in the child's subtree.
    pub key: Key,
    /// Logical address of the child block.
    pub block: u64,
    /// Generation the child was written in (checked when it is read).
    pub generation: u64,
}

/// What a node holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// Level 0: items.
    Leaf(FVec<Item>),
    /// Level 1 and up: children.
    Internal(FVec<Child>),
}

/// A b-tree node, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    /// Height above the leaves (0 for a leaf).
    pub level: u8,
    /// Id of the tree the node belongs to.
    pub owner: u64,
    /// Transaction that wrote (or will write) the node.
    pub generation: u64,
    /// The entries.
    pub body: Body,
}

impl Item {
    /// Bytes this item takes in a leaf: header plus data.
    pub fn size(&self) -> usize {
        ITEM_HEADER_SIZE.saturating_add(self.data.len())
    }
}

impl Node {
    /// An empty leaf.
    pub fn new_leaf(owner: u64, generation: u64) -> Self {
        Self {
            level: 0,
            owner,
            generation,
            body: Body::Leaf(FVec::new()),
        }
    }

    /// An internal node at `level` with the given children.
    pub fn new_internal(owner: u64, generation: u64, level: u8, children: FVec<Child>) -> Self {
        Self {
            level,
            owner,
            generation,
            body: Body::Internal(children),
        }
    }

    /// Number of items or children.
    pub fn len(&self) -> usize {
        match &self.body {
            Body::Leaf(items) => items.len(),
            Body::Internal(children) => children.len(),
        }
    }

    /// Whether the node has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of [`NODE_CAPACITY`] in use.
    pub fn used(&self) -> usize {
        match &self.body {
            Body::Leaf(items) => items.iter().fold(0usize, |n, i| n.saturating_add(i.size())),
            Body::Internal(children) => children.len().saturating_mul(CHILD_SIZE),
        }
    }

    /// Smallest key in the node, if it has entries.
    pub fn first_key(&self) -> Option<Key> {
        match &self.body {
            Body::Leaf(items) => items.first().map(|i| i.key),
            Body::Internal(children) => children.first().map(|c| c.key),
        }
    }

    /// Checks the node against what its pointer `at` says, for a node of tree `owner`; the
    /// reason it does not match, if it does not.
    pub fn verify(&self, at: &NodeRef, owner: u64) -> Result<(), &'static str> {
        if self.generation != at.generation {
            return Err(
                "tree block generation differs from its parent's record (lost or stale write)",
            );
        }
        if self.level != at.level {
            return Err("tree block level differs from its parent's record");
        }
        if self.owner != owner {
            return Err("tree block belongs to another tree (misdirected write)");
        }
        match at.first_key {
            // A root may be empty only if it is a leaf: an empty internal node leads nowhere.
            None if self.level > 0 && self.is_empty() => Err("empty internal node"),
            None => Ok(()),
            Some(_) if self.is_empty() => Err("empty non-root tree block"),
            Some(key) if self.first_key() != Some(key) => {
                Err("tree block first key differs from its parent's key")
            }
            Some(_) => Ok(()),
        }
    }

    /// A deep copy (for copy-on-write of a node that stays shared).
    pub fn try_clone(&self) -> EngineResult<Self> {
        let body = match &self.body {
            Body::Leaf(items) => {
                let mut copy = FVec::try_with_capacity(items.len())?;
                for item in items.iter() {
                    copy.try_push(Item {
                        key: item.key,
                        data: item.data.try_clone()?,
                    })?;
                }
                Body::Leaf(copy)
            }
            Body::Internal(children) => Body::Internal(children.try_clone()?),
        };
        Ok(Self {
            level: self.level,
            owner: self.owner,
            generation: self.generation,
            body,
        })
    }

    /// Writes the node as block `bytenr` of filesystem `fsid` into `block`
    /// ([`BLOCK_SIZE`] bytes), checksum included.
    pub fn encode(&self, fsid: &[u8; 16], bytenr: u64, block: &mut [u8]) -> EngineResult<()> {
        let overflow = EngineError::Invalid("node does not fit in a block");
        if block.len() != BLOCK_SIZE as usize || self.used() > NODE_CAPACITY {
            return Err(overflow);
        }
        block.fill(0);
        let nritems = u32::try_from(self.len()).map_err(|_| overflow)?;
        let mut ok = bytes::put(block, OFF_FSID, fsid).is_some()
            && bytes::put_u64(block, OFF_BYTENR, bytenr).is_some()
            && bytes::put_u64(block, OFF_GENERATION, self.generation).is_some()
            && bytes::put_u64(block, OFF_OWNER, self.owner).is_some()
            && bytes::put_u32(block, OFF_NRITEMS, nritems).is_some()
            && bytes::put_u8(block, OFF_LEVEL, self.level).is_some();
        match &self.body {
            Body::Internal(children) => {
                let mut off = HEADER_SIZE;
                for c in children.iter() {
                    ok = ok
                        && c.key.encode(block, off).is_some()
                        && bytes::put_u64(block, off.saturating_add(KEY_SIZE), c.block).is_some()
                        && bytes::put_u64(block, off.saturating_add(KEY_SIZE + 8), c.generation)
                            .is_some();
                    off = off.saturating_add(CHILD_SIZE);
                }
            }
            Body::Leaf(items) => {
                let mut head = HEADER_SIZE;
                let mut data_end = BLOCK_SIZE as usize;
                for item in items.iter() {
                    let Some(data_off) = data_end.checked_sub(item.data.len()) else {
                        return Err(overflow);
                    };
                    let (Ok(off32), Ok(len32)) =
                        (u32::try_from(data_off), u32::try_from(item.data.len()))
                    else {
                        return Err(overflow);
                    };
                    ok = ok
                        && item.key.encode(block, head).is_some()
                        && bytes::put_u32(block, head.saturating_add(KEY_SIZE), off32).is_some()
                        && bytes::put_u32(block, head.saturating_add(KEY_SIZE + 4), len32)
                            .is_some()
                        && bytes::put(block, data_off, &item.data).is_some();
                    head = head.saturating_add(ITEM_HEADER_SIZE);
                    data_end = data_off;
                }
            }
        }
        let csum = crc32c::checksum(block.get(4..).unwrap_or(&[]));
        ok = ok && bytes::put_u32(block, OFF_CSUM, csum).is_some();
        if ok {
            Ok(())
        } else {
            Err(overflow)
        }
    }

    /// Decodes and verifies block `bytenr` of filesystem `fsid`.
    ///
    /// Every check failure is [`EngineError::Corrupt`] naming `bytenr`: checksum, fsid,
    /// address, level range, entry count, entry bounds, and strict key order.
    pub fn decode(fsid: &[u8; 16], bytenr: u64, block: &[u8]) -> EngineResult<Self> {
        let corrupt = |reason| EngineError::Corrupt {
            block: bytenr,
            reason,
        };
        if block.len() != BLOCK_SIZE as usize {
            return Err(corrupt("metadata block has the wrong size"));
        }
        let stored = bytes::u32_at(block, OFF_CSUM).ok_or(corrupt("short block"))?;
        if stored != crc32c::checksum(block.get(4..).unwrap_or(&[])) {
            return Err(corrupt("metadata block checksum mismatch"));
        }
        if bytes::array::<16>(block, OFF_FSID).as_ref() != Some(fsid) {
            return Err(corrupt("metadata block belongs to another filesystem"));
        }
        if bytes::u64_at(block, OFF_BYTENR) != Some(bytenr) {
            return Err(corrupt("metadata block records another address"));
        }
        let generation = bytes::u64_at(block, OFF_GENERATION).ok_or(corrupt("short block"))?;
        let owner = bytes::u64_at(block, OFF_OWNER).ok_or(corrupt("short block"))?;
        let nritems = bytes::u32_at(block, OFF_NRITEMS).ok_or(corrupt("short block"))?;
        let level = bytes::u8_at(block, OFF_LEVEL).ok_or(corrupt("short block"))?;
        if level > MAX_LEVEL {
            return Err(corrupt("metadata block level out of range"));
        }
        let n = usize::try_from(nritems).map_err(|_| corrupt("item count out of range"))?;
        let body = if level > 0 {
            if n > MAX_CHILDREN {
                return Err(corrupt("too many children in a node"));
            }
            if n == 0 {
                return Err(corrupt("empty internal node"));
            }
            let mut children = FVec::try_with_capacity(n)?;
            let mut off = HEADER_SIZE;
            for _ in 0..n {
                let key = Key::decode(block, off).ok_or(corrupt("short block"))?;
                let child = Child {
                    key,
                    block: bytes::u64_at(block, off.saturating_add(KEY_SIZE))
                        .ok_or(corrupt("short block"))?,
                    generation: bytes::u64_at(block, off.saturating_add(KEY_SIZE + 8))
                        .ok_or(corrupt("short block"))?,
                };
                if children.last().is_some_and(|prev: &Child| prev.key >= key) {
                    return Err(corrupt("node keys out of order"));
                }
                if child.generation > generation {
                    return Err(corrupt("child newer than its parent"));
                }
                children.try_push(child)?;
                off = off.saturating_add(CHILD_SIZE);
            }
            if has_repeated_child(&children)? {
                return Err(corrupt("node points at the same child twice"));
            }
            Body::Internal(children)
        } else {
            let headers_end = n
                .checked_mul(ITEM_HEADER_SIZE)
                .and_then(|h| h.checked_add(HEADER_SIZE))
                .filter(|&end| end <= BLOCK_SIZE as usize)
                .ok_or(corrupt("too many items in a leaf"))?;
            let mut items: FVec<Item> = FVec::try_with_capacity(n)?;
            let mut head = HEADER_SIZE;
            for _ in 0..n {
                let key = Key::decode(block, head).ok_or(corrupt("short block"))?;
                let off = bytes::u32_at(block, head.saturating_add(KEY_SIZE))
                    .ok_or(corrupt("short block"))?;
                let len = bytes::u32_at(block, head.saturating_add(KEY_SIZE + 4))
                    .ok_or(corrupt("short block"))?;
                let (off, len) = (off as usize, len as usize);
                if len > MAX_ITEM_DATA {
                    return Err(corrupt("leaf item too large"));
                }
                let data = off
                    .checked_add(len)
                    .filter(|_| off >= headers_end)
                    .and_then(|end| block.get(off..end))
                    .ok_or(corrupt("leaf item data out of bounds"))?;
                if items.last().is_some_and(|prev| prev.key >= key) {
                    return Err(corrupt("leaf keys out of order"));
                }
                items.try_push(Item {
                    key,
                    data: FVec::try_from_slice(data)?,
                })?;
                head = head.saturating_add(ITEM_HEADER_SIZE);
            }
            Body::Leaf(items)
        };
        let node = Self {
            level,
            owner,
            generation,
            body,
        };
        if node.used() > NODE_CAPACITY {
            return Err(corrupt("leaf items overflow the block"));
        }
        Ok(node)
    }
}

/// Whether two entries point at the same block (a node fans out to distinct children; a
/// crafted node that repeats one could make a walk visit it over and over).
fn has_repeated_child(children: &[Child]) -> EngineResult<bool> {
    let mut blocks: FVec<u64> = FVec::try_with_capacity(children.len())?;
    for c in children.iter() {
        blocks.try_push(c.block)?;
    }
    mem::sort(&mut blocks);
    Ok(blocks.windows(2).any(|w| w.first() == w.get(1)))
}
