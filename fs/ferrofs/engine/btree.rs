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
    Body, Child, Item, Node, CHILD_SIZE, MAX_CHILDREN, MAX_ITEM_DATA, MAX_LEVEL, NODE_CAPACITY,
};

/// Where b-tree nodes live: a transaction's block cache over the devices, or memory in
/// tests. Addresses are logical block addresses.
pub trait NodeStore {
    /// The node at `block`, read and verified if needed.
    fn node(&mut self, block: u64) -> EngineResult<&Node>;
    /// The node at `block` for changing in place. Only valid for blocks returned by
    /// [`Self::shadow`] or [`Self::alloc`] in the current transaction.
    fn node_mut(&mut self, block: u64) -> EngineResult<&mut Node>;
    /// A block holding the node at `block` that this transaction may change in place:
    /// `block` itself if it is already private to the transaction, else a copy.
    fn shadow(&mut self, block: u64) -> EngineResult<u64>;
    /// Stores a new node, returning its address.
    fn alloc(&mut self, node: Node) -> EngineResult<u64>;
    /// Drops this tree's reference to the node at `block` (freeing it at the last one).
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

/// Reads the value stored under `key` in the tree rooted at `root`.
pub fn lookup<S: NodeStore>(store: &mut S, root: u64, key: &Key) -> EngineResult<Option<FVec<u8>>> {
    let mut block = root;
    for _ in 0..=MAX_LEVEL {
        let node = store.node(block)?;
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
                    return Err(corrupt_structure(block, "empty internal node"));
                };
                block = child.block;
            }
        }
    }
    Err(corrupt_structure(
        root,
        "tree deeper than the maximum level",
    ))
}

/// Direction of a neighbour search.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// The first item with a key at or after the given one.
    Forward,
    /// The last item with a key at or before the given one.
    Backward,
}

/// The first item at or after `key` (forward) or the last at or before it (backward).
pub fn seek<S: NodeStore>(
    store: &mut S,
    root: u64,
    key: &Key,
    dir: Direction,
) -> EngineResult<Option<(Key, FVec<u8>)>> {
    seek_in(store, root, key, dir, 0)
}

fn seek_in<S: NodeStore>(
    store: &mut S,
    block: u64,
    key: &Key,
    dir: Direction,
    depth: u8,
) -> EngineResult<Option<(Key, FVec<u8>)>> {
    if depth > MAX_LEVEL {
        return Err(corrupt_structure(
            block,
            "tree deeper than the maximum level",
        ));
    }
    let node = store.node(block)?;
    match &node.body {
        Body::Leaf(items) => {
            let found = match (items.binary_search_by(|i| i.key.cmp(key)), dir) {
                (Ok(i), _) => items.get(i),
                (Err(i), Direction::Forward) => items.get(i),
                (Err(i), Direction::Backward) => i.checked_sub(1).and_then(|i| items.get(i)),
            };
            match found {
                Some(item) => Ok(Some((item.key, item.data.try_clone()?))),
                None => Ok(None),
            }
        }
        Body::Internal(children) => {
            // The child that would hold `key`, then its neighbours in the search direction:
            // the match may be in a later (forward) or earlier (backward) subtree.
            let start = child_index(children, key);
            let mut order: FVec<u64> = FVec::new();
            match dir {
                Direction::Forward => {
                    for c in children.get(start..).unwrap_or(&[]) {
                        order.try_push(c.block)?;
                    }
                }
                Direction::Backward => {
                    if children.first().is_some_and(|c| c.key > *key) {
                        return Ok(None);
                    }
                    for c in children.get(..=start).unwrap_or(&[]).iter().rev() {
                        order.try_push(c.block)?;
                    }
                }
            }
            let next_depth = depth.saturating_add(1);
            for child in order.iter() {
                if let Some(found) = seek_in(store, *child, key, dir, next_depth)? {
                    return Ok(Some(found));
                }
            }
            Ok(None)
        }
    }
}

/// One step of a path from the root: a shadowed internal node and the child index taken.
#[derive(Clone, Copy)]
struct Step {
    block: u64,
    index: usize,
}

/// Shadows the path from `root` to the leaf for `key`; returns the new root, the steps, and
/// the shadowed leaf.
fn shadow_path<S: NodeStore>(
    store: &mut S,
    root: u64,
    key: &Key,
) -> EngineResult<(u64, FVec<Step>, u64)> {
    let new_root = store.shadow(root)?;
    let mut path = FVec::new();
    let mut block = new_root;
    for _ in 0..=MAX_LEVEL {
        let node = store.node(block)?;
        let (index, child) = match &node.body {
            Body::Leaf(_) => return Ok((new_root, path, block)),
            Body::Internal(children) => {
                let index = child_index(children, key);
                match children.get(index) {
                    Some(c) => (index, c.block),
                    None => return Err(corrupt_structure(block, "empty internal node")),
                }
            }
        };
        let shadowed = store.shadow(child)?;
        if shadowed != child {
            set_child_block(store, block, index, shadowed)?;
        }
        path.try_push(Step { block, index })?;
        block = shadowed;
    }
    Err(corrupt_structure(
        root,
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
    root: &mut u64,
    key: Key,
    value: &[u8],
) -> EngineResult<Option<FVec<u8>>> {
    if value.len() > MAX_ITEM_DATA {
        return Err(EngineError::Invalid("b-tree item too large"));
    }
    let data = FVec::try_from_slice(value)?;
    let (new_root, path, leaf) = shadow_path(store, *root, &key)?;
    *root = new_root;
    let items = items_mut(store, leaf)?;
    let old = match items.binary_search_by(|i| i.key.cmp(&key)) {
        Ok(i) => match items.get_mut(i) {
            Some(item) => Some(core::mem::replace(&mut item.data, data)),
            None => None,
        },
        Err(i) => {
            items.try_insert(i, Item { key, data })?;
            None
        }
    };
    fix_up_after_insert(store, root, &path, leaf)?;
    Ok(old)
}

/// Walks back up `path` after the leaf changed: keeps parent keys exact and splits
/// overfull nodes, growing a new root if the old one split.
fn fix_up_after_insert<S: NodeStore>(
    store: &mut S,
    root: &mut u64,
    path: &[Step],
    leaf: u64,
) -> EngineResult<()> {
    let mut block = leaf;
    let mut split_off = if store.node(leaf)?.used() > NODE_CAPACITY {
        Some(split(store, leaf)?)
    } else {
        None
    };
    for step in path.iter().rev() {
        let first = store.node(block)?.first_key();
        let children = children_mut(store, step.block)?;
        if let (Some(first), Some(entry)) = (first, children.get_mut(step.index)) {
            entry.key = first;
        }
        if let Some(right) = split_off.take() {
            children.try_insert(step.index.saturating_add(1), right)?;
        }
        if store.node(step.block)?.used() > NODE_CAPACITY {
            split_off = Some(split(store, step.block)?);
        }
        block = step.block;
    }
    // `block` is now the root; if it split, grow a new root above both halves.
    if let Some(right) = split_off {
        let left = store.node(block)?;
        let level = left.level.saturating_add(1);
        if level > MAX_LEVEL {
            return Err(EngineError::NoSpace);
        }
        let owner = left.owner;
        let left_key = left.first_key().unwrap_or(Key::MIN);
        let generation = store.generation();
        let mut children = FVec::try_with_capacity(2)?;
        children.try_push(Child {
            key: left_key,
            block,
            generation,
        })?;
        children.try_push(right)?;
        *root = store.alloc(Node::new_internal(owner, generation, level, children))?;
    }
    Ok(())
}

/// Splits the overfull node at `block` in two by bytes; returns the entry for the new right
/// half, to be inserted into the parent after the left half.
fn split<S: NodeStore>(store: &mut S, block: u64) -> EngineResult<Child> {
    let generation = store.generation();
    let node = store.node_mut(block)?;
    let (level, owner) = (node.level, node.owner);
    let right_body = match &mut node.body {
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
    root: &mut u64,
    key: &Key,
) -> EngineResult<Option<FVec<u8>>> {
    if lookup(store, *root, key)?.is_none() {
        return Ok(None);
    }
    let (new_root, path, leaf) = shadow_path(store, *root, key)?;
    *root = new_root;
    let items = items_mut(store, leaf)?;
    let removed = match items.binary_search_by(|i| i.key.cmp(key)) {
        Ok(i) => items.remove(i).map(|item| item.data),
        Err(_) => None,
    };
    // Walk up: fix keys, rebalance underfull children.
    let mut block = leaf;
    for step in path.iter().rev() {
        let first = store.node(block)?.first_key();
        if let (Some(first), Some(entry)) =
            (first, children_mut(store, step.block)?.get_mut(step.index))
        {
            entry.key = first;
        }
        if is_underfull(store.node(block)?) {
            rebalance(store, step.block, step.index)?;
        }
        block = step.block;
    }
    collapse_root(store, root)?;
    Ok(removed)
}

/// Replaces a root that has a single child by that child, repeatedly.
fn collapse_root<S: NodeStore>(store: &mut S, root: &mut u64) -> EngineResult<()> {
    for _ in 0..=MAX_LEVEL {
        let node = store.node(*root)?;
        let only = match &node.body {
            Body::Internal(children) if children.len() == 1 => children.first().map(|c| c.block),
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
        let child = store.shadow(child)?;
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
    let count = store.node(parent)?.len();
    if count < 2 {
        return Ok(());
    }
    let first = index.saturating_sub(1);
    let last = index.saturating_add(1).min(count.saturating_sub(1));
    // Shadow the neighbours that will change and collect everyone's entries in order.
    let mut blocks: FVec<u64> = FVec::new();
    for i in first..=last {
        let child = children_mut(store, parent)?
            .get(i)
            .map(|c| c.block)
            .ok_or(corrupt_structure(parent, "child index out of range"))?;
        let shadowed = store.shadow(child)?;
        if shadowed != child {
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
pub fn check<S: NodeStore>(store: &mut S, root: u64) -> EngineResult<u64> {
    let level = store.node(root)?.level;
    let mut count = 0u64;
    check_node(store, root, level, None, None, true, &mut count)?;
    Ok(count)
}

fn check_node<S: NodeStore>(
    store: &mut S,
    block: u64,
    level: u8,
    low: Option<Key>,
    high: Option<Key>,
    is_root: bool,
    count: &mut u64,
) -> EngineResult<()> {
    let bad = |reason| corrupt_structure(block, reason);
    let node = store.node(block)?;
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
                check_node(
                    store,
                    c.block,
                    level.saturating_sub(1),
                    Some(c.key),
                    next,
                    false,
                    count,
                )?;
            }
            Ok(())
        }
    }
}
