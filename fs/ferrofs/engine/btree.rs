// SPDX-License-Identifier: GPL-2.0

//! The copy-on-write b-tree every ferrofs tree is made of.
//!
//! Internal nodes hold, for each child, the smallest key of the child's subtree; leaves hold
//! items in key order. A modification first *shadows* the path from the root to the leaf:
//! [`NodeStore::shadow`] returns a block the transaction may change in place, copying the
//! node if it was written by an earlier transaction or is shared with another tree (in which
//! case the copy takes a reference on every child). Parents are updated with the new
//! addresses on the way down, so the tree is consistent after every operation, and the root
//! address returned to the caller is the only thing that changes outside the tree.
//!
//! After an insert, overfull nodes split in two, up to a new root. After a remove, a node
//! under a quarter full is rebalanced with its neighbours: their entries are pooled and
//! spread evenly again over one node fewer when they fit, otherwise over as many nodes as
//! before, so entries move across both neighbours when needed. A root left with a single
//! child is replaced by that child.

use super::error::{EngineError, EngineResult};
use super::key::Key;
use super::mem::FVec;
use super::node::{
    Body, Child, Item, Node, NodeRef, CHILD_SIZE, MAX_CHILDREN, MAX_ITEM_DATA, MAX_LEVEL,
    NODE_CAPACITY,
};

/// Where b-tree nodes live: a transaction's block cache over the devices, or memory in
/// tests. Addresses are logical block addresses.
pub trait NodeStore {
    /// The node `at` points at, read if needed, and checked against `at` (generation,
    /// level, owner, first key: see [`Node::verify`]).
    fn node(&mut self, at: &NodeRef) -> EngineResult<&Node>;
    /// A node of the current transaction ([`Self::shadow`]ed or [`Self::alloc`]ated in
    /// it), which is always at hand and may be mid-change.
    fn own_node(&mut self, block: u64) -> EngineResult<&Node>;
    /// The node at `block` for changing in place. Only valid for blocks returned by
    /// [`Self::shadow`] or [`Self::alloc`] in the current transaction.
    fn node_mut(&mut self, block: u64) -> EngineResult<&mut Node>;
    /// A block holding the node `at` points at that this transaction may change in place:
    /// the block itself if it is already private to the transaction, else a copy.
    fn shadow(&mut self, at: &NodeRef) -> EngineResult<u64>;
    /// Stores a new node, returning its address.
    fn alloc(&mut self, node: Node) -> EngineResult<u64>;
    /// Drops this tree's reference to `block`, a node of the current transaction (freeing
    /// it, and its references to its children, at the last one).
    fn free(&mut self, block: u64) -> EngineResult<()>;
    /// The current transaction's generation, stamped on new nodes.
    fn generation(&self) -> u64;
}

/// Whether a non-root node is full enough to be left alone after a remove.
fn is_underfull(node: &Node) -> bool {
    node.used() < NODE_CAPACITY / 4
}

/// Index of the child whose subtree would hold `key`.
fn child_index(children: &[Child], key: &Key) -> usize {
    match children.binary_search_by(|c| c.key.cmp(key)) {
        Ok(i) => i,
        Err(i) => i.saturating_sub(1),
    }
}

fn corrupt_structure(block: u64, reason: &'static str) -> EngineError {
    EngineError::Corrupt { block, reason }
}

/// The level of a child of `parent`, a node at `level` (which is above 0).
fn child_level(block: u64, level: u8) -> EngineResult<u8> {
    level
        .checked_sub(1)
        .ok_or(corrupt_structure(block, "leaf where a node was expected"))
}

/// The root reference of a tree whose root is `block`, a node of this transaction.
fn own_root<S: NodeStore>(store: &mut S, block: u64) -> EngineResult<NodeRef> {
    let node = store.own_node(block)?;
    Ok(NodeRef {
        block,
        generation: node.generation,
        level: node.level,
        first_key: None,
    })
}

/// Reads the value stored under `key` in the tree rooted at `root`.
pub fn lookup<S: NodeStore>(
    store: &mut S,
    root: &NodeRef,
    key: &Key,
) -> EngineResult<Option<FVec<u8>>> {
    let mut at = *root;
    for _ in 0..=MAX_LEVEL {
        let node = store.node(&at)?;
        match &node.body {
            Body::Leaf(items) => {
                return match items.binary_search_by(|i| i.key.cmp(key)) {
                    Ok(i) => match items.get(i) {
                        Some(item) => Ok(Some(item.data.try_clone()?)),
                        None => Ok(None),
                    },
                    Err(_) => Ok(None),
                };
            }
            Body::Internal(children) => {
                let Some(child) = children.get(child_index(children, key)) else {
                    return Err(corrupt_structure(at.block, "empty internal node"));
                };
                at = NodeRef::child(child, child_level(at.block, node.level)?);
            }
        }
    }
    Err(corrupt_structure(
        root.block,
        "tree deeper than the maximum level",
    ))
}

/// A position in a tree, between two items or on one: the path from the root to a leaf
/// slot. Stepping to the next or previous item reads only the nodes on the way from one
/// leaf to its neighbour, so a walk over `n` items reads `O(n + depth)` nodes however the
/// tree is shaped, and every step checks that keys keep their order: a crafted tree that
/// repeats a subtree or points at empty leaves is reported, never walked at length.
///
/// A cursor holds no borrow: each call takes the store. It is only valid while the tree
/// is unchanged (a change may move or copy any node on its path).
pub struct Cursor {
    /// (node, index) from the root down: the child taken, and at the leaf the slot, which
    /// may be one past the last item.
    path: FVec<(NodeRef, usize)>,
    /// The key of the item the cursor last stood on, to check the order of the next.
    last: Option<Key>,
}

impl Cursor {
    /// A cursor on the first item at or after `key` (or past the end of the tree).
    pub fn seek<S: NodeStore>(store: &mut S, root: &NodeRef, key: &Key) -> EngineResult<Self> {
        let mut path = FVec::new();
        let mut at = *root;
        for _ in 0..=MAX_LEVEL {
            let node = store.node(&at)?;
            match &node.body {
                Body::Leaf(items) => {
                    let slot = match items.binary_search_by(|i| i.key.cmp(key)) {
                        Ok(i) | Err(i) => i,
                    };
                    let len = items.len();
                    path.try_push((at, slot))?;
                    let mut cursor = Self { path, last: None };
                    if slot >= len {
                        // Everything in this leaf is smaller: the next leaf starts after.
                        cursor.next_leaf(store, Side::First)?;
                    }
                    return Ok(cursor);
                }
                Body::Internal(children) => {
                    let index = child_index(children, key);
                    let child = children
                        .get(index)
                        .ok_or(corrupt_structure(at.block, "empty internal node"))?;
                    let next = NodeRef::child(child, child_level(at.block, node.level)?);
                    path.try_push((at, index))?;
                    at = next;
                }
            }
        }
        Err(corrupt_structure(
            root.block,
            "tree deeper than the maximum level",
        ))
    }

    /// The item the cursor stands on (`None` past the end).
    pub fn item<S: NodeStore>(&mut self, store: &mut S) -> EngineResult<Option<(Key, FVec<u8>)>> {
        let Some(&(at, slot)) = self.path.last() else {
            return Ok(None);
        };
        let node = store.node(&at)?;
        let Body::Leaf(items) = &node.body else {
            return Err(corrupt_structure(
                at.block,
                "node where a leaf was expected",
            ));
        };
        let Some(item) = items.get(slot) else {
            return Ok(None);
        };
        let key = item.key;
        let data = item.data.try_clone()?;
        self.last = Some(key);
        Ok(Some((key, data)))
    }

    /// Steps to the next item (or past the end).
    pub fn next<S: NodeStore>(&mut self, store: &mut S) -> EngineResult<()> {
        let Some((at, slot)) = self.path.last_mut() else {
            return Ok(());
        };
        let len = store.node(at)?.len();
        if *slot < len {
            *slot = slot.saturating_add(1);
        }
        if *slot < len {
            return self.check_order(store, Side::First);
        }
        self.next_leaf(store, Side::First).map(|_| ())
    }

    /// Steps to the previous item; `false` (and the cursor unchanged) if there is none.
    pub fn prev<S: NodeStore>(&mut self, store: &mut S) -> EngineResult<bool> {
        let Some((_, slot)) = self.path.last_mut() else {
            return Ok(false);
        };
        if let Some(before) = slot.checked_sub(1) {
            *slot = before;
            return self.check_order(store, Side::Last).map(|()| true);
        }
        self.next_leaf(store, Side::Last)
    }

    /// Moves to the first slot of the next leaf (`Side::First`) or the last item of the
    /// previous one (`Side::Last`): up to the nearest node with a neighbour on that side,
    /// across, and down its near edge. At the end of the tree the cursor stays past the
    /// end (forward) or where it was (backward, returning `false`).
    fn next_leaf<S: NodeStore>(&mut self, store: &mut S, side: Side) -> EngineResult<bool> {
        // The deepest level with a neighbour on that side.
        let mut depth = self.path.len().saturating_sub(1);
        let turn = loop {
            let Some(up) = depth.checked_sub(1) else {
                return Ok(false);
            };
            let &(at, index) = self
                .path
                .get(up)
                .ok_or(EngineError::Invalid("cursor path"))?;
            let len = store.node(&at)?.len();
            let neighbour = match side {
                Side::First => index.checked_add(1).filter(|&i| i < len),
                Side::Last => index.checked_sub(1),
            };
            if let Some(i) = neighbour {
                break (up, i);
            }
            depth = up;
        };
        let saved = self.path.try_clone()?;
        let (up, index) = turn;
        self.path.truncate(up);
        let mut at = saved
            .get(up)
            .map(|p| p.0)
            .ok_or(EngineError::Invalid("cursor path"))?;
        let mut index = index;
        for _ in 0..=MAX_LEVEL {
            let node = store.node(&at)?;
            match &node.body {
                Body::Internal(children) => {
                    let child = children
                        .get(index)
                        .ok_or(corrupt_structure(at.block, "child index out of range"))?;
                    let next = NodeRef::child(child, child_level(at.block, node.level)?);
                    self.path.try_push((at, index))?;
                    let below = store.node(&next)?;
                    index = match side {
                        Side::First => 0,
                        Side::Last => below.len().saturating_sub(1),
                    };
                    at = next;
                }
                Body::Leaf(items) => {
                    if items.is_empty() {
                        self.path = saved;
                        return Err(corrupt_structure(at.block, "empty non-root tree block"));
                    }
                    self.path.try_push((at, index))?;
                    self.check_order(store, side)?;
                    return Ok(true);
                }
            }
        }
        self.path = saved;
        Err(corrupt_structure(
            at.block,
            "tree deeper than the maximum level",
        ))
    }

    /// Checks that the item now under the cursor comes after (or, backward, before) the
    /// one it last stood on.
    fn check_order<S: NodeStore>(&mut self, store: &mut S, side: Side) -> EngineResult<()> {
        let Some(last) = self.last else {
            return Ok(());
        };
        let Some(&(at, slot)) = self.path.last() else {
            return Ok(());
        };
        let node = store.node(&at)?;
        let key = match &node.body {
            Body::Leaf(items) => items.get(slot).map(|i| i.key),
            Body::Internal(_) => None,
        };
        let in_order = match (key, side) {
            (None, _) => true,
            (Some(k), Side::First) => k > last,
            (Some(k), Side::Last) => k < last,
        };
        if in_order {
            Ok(())
        } else {
            Err(corrupt_structure(
                at.block,
                "tree keys out of order across blocks",
            ))
        }
    }
}

/// Which way a cursor moves to a neighbouring leaf.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    First,
    Last,
}

/// The first item at or after `key`.
pub fn first_at_or_after<S: NodeStore>(
    store: &mut S,
    root: &NodeRef,
    key: &Key,
) -> EngineResult<Option<(Key, FVec<u8>)>> {
    Cursor::seek(store, root, key)?.item(store)
}

/// The last item at or before `key`.
pub fn last_at_or_before<S: NodeStore>(
    store: &mut S,
    root: &NodeRef,
    key: &Key,
) -> EngineResult<Option<(Key, FVec<u8>)>> {
    let mut cursor = Cursor::seek(store, root, key)?;
    if let Some((k, v)) = cursor.item(store)? {
        if k == *key {
            return Ok(Some((k, v)));
        }
    }
    if cursor.prev(store)? {
        cursor.item(store)
    } else {
        Ok(None)
    }
}

/// One step of a path from the root: a shadowed internal node and the child index taken.
#[derive(Clone, Copy)]
struct Step {
    block: u64,
    index: usize,
    /// Whether `index` is the node's last child.
    is_last: bool,
}

/// Shadows the path from `root` to the leaf for `key`; returns the new root, the steps, and
/// the shadowed leaf.
fn shadow_path<S: NodeStore>(
    store: &mut S,
    root: &NodeRef,
    key: &Key,
) -> EngineResult<(u64, FVec<Step>, u64)> {
    let new_root = store.shadow(root)?;
    let mut path = FVec::new();
    let mut block = new_root;
    for _ in 0..=MAX_LEVEL {
        let node = store.own_node(block)?;
        let (index, is_last, child) = match &node.body {
            Body::Leaf(_) => return Ok((new_root, path, block)),
            Body::Internal(children) => {
                let index = child_index(children, key);
                let is_last = index.saturating_add(1) == children.len();
                match children.get(index) {
                    Some(c) => (
                        index,
                        is_last,
                        NodeRef::child(c, child_level(block, node.level)?),
                    ),
                    None => return Err(corrupt_structure(block, "empty internal node")),
                }
            }
        };
        let shadowed = store.shadow(&child)?;
        if shadowed != child.block {
            set_child_block(store, block, index, shadowed)?;
        }
        path.try_push(Step {
            block,
            index,
            is_last,
        })?;
        block = shadowed;
    }
    Err(corrupt_structure(
        root.block,
        "tree deeper than the maximum level",
    ))
}

fn children_mut<S: NodeStore>(store: &mut S, block: u64) -> EngineResult<&mut FVec<Child>> {
    match &mut store.node_mut(block)?.body {
        Body::Internal(children) => Ok(children),
        Body::Leaf(_) => Err(corrupt_structure(block, "leaf where a node was expected")),
    }
}

fn items_mut<S: NodeStore>(store: &mut S, block: u64) -> EngineResult<&mut FVec<Item>> {
    match &mut store.node_mut(block)?.body {
        Body::Leaf(items) => Ok(items),
        Body::Internal(_) => Err(corrupt_structure(block, "node where a leaf was expected")),
    }
}

fn set_child_block<S: NodeStore>(
    store: &mut S,
    parent: u64,
    index: usize,
    child: u64,
) -> EngineResult<()> {
    let generation = store.generation();
    let entry = children_mut(store, parent)?
        .get_mut(index)
        .ok_or(corrupt_structure(parent, "child index out of range"))?;
    entry.block = child;
    entry.generation = generation;
    Ok(())
}

/// Inserts `value` under `key`, replacing any old value, which is returned.
/// `root` is updated to the tree's new root.
pub fn insert<S: NodeStore>(
    store: &mut S,
    root: &mut NodeRef,
    key: Key,
    value: &[u8],
) -> EngineResult<Option<FVec<u8>>> {
    if value.len() > MAX_ITEM_DATA {
        return Err(EngineError::Invalid("b-tree item too large"));
    }
    let data = FVec::try_from_slice(value)?;
    let (new_root, path, leaf) = shadow_path(store, root, &key)?;
    let mut root_block = new_root;
    let items = items_mut(store, leaf)?;
    let (old, appended) = match items.binary_search_by(|i| i.key.cmp(&key)) {
        Ok(i) => match items.get_mut(i) {
            Some(item) => (Some(core::mem::replace(&mut item.data, data)), false),
            None => (None, false),
        },
        Err(i) => {
            let last = i == items.len();
            items.try_insert(i, Item { key, data })?;
            (None, last)
        }
    };
    // A new last item of the tree's last leaf: keys growing in order (file extents,
    // checksums, new inodes). Its leaf then splits off the new item alone and stays full.
    let appended = appended && path.iter().all(|step| step.is_last);
    fix_up_after_insert(store, &mut root_block, &path, leaf, appended)?;
    *root = own_root(store, root_block)?;
    Ok(old)
}

/// Walks back up `path` after the leaf changed: keeps parent keys exact and splits
/// overfull nodes, growing a new root if the old one split.
fn fix_up_after_insert<S: NodeStore>(
    store: &mut S,
    root: &mut u64,
    path: &[Step],
    leaf: u64,
    appended: bool,
) -> EngineResult<()> {
    let mut block = leaf;
    let mut split_off = if store.own_node(leaf)?.used() > NODE_CAPACITY {
        Some(split(store, leaf, appended)?)
    } else {
        None
    };
    for step in path.iter().rev() {
        let first = store.own_node(block)?.first_key();
        let children = children_mut(store, step.block)?;
        if let (Some(first), Some(entry)) = (first, children.get_mut(step.index)) {
            entry.key = first;
        }
        if let Some(right) = split_off.take() {
            children.try_insert(step.index.saturating_add(1), right)?;
        }
        if store.own_node(step.block)?.used() > NODE_CAPACITY {
            split_off = Some(split(store, step.block, false)?);
        }
        block = step.block;
    }
    // `block` is now the root; if it split, grow a new root above both halves.
    if let Some(right) = split_off {
        let left = store.own_node(block)?;
        let level = left.level.saturating_add(1);
        if level > MAX_LEVEL {
            return Err(EngineError::NoSpace);
        }
        let owner = left.owner;
        let left_key = left.first_key().unwrap_or(Key::MIN);
        let left_generation = left.generation;
        let generation = store.generation();
        let mut children = FVec::try_with_capacity(2)?;
        children.try_push(Child {
            key: left_key,
            block,
            generation: left_generation,
        })?;
        children.try_push(right)?;
        *root = store.alloc(Node::new_internal(owner, generation, level, children))?;
    }
    Ok(())
}

/// Splits the overfull node at `block` in two by bytes, or, for a leaf overfull by an item
/// `appended` at the end of the tree, into all it held before and the new item; returns the
/// entry for the new right half, to be inserted into the parent after the left half.
fn split<S: NodeStore>(store: &mut S, block: u64, appended: bool) -> EngineResult<Child> {
    let generation = store.generation();
    let node = store.node_mut(block)?;
    let (level, owner) = (node.level, node.owner);
    let right_body = match &mut node.body {
        Body::Leaf(items) if appended && items.len() > 1 => {
            // The leaf held everything but the new item before it came.
            let at = items.len().saturating_sub(1);
            Body::Leaf(items.try_split_off(at)?)
        }
        Body::Leaf(items) => {
            let total: usize = items.iter().fold(0, |n, i| n.saturating_add(i.size()));
            let mut left_bytes = 0usize;
            let mut at = 0usize;
            for item in items.iter() {
                if left_bytes.saturating_mul(2) >= total {
                    break;
                }
                left_bytes = left_bytes.saturating_add(item.size());
                at = at.saturating_add(1);
            }
            let at = at.clamp(1, items.len().saturating_sub(1).max(1));
            Body::Leaf(items.try_split_off(at)?)
        }
        Body::Internal(children) => {
            let at = children.len() / 2;
            Body::Internal(children.try_split_off(at)?)
        }
    };
    let right = Node {
        level,
        owner,
        generation,
        body: right_body,
    };
    let key = right
        .first_key()
        .ok_or(corrupt_structure(block, "split produced an empty node"))?;
    let right_block = store.alloc(right)?;
    Ok(Child {
        key,
        block: right_block,
        generation,
    })
}

/// Removes `key`, returning its value if it was present. `root` is updated to the tree's
/// new root; an absent key changes nothing.
pub fn remove<S: NodeStore>(
    store: &mut S,
    root: &mut NodeRef,
    key: &Key,
) -> EngineResult<Option<FVec<u8>>> {
    if lookup(store, root, key)?.is_none() {
        return Ok(None);
    }
    let (new_root, path, leaf) = shadow_path(store, root, key)?;
    let mut root_block = new_root;
    let items = items_mut(store, leaf)?;
    let removed = match items.binary_search_by(|i| i.key.cmp(key)) {
        Ok(i) => items.remove(i).map(|item| item.data),
        Err(_) => None,
    };
    // Walk up: fix keys, rebalance underfull children.
    let mut block = leaf;
    for step in path.iter().rev() {
        let first = store.own_node(block)?.first_key();
        if let (Some(first), Some(entry)) =
            (first, children_mut(store, step.block)?.get_mut(step.index))
        {
            entry.key = first;
        }
        if is_underfull(store.own_node(block)?) {
            rebalance(store, step.block, step.index)?;
        }
        block = step.block;
    }
    collapse_root(store, &mut root_block)?;
    *root = own_root(store, root_block)?;
    Ok(removed)
}

/// Replaces a root that has a single child by that child, repeatedly.
fn collapse_root<S: NodeStore>(store: &mut S, root: &mut u64) -> EngineResult<()> {
    for _ in 0..=MAX_LEVEL {
        let node = store.own_node(*root)?;
        let child_at = child_level(*root, node.level);
        let only = match &node.body {
            Body::Internal(children) if children.len() == 1 => match children.first() {
                Some(c) => Some(NodeRef::child(c, child_at?)),
                None => None,
            },
            Body::Internal(children) if children.is_empty() => {
                return Err(corrupt_structure(*root, "empty internal node"));
            }
            _ => None,
        };
        let Some(child) = only else {
            return Ok(());
        };
        // The parent is private to this transaction (it was shadowed), so dropping it also
        // drops its reference to the child; take a reference for the new root first.
        let child = store.shadow(&child)?;
        set_child_block(store, *root, 0, child)?;
        children_mut(store, *root)?.clear();
        store.free(*root)?;
        *root = child;
    }
    Ok(())
}

/// Pools the entries of the child at `index` of `parent` with its neighbours and spreads
/// them again over as few nodes as keep each under capacity.
fn rebalance<S: NodeStore>(store: &mut S, parent: u64, index: usize) -> EngineResult<()> {
    let parent_node = store.own_node(parent)?;
    let count = parent_node.len();
    if count < 2 {
        return Ok(());
    }
    let level = child_level(parent, parent_node.level)?;
    let first = index.saturating_sub(1);
    let last = index.saturating_add(1).min(count.saturating_sub(1));
    // Shadow the neighbours that will change and collect everyone's entries in order.
    let mut blocks: FVec<u64> = FVec::new();
    for i in first..=last {
        let child = children_mut(store, parent)?
            .get(i)
            .map(|c| NodeRef::child(c, level))
            .ok_or(corrupt_structure(parent, "child index out of range"))?;
        let shadowed = store.shadow(&child)?;
        if shadowed != child.block {
            set_child_block(store, parent, i, shadowed)?;
        }
        blocks.try_push(shadowed)?;
    }
    let mut pooled = Pool::Empty;
    for &b in blocks.iter() {
        let node = store.node_mut(b)?;
        let body = core::mem::replace(&mut node.body, Body::Leaf(FVec::new()));
        pooled.append(b, body)?;
    }
    let total = pooled.bytes();
    let n_old = blocks.len();
    // One node fewer if the entries fit comfortably, else as many as before.
    // One node fewer if the entries fit even when a cut lands a whole entry off the even
    // share, else as many as before.
    let slack = pooled.largest_entry();
    let fewer = n_old.saturating_sub(1);
    let n_new = if fewer > 0 && total <= fewer.saturating_mul(NODE_CAPACITY.saturating_sub(slack)) {
        fewer
    } else {
        n_old
    };
    let n_new = n_new.max(1);
    let mut parts = pooled.split_evenly(n_new)?;
    // Item sizes may allow fewer pieces than asked for; never more.
    let n_new = parts.len().min(n_new);
    // Refill the first `n_new` blocks, free the rest, and rewrite the parent's entries.
    let generation = store.generation();
    let mut new_children: FVec<Child> = FVec::new();
    for (i, &b) in blocks.iter().enumerate() {
        if i < n_new {
            let body = parts
                .remove(0)
                .ok_or(corrupt_structure(b, "rebalance lost a node"))?;
            let node = store.node_mut(b)?;
            node.body = body;
            node.generation = generation;
            let key = node
                .first_key()
                .ok_or(corrupt_structure(b, "rebalance produced an empty node"))?;
            new_children.try_push(Child {
                key,
                block: b,
                generation,
            })?;
        } else {
            store.free(b)?;
        }
    }
    let children = children_mut(store, parent)?;
    for _ in first..=last {
        children.remove(first);
    }
    for (i, c) in new_children.iter().enumerate() {
        children.try_insert(first.saturating_add(i), *c)?;
    }
    Ok(())
}

/// Entries gathered from neighbouring nodes of one level.
enum Pool {
    Empty,
    Leaf(FVec<Item>),
    Internal(FVec<Child>),
}

impl Pool {
    fn append(&mut self, block: u64, body: Body) -> EngineResult<()> {
        match (core::mem::replace(self, Pool::Empty), body) {
            (Pool::Empty, Body::Leaf(items)) => *self = Pool::Leaf(items),
            (Pool::Empty, Body::Internal(children)) => *self = Pool::Internal(children),
            (Pool::Leaf(mut all), Body::Leaf(mut items)) => {
                all.try_append(&mut items)?;
                *self = Pool::Leaf(all);
            }
            (Pool::Internal(mut all), Body::Internal(mut children)) => {
                all.try_append(&mut children)?;
                *self = Pool::Internal(all);
            }
            _ => return Err(corrupt_structure(block, "siblings at different levels")),
        }
        Ok(())
    }

    fn largest_entry(&self) -> usize {
        match self {
            Pool::Empty => 0,
            Pool::Leaf(items) => items.iter().map(Item::size).max().unwrap_or(0),
            Pool::Internal(_) => CHILD_SIZE,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Pool::Empty => 0,
            Pool::Leaf(items) => items.iter().fold(0, |n, i| n.saturating_add(i.size())),
            Pool::Internal(children) => children.len().saturating_mul(CHILD_SIZE),
        }
    }

    /// Cuts the pool into `n` consecutive bodies of about equal bytes, none empty.
    fn split_evenly(self, n: usize) -> EngineResult<FVec<Body>> {
        let total = self.bytes();
        let mut out = FVec::try_with_capacity(n)?;
        match self {
            Pool::Empty => return Err(EngineError::Invalid("rebalance of nothing")),
            Pool::Leaf(mut items) => {
                // Cut points at the item boundaries closest to k * total / n.
                let mut cuts: FVec<usize> = FVec::new();
                let mut acc = 0usize;
                let mut k = 1usize;
                for (i, item) in items.iter().enumerate() {
                    let target = total.saturating_mul(k).checked_div(n).unwrap_or(0);
                    let after = acc.saturating_add(item.size());
                    // Cut before item `i` if that lands nearer the target than after it.
                    if k < n
                        && i > cuts.last().copied().unwrap_or(0)
                        && after > target
                        && target.saturating_sub(acc) <= after.saturating_sub(target)
                    {
                        cuts.try_push(i)?;
                        k = k.saturating_add(1);
                    }
                    acc = after;
                }
                let mut pieces: FVec<FVec<Item>> = FVec::new();
                for &cut in cuts.iter().rev() {
                    pieces.try_push(items.try_split_off(cut)?)?;
                }
                pieces.try_push(items)?;
                while let Some(piece) = pieces.pop() {
                    out.try_push(Body::Leaf(piece))?;
                }
            }
            Pool::Internal(mut children) => {
                let len = children.len();
                let mut pieces: FVec<FVec<Child>> = FVec::new();
                for k in (1..n).rev() {
                    let at = len.saturating_mul(k).checked_div(n).unwrap_or(0);
                    pieces.try_push(children.try_split_off(at)?)?;
                }
                pieces.try_push(children)?;
                while let Some(piece) = pieces.pop() {
                    out.try_push(Body::Internal(piece))?;
                }
            }
        }
        Ok(out)
    }
}

/// Checks the structure of the tree rooted at `root`: key order within and across nodes,
/// exact parent keys, consistent levels, no empty or overfull nodes, and non-root nodes at
/// least a quarter full minus one entry. Returns the number of items.
///
/// Each node is read through its parent's reference, so generations, levels and owners are
/// checked too; the walk visits every node once (a repeated node breaks key order).
pub fn check<S: NodeStore>(store: &mut S, root: &NodeRef) -> EngineResult<u64> {
    let mut count = 0u64;
    check_node(store, root, None, true, &mut count)?;
    Ok(count)
}

fn check_node<S: NodeStore>(
    store: &mut S,
    at: &NodeRef,
    high: Option<Key>,
    is_root: bool,
    count: &mut u64,
) -> EngineResult<()> {
    let (block, level, low) = (at.block, at.level, at.first_key);
    let bad = |reason| corrupt_structure(block, reason);
    let node = store.node(at)?;
    if node.level != level {
        return Err(bad("node level does not match its position"));
    }
    if node.used() > NODE_CAPACITY {
        return Err(bad("node overfull"));
    }
    if !is_root {
        if node.is_empty() {
            return Err(bad("empty non-root node"));
        }
        let slack = match node.body {
            Body::Leaf(_) => MAX_ITEM_DATA + super::node::ITEM_HEADER_SIZE,
            Body::Internal(_) => CHILD_SIZE,
        };
        if node.used().saturating_add(slack) < NODE_CAPACITY / 4 {
            return Err(bad("node underfull"));
        }
    }
    if let (Some(low), Some(first)) = (low, node.first_key()) {
        if first != low {
            return Err(bad("parent key differs from the child's first key"));
        }
    }
    match &node.body {
        Body::Leaf(items) => {
            for (i, item) in items.iter().enumerate() {
                if i.checked_sub(1)
                    .and_then(|p| items.get(p))
                    .is_some_and(|p| p.key >= item.key)
                {
                    return Err(bad("leaf keys out of order"));
                }
                if high.is_some_and(|h| item.key >= h) {
                    return Err(bad("leaf key beyond the parent's next key"));
                }
            }
            *count = count.saturating_add(items.len() as u64);
            Ok(())
        }
        Body::Internal(children) => {
            if level == 0 || children.len() > MAX_CHILDREN {
                return Err(bad("malformed internal node"));
            }
            let children = children.try_clone()?;
            for (i, c) in children.iter().enumerate() {
                let next = children.get(i.saturating_add(1)).map(|n| n.key).or(high);
                if next.is_some_and(|n| c.key >= n) {
                    return Err(bad("node keys out of order"));
                }
                let child = NodeRef::child(c, child_level(block, level)?);
                check_node(store, &child, next, false, count)?;
            }
            Ok(())
        }
    }
}
