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

/// A tree of the volume, the handle every item operation takes. The fixed trees are
/// constants; any other tree comes from the registry of roots the root tree holds
/// ([`Volume::tree`], [`Volume::trees`], [`Volume::create_tree`]), so that the filesystem
/// can work on whichever subvolume tree it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tree(u64);

impl Tree {
    /// The root tree: the registry of every other tree's root.
    pub const ROOT: Self = Self(tree_id::ROOT);
    /// The space map.
    pub const SPACE: Self = Self(tree_id::SPACE);
    /// Chunks and devices.
    pub const CHUNK: Self = Self(tree_id::CHUNK);
    /// Device extents.
    pub const DEV: Self = Self(tree_id::DEV);
    /// The filesystem tree a new filesystem starts with.
    pub const FS: Self = Self(tree_id::FS);
    /// Data checksums.
    pub const CSUM: Self = Self(tree_id::CSUM);

    /// A handle on tree `id`, whether or not the volume has it (every operation on a tree
    /// the volume lacks fails): for a tree whose id is fixed by its use, as in tests.
    pub const fn with_id(id: u64) -> Self {
        Self(id)
    }

    /// The tree's id (the owner recorded in its blocks, the key of its root item).
    pub const fn id(self) -> u64 {
        self.0
    }

    /// Whether the tree's blocks can be shared with another tree, so that their reference
    /// counts must be read before a change. The space, root, chunk, device and checksum
    /// trees are never shared: each of their blocks has exactly one reference (not reading
    /// counts for them also keeps the space tree from being read while a change to it is
    /// half done). Subvolume trees may be: today the filesystem tree.
    pub fn may_share(self) -> bool {
        self.0 == tree_id::FS
    }
}

/// Who holds a reference to a block. Every reference update carries it, for the reverse
/// mapping (what each block belongs to) that space introspection, relocation and fsck's
/// cross-checks will read; today it checks that a reference goes to a block of the kind
/// its owner uses (tree blocks in metadata or system chunks, file data in data chunks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefOwner {
    /// A block of `tree`, referenced by its parent node or by the tree's root.
    Tree(Tree),
    /// Data of inode `ino` of `tree`, at byte `offset` of the file.
    File {
        /// The tree that holds the inode.
        tree: Tree,
        /// The inode.
        ino: u64,
        /// Byte offset in the file of the referenced block.
        offset: u64,
    },
}

impl RefOwner {
    /// The owner of the block `blocks` blocks further on: for file data, `blocks` blocks
    /// further into the file; a tree owns every block alike.
    pub fn advanced(self, blocks: u64) -> Self {
        match self {
            Self::Tree(_) => self,
            Self::File { tree, ino, offset } => Self::File {
                tree,
                ino,
                offset: offset.saturating_add(blocks.saturating_mul(super::BLOCK)),
            },
        }
    }
}

/// A walk over a range of one tree's items ([`Volume::range`], [`Volume::next_in`]).
pub struct Range {
    tree: Tree,
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
    tree: Tree,
}

impl<D: BlockDev> NodeStore for TreeStore<'_, D> {
    fn node(&mut self, at: &NodeRef) -> EngineResult<&Node> {
        self.vol.read_node(at, self.tree.id())
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
        let mut copy = self.vol.read_node(at, self.tree.id())?.try_clone()?;
        copy.generation = self.vol.generation;
        let children = internal_children(&copy)?;
        let new = self.alloc(copy)?;
        if count > 1 {
            // Still shared: the copy takes its own reference on every child.
            for child in children.iter() {
                self.vol.add_ref(*child, 1, RefOwner::Tree(self.tree))?;
            }
            self.vol.add_ref(block, -1, RefOwner::Tree(self.tree))?;
        } else {
            // Ours alone: the copy inherits the references of the original.
            self.vol.add_ref(block, -1, RefOwner::Tree(self.tree))?;
            self.vol.forget(block)?;
        }
        Ok(new)
    }

    fn alloc(&mut self, mut node: Node) -> EngineResult<u64> {
        let kind = if self.tree == Tree::CHUNK {
            Kind::System
        } else {
            Kind::Metadata
        };
        node.owner = self.tree.id();
        node.generation = self.vol.generation;
        let block = self.vol.alloc_block(kind)?;
        self.vol.add_ref(block, 1, RefOwner::Tree(self.tree))?;
        self.vol.fresh.insert(block, ())?;
        self.vol.cache.insert(block, Cached::new(node, true))?;
        Ok(block)
    }

    fn free(&mut self, block: u64) -> EngineResult<()> {
        let shared = self.may_share();
        let at = self.vol.own_ref(block)?;
        self.vol.drop_tree_ref(&at, self.tree, 0, shared)
    }

    fn generation(&self) -> u64 {
        self.vol.generation
    }
}

impl<D: BlockDev> TreeStore<'_, D> {
    fn may_share(&self) -> bool {
        self.tree.may_share()
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
    /// The node store of `tree`.
    pub fn store(&mut self, tree: Tree) -> TreeStore<'_, D> {
        TreeStore { vol: self, tree }
    }

    /// The tree `id`, if the volume has it.
    pub fn tree(&self, id: u64) -> EngineResult<Tree> {
        let tree = Tree(id);
        self.root(tree).map(|_| tree).ok_or(EngineError::NotFound)
    }

    /// Looks up `key` in tree `id`.
    pub fn lookup(&mut self, id: Tree, key: &Key) -> EngineResult<Option<FVec<u8>>> {
        let root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        btree::lookup(&mut self.store(id), &root, key)
    }

    /// The first item of tree `id` at or after `key`.
    pub fn first_at_or_after(
        &mut self,
        id: Tree,
        key: &Key,
    ) -> EngineResult<Option<(Key, FVec<u8>)>> {
        let root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        btree::first_at_or_after(&mut self.store(id), &root, key)
    }

    /// The last item of tree `id` at or before `key`.
    pub fn last_at_or_before(
        &mut self,
        id: Tree,
        key: &Key,
    ) -> EngineResult<Option<(Key, FVec<u8>)>> {
        let root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        btree::last_at_or_before(&mut self.store(id), &root, key)
    }

    /// A walk over the items of tree `id` with keys in `first..=last`, in key order: see
    /// [`Self::next_in`].
    pub fn range(&self, id: Tree, first: Key, last: Key) -> Range {
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
    pub fn insert(&mut self, id: Tree, key: Key, value: &[u8]) -> EngineResult<Option<FVec<u8>>> {
        self.changed();
        let mut root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        let old = btree::insert(&mut self.store(id), &mut root, key, value)?;
        self.set_root(id, root)?;
        self.log_insert(id, &key, value);
        Ok(old)
    }

    /// Removes an item of tree `id`.
    pub fn remove(&mut self, id: Tree, key: &Key) -> EngineResult<Option<FVec<u8>>> {
        self.changed();
        let mut root = self.root(id).ok_or(EngineError::Invalid("no such tree"))?;
        let old = btree::remove(&mut self.store(id), &mut root, key)?;
        self.set_root(id, root)?;
        if old.is_some() {
            self.log_remove(id, key);
        }
        Ok(old)
    }

    /// Creates an empty tree `id` and registers it in the root tree (at the next commit).
    pub fn create_tree(&mut self, id: u64) -> EngineResult<Tree> {
        self.changed();
        self.log_block();
        let tree = Tree(id);
        if self.root(tree).is_some() {
            return Err(EngineError::Invalid("tree exists"));
        }
        let generation = self.generation;
        let root = self.store(tree).alloc(Node::new_leaf(id, generation))?;
        let root = self.own_ref(root)?;
        self.set_root(tree, root)?;
        Ok(tree)
    }

    /// Every tree, the root and chunk trees first.
    pub fn trees(&self) -> EngineResult<FVec<Tree>> {
        let mut trees = FVec::try_with_capacity(self.roots.len().saturating_add(2))?;
        trees.try_push(Tree::ROOT)?;
        trees.try_push(Tree::CHUNK)?;
        for (id, _) in self.roots.iter() {
            trees.try_push(Tree(*id))?;
        }
        Ok(trees)
    }
}
