//! Shared test helpers: a deterministic random generator and an in-memory node store.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use ferrofs_engine::btree::NodeStore;
use ferrofs_engine::error::{EngineError, EngineResult};
use ferrofs_engine::node::{Body, Node, NodeRef};

/// The tree id every test tree's nodes carry.
pub const OWNER: u64 = 5;

/// xorshift64*: deterministic, seedable, good enough to drive operation sequences.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Nodes in memory with reference counts and copy-on-write between "transactions".
pub struct MemStore {
    pub nodes: HashMap<u64, Node>,
    pub refs: HashMap<u64, u32>,
    fresh: HashSet<u64>,
    next: u64,
    generation: u64,
}

impl MemStore {
    pub fn new() -> Self {
        Self {
            nodes: HashMap::new(),
            refs: HashMap::new(),
            fresh: HashSet::new(),
            next: 1,
            generation: 1,
        }
    }

    /// A new tree: an empty leaf root.
    pub fn new_tree(&mut self) -> NodeRef {
        let g = self.generation;
        let block = self.alloc(Node::new_leaf(OWNER, g)).unwrap();
        NodeRef {
            block,
            generation: g,
            level: 0,
            first_key: None,
        }
    }

    /// Ends the transaction: every node becomes read-only until shadowed again.
    pub fn commit(&mut self) {
        self.fresh.clear();
        self.generation += 1;
    }

    /// Takes another reference on a root (a snapshot of the tree).
    pub fn share(&mut self, block: u64) {
        *self.refs.get_mut(&block).unwrap() += 1;
    }

    /// Recounts the references every live root implies and compares with `refs`; also
    /// checks no node is unreachable. Panics on a mismatch.
    pub fn check_refcounts(&self, roots: &[u64]) {
        let mut expected: HashMap<u64, u32> = HashMap::new();
        let mut stack: Vec<u64> = roots.to_vec();
        for &r in roots {
            *expected.entry(r).or_default() += 0;
        }
        let mut counted_root: HashMap<u64, u32> = HashMap::new();
        for &r in roots {
            *counted_root.entry(r).or_default() += 1;
        }
        let mut seen = HashSet::new();
        while let Some(b) = stack.pop() {
            if !seen.insert(b) {
                continue;
            }
            if let Body::Internal(children) = &self.nodes[&b].body {
                for c in children.iter() {
                    *expected.entry(c.block).or_default() += 1;
                    stack.push(c.block);
                }
            }
        }
        for (b, n) in counted_root {
            *expected.entry(b).or_default() += n;
        }
        assert_eq!(
            expected.len(),
            self.nodes.len(),
            "unreachable nodes leaked: {} reachable, {} stored",
            expected.len(),
            self.nodes.len()
        );
        for (b, n) in &expected {
            assert_eq!(self.refs.get(b), Some(n), "refcount of block {b}");
        }
    }
}

impl NodeStore for MemStore {
    fn node(&mut self, at: &NodeRef) -> EngineResult<&Node> {
        let block = at.block;
        let node = self.nodes.get(&block).ok_or(EngineError::Corrupt {
            block,
            reason: "no such block",
        })?;
        node.verify(at, OWNER)
            .map_err(|reason| EngineError::Corrupt { block, reason })?;
        Ok(node)
    }

    fn own_node(&mut self, block: u64) -> EngineResult<&Node> {
        if !self.fresh.contains(&block) {
            return Err(EngineError::Invalid("not a block of this transaction"));
        }
        self.nodes.get(&block).ok_or(EngineError::Corrupt {
            block,
            reason: "no such block",
        })
    }

    fn node_mut(&mut self, block: u64) -> EngineResult<&mut Node> {
        if !self.fresh.contains(&block) {
            return Err(EngineError::Invalid(
                "changing a block not shadowed in this transaction",
            ));
        }
        self.nodes.get_mut(&block).ok_or(EngineError::Corrupt {
            block,
            reason: "no such block",
        })
    }

    fn shadow(&mut self, at: &NodeRef) -> EngineResult<u64> {
        let block = at.block;
        if !self.fresh.contains(&block) {
            // As a volume does: a block of this transaction may be mid-change (an emptied
            // leaf about to be merged); any other is read, and so checked.
            self.node(at)?;
        }
        let refs = *self.refs.get(&block).ok_or(EngineError::Corrupt {
            block,
            reason: "no refcount",
        })?;
        if refs == 1 && self.fresh.contains(&block) {
            return Ok(block);
        }
        let mut copy = self.nodes[&block].try_clone()?;
        copy.generation = self.generation;
        if refs > 1 {
            // Still shared: the copy takes its own reference on every child.
            if let Body::Internal(children) = &copy.body {
                for c in children.iter() {
                    *self.refs.get_mut(&c.block).unwrap() += 1;
                }
            }
            *self.refs.get_mut(&block).unwrap() -= 1;
        } else {
            // Ours alone: the copy inherits the children's references.
            self.nodes.remove(&block);
            self.refs.remove(&block);
        }
        self.alloc(copy)
    }

    fn alloc(&mut self, node: Node) -> EngineResult<u64> {
        let b = self.next;
        self.next += 1;
        self.nodes.insert(b, node);
        self.refs.insert(b, 1);
        self.fresh.insert(b);
        Ok(b)
    }

    fn free(&mut self, block: u64) -> EngineResult<()> {
        let r = self.refs.get_mut(&block).ok_or(EngineError::Corrupt {
            block,
            reason: "free of an unknown block",
        })?;
        *r -= 1;
        if *r == 0 {
            self.refs.remove(&block);
            self.fresh.remove(&block);
            let node = self.nodes.remove(&block).unwrap();
            if let Body::Internal(children) = &node.body {
                for c in children.iter() {
                    self.free(c.block)?;
                }
            }
        }
        Ok(())
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}
