// SPDX-License-Identifier: GPL-2.0

//! The trees of a volume: the node store each tree's blocks come from ([`TreeStore`]),
//! and item lookups, changes and range walks.

use super::super::btree::{self, NodeStore};
use super::super::chunk::Kind;
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format::tree_id;
use super::super::key::Key;
use super::super::mem::FVec;
use super::super::node::{Body, Node, NodeRef};
use super::{Cached, Volume};

/// A walk over a range of one tree's items ([`Volume::range`], [`Volume::next_in`]).
pub struct Range {
    tree: u64,
    /// The smallest key the walk may still return; `None` once it is over.
    next: Option<Key>,
    /// The largest key it returns.
    last: Key,
    /// Where the walk stands, with the volume's change count and the tree's root then.
    at: Option<(btree::Cursor, u64, NodeRef)>,
}

/// The node store of one tree of a volume: allocations go to the tree's kind of chunk.
pub struct TreeStore<'a, D: BlockDev> {
    vol: &'a mut Volume<D>,
    owner: u64,
}

impl<D: BlockDev> NodeStore for TreeStore<'_, D> {
    fn node(&mut self, at: &NodeRef) -> EngineResult<&Node> {
        self.vol.read_node(at, self.owner)
    }

    fn own_node(&mut self, block: u64) -> EngineResult<&Node> {
        self.vol.own_node(block)
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

    fn shadow(&mut self, at: &NodeRef) -> EngineResult<u64> {
        let block = at.block;
        let count = if self.may_share() {
            self.vol.refcount(block)?
        } else {
            1
        };
        if count == 1 && self.vol.fresh.contains_key(block) {
            return Ok(block);
        }
        let mut copy = self.vol.read_node(at, self.owner)?.try_clone()?;
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
        let at = self.vol.own_ref(block)?;
        self.vol.drop_tree_ref(&at, self.owner, 0, shared)
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

/// What an internal node says about each of its children (empty for a leaf).
pub fn child_refs(node: &Node) -> EngineResult<FVec<NodeRef>> {
    let mut out = FVec::new();
    if let Body::Internal(children) = &node.body {
        let level = node
            .level
            .checked_sub(1)
            .ok_or(EngineError::Invalid("internal leaf"))?;
        out.try_reserve(children.len())?;
        for c in children.iter() {
            out.try_push(NodeRef::child(c, level))?;
        }
    }
    Ok(out)
}

impl<D: BlockDev> Volume<D> {
    /// The node store of tree `owner`.
    pub fn store(&mut self, owner: u64) -> TreeStore<'_, D> {
        TreeStore { vol: self, owner }
    }

    /// Looks up `key` in tree `id`.
    pub fn lookup(&mut self, id: u64, key: &Key) -> EngineResult<Option<FVec<u8>>> {
        let root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        btree::lookup(&mut self.store(id), &root, key)
    }

    /// The first item of tree `id` at or after `key`.
    pub fn first_at_or_after(
        &mut self,
        id: u64,
        key: &Key,
    ) -> EngineResult<Option<(Key, FVec<u8>)>> {
        let root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        btree::first_at_or_after(&mut self.store(id), &root, key)
    }

    /// The last item of tree `id` at or before `key`.
    pub fn last_at_or_before(
        &mut self,
        id: u64,
        key: &Key,
    ) -> EngineResult<Option<(Key, FVec<u8>)>> {
        let root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        btree::last_at_or_before(&mut self.store(id), &root, key)
    }

    /// A walk over the items of tree `id` with keys in `first..=last`, in key order: see
    /// [`Self::next_in`].
    pub fn range(&self, id: u64, first: Key, last: Key) -> Range {
        Range {
            tree: id,
            next: Some(first),
            last,
            at: None,
        }
    }

    /// The next item of the walk `range`. Each step reads only the nodes between one item
    /// and the next; if the volume changed since the last step (the caller may change the
    /// tree as it goes), the walk finds its place again from the last key it returned.
    pub fn next_in(&mut self, range: &mut Range) -> EngineResult<Option<(Key, FVec<u8>)>> {
        let Some(from) = range.next else {
            return Ok(None);
        };
        if from > range.last {
            range.next = None;
            return Ok(None);
        }
        let tree = range.tree;
        let root = self
            .root(tree)
            .ok_or(EngineError::Invalid("no such tree"))?;
        let changes = self.changes;
        let mut store = self.store(tree);
        let mut cursor = match range.at.take() {
            Some((mut cursor, seen, seen_root)) if seen == changes && seen_root == root => {
                cursor.next(&mut store)?;
                cursor
            }
            _ => btree::Cursor::seek(&mut store, &root, &from)?,
        };
        let found = cursor.item(&mut store)?;
        match found {
            Some((k, v)) if k <= range.last => {
                range.next = k.successor();
                range.at = Some((cursor, changes, root));
                Ok(Some((k, v)))
            }
            _ => {
                range.next = None;
                Ok(None)
            }
        }
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
        if self.root(id).is_some() {
            return Err(EngineError::Invalid("tree exists"));
        }
        let generation = self.generation;
        let root = self.store(id).alloc(Node::new_leaf(id, generation))?;
        let root = self.own_ref(root)?;
        self.set_root(id, root)
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
}
