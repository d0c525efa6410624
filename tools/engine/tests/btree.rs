//! The copy-on-write b-tree against `BTreeMap` as the model: random operation sequences
//! with the structure checked after every step, transactions, snapshots sharing nodes, and
//! reference counts recounted from scratch.

mod common;

use std::collections::BTreeMap;

use common::{MemStore, Rng};
use ferrofs_engine::btree::{self, Cursor};
use ferrofs_engine::key::Key;
use ferrofs_engine::node::{NodeRef, ITEM_HEADER_SIZE, MAX_ITEM_DATA, NODE_CAPACITY};

fn value(rng: &mut Rng, key: &Key) -> Vec<u8> {
    // Mostly small values, sometimes the largest allowed, to exercise byte-based splits.
    let len = match rng.below(10) {
        0 => MAX_ITEM_DATA,
        1..=3 => rng.below(MAX_ITEM_DATA as u64 + 1) as usize,
        _ => rng.below(40) as usize,
    };
    (0..len)
        .map(|i| (key.offset as u8).wrapping_add(i as u8))
        .collect()
}

fn random_key(rng: &mut Rng, space: u64) -> Key {
    Key::new(rng.below(space / 16 + 1), rng.below(3) as u8, rng.below(16))
}

fn assert_same(store: &mut MemStore, root: &NodeRef, model: &BTreeMap<Key, Vec<u8>>) {
    let count = btree::check(store, root).expect("tree structure");
    assert_eq!(count, model.len() as u64, "item count");
    // Walk forward with a cursor and compare every item.
    let mut cursor = Cursor::seek(store, root, &Key::MIN).unwrap();
    let mut expected = model.iter();
    while let Some((key, data)) = cursor.item(store).unwrap() {
        let (mk, mv) = expected.next().expect("tree has more items than the model");
        assert_eq!((&key, &data[..]), (mk, &mv[..]));
        cursor.next(store).unwrap();
    }
    assert!(
        expected.next().is_none(),
        "tree has fewer items than the model"
    );
    // And backward from past the end.
    let mut cursor = Cursor::seek(store, root, &Key::MAX).unwrap();
    let mut expected = model.iter().rev();
    if let Some((k, _)) = cursor.item(store).unwrap() {
        // Only an item with the largest key can stand at Key::MAX.
        assert_eq!(k, Key::MAX);
    } else if !cursor.prev(store).unwrap() {
        assert!(model.is_empty());
        return;
    }
    loop {
        let (key, data) = cursor.item(store).unwrap().expect("cursor on an item");
        let (mk, mv) = expected.next().expect("tree has more items than the model");
        assert_eq!((&key, &data[..]), (mk, &mv[..]));
        if !cursor.prev(store).unwrap() {
            break;
        }
    }
    assert!(expected.next().is_none(), "backward walk missed items");
}

fn run(seed: u64, steps: usize, space: u64) {
    let mut rng = Rng::new(seed);
    let mut store = MemStore::new();
    let mut root = store.new_tree();
    let mut model: BTreeMap<Key, Vec<u8>> = BTreeMap::new();
    let mut snapshots: Vec<(NodeRef, BTreeMap<Key, Vec<u8>>)> = Vec::new();
    for step in 0..steps {
        let op = rng.below(100);
        let key = random_key(&mut rng, space);
        if op < 50 {
            let v = value(&mut rng, &key);
            let old = btree::insert(&mut store, &mut root, key, &v).unwrap();
            assert_eq!(
                old.as_deref(),
                model.insert(key, v).as_deref(),
                "step {step}"
            );
        } else if op < 85 {
            let old = btree::remove(&mut store, &mut root, &key).unwrap();
            assert_eq!(old.as_deref(), model.remove(&key).as_deref(), "step {step}");
        } else if op < 92 {
            let got = btree::lookup(&mut store, &root, &key).unwrap();
            assert_eq!(
                got.as_deref(),
                model.get(&key).map(|v| &v[..]),
                "step {step}"
            );
            let fwd = btree::first_at_or_after(&mut store, &root, &key).unwrap();
            let want = model.range(key..).next();
            assert_eq!(
                fwd.as_ref().map(|(k, v)| (k, &v[..])),
                want.map(|(k, v)| (k, &v[..]))
            );
            let back = btree::last_at_or_before(&mut store, &root, &key).unwrap();
            let want = model.range(..=key).next_back();
            assert_eq!(
                back.as_ref().map(|(k, v)| (k, &v[..])),
                want.map(|(k, v)| (k, &v[..]))
            );
        } else if op < 97 {
            store.commit();
        } else if snapshots.len() < 3 {
            store.share(root.block);
            snapshots.push((root, model.clone()));
            store.commit();
        } else {
            let (snap, _) = snapshots.remove(0);
            use ferrofs_engine::btree::NodeStore;
            store.free(snap.block).unwrap();
        }
        btree::check(&mut store, &root)
            .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e:?}"));
    }
    assert_same(&mut store, &root, &model);
    for (snap, snap_model) in &snapshots {
        assert_same(&mut store, snap, snap_model);
    }
    let mut roots: Vec<u64> = snapshots.iter().map(|(r, _)| r.block).collect();
    roots.push(root.block);
    store.check_refcounts(&roots);
    // Dropping every tree frees every node.
    use ferrofs_engine::btree::NodeStore;
    for r in roots {
        store.free(r).unwrap();
    }
    assert!(
        store.nodes.is_empty(),
        "nodes leaked after freeing every tree"
    );
}

#[test]
fn random_operations_small_key_space() {
    for seed in 0..20 {
        run(seed, 3000, 400);
    }
}

#[test]
fn random_operations_large_key_space() {
    for seed in 100..104 {
        run(seed, 20000, 200_000);
    }
}

#[test]
fn fill_then_drain_in_order_and_reverse() {
    for reverse in [false, true] {
        let mut store = MemStore::new();
        let mut root = store.new_tree();
        let n = 5000u64;
        for i in 0..n {
            btree::insert(&mut store, &mut root, Key::new(i, 1, 0), &[7u8; 100]).unwrap();
        }
        assert_eq!(btree::check(&mut store, &root).unwrap(), n);
        store.commit();
        let order: Vec<u64> = if reverse {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        };
        for (done, i) in order.into_iter().enumerate() {
            assert!(btree::remove(&mut store, &mut root, &Key::new(i, 1, 0))
                .unwrap()
                .is_some());
            if done % 97 == 0 {
                btree::check(&mut store, &root).unwrap();
            }
        }
        assert_eq!(btree::check(&mut store, &root).unwrap(), 0);
        store.check_refcounts(&[root.block]);
        assert_eq!(store.nodes.len(), 1, "only the empty root leaf remains");
    }
}

#[test]
fn oversized_item_is_rejected() {
    let mut store = MemStore::new();
    let mut root = store.new_tree();
    let too_big = vec![0u8; MAX_ITEM_DATA + 1];
    assert!(btree::insert(&mut store, &mut root, Key::new(1, 1, 1), &too_big).is_err());
    assert_eq!(btree::check(&mut store, &root).unwrap(), 0);
}

/// Keys inserted in increasing order (file extents, checksums, new inodes) leave full
/// leaves behind, not half-full ones: the last leaf splits off only the new item.
/// Inserts in decreasing order still split in halves, and both trees check out.
#[test]
fn appends_fill_their_leaves() {
    let n = 20_000u64;
    let per_leaf = (NODE_CAPACITY / (100 + ITEM_HEADER_SIZE)) as u64;
    let ideal = n.div_ceil(per_leaf);
    for reverse in [false, true] {
        let mut store = MemStore::new();
        let mut root = store.new_tree();
        for i in 0..n {
            let k = if reverse { n - i } else { i };
            btree::insert(&mut store, &mut root, Key::new(k, 1, 0), &[7u8; 100]).unwrap();
        }
        store.commit();
        assert_eq!(btree::check(&mut store, &root).unwrap(), n);
        let nodes = store.nodes.len() as u64;
        if reverse {
            assert!(
                nodes > ideal * 3 / 2,
                "{nodes} nodes for {ideal} full leaves"
            );
        } else {
            assert!(
                nodes <= ideal + ideal / 20 + 2,
                "{nodes} nodes for {ideal} full leaves"
            );
        }
    }
}
