//! Node encoding: round trips, every single-byte corruption is caught and names the
//! block, and random garbage never panics the decoder.

mod common;

use common::Rng;
use ferrofs_engine::error::EngineError;
use ferrofs_engine::format::BLOCK_SIZE;
use ferrofs_engine::key::Key;
use ferrofs_engine::mem::FVec;
use ferrofs_engine::node::{Body, Child, Item, Node, NodeRef, MAX_CHILDREN, MAX_ITEM_DATA};

const FSID: [u8; 16] = *b"0123456789abcdef";

fn leaf(rng: &mut Rng) -> Node {
    let mut node = Node::new_leaf(7, 42);
    let Body::Leaf(items) = &mut node.body else {
        unreachable!()
    };
    let mut objectid = 0;
    while node_used(items) < 3000 {
        objectid += 1 + rng.below(5);
        let len = rng.below(200) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        items
            .try_push(Item {
                key: Key::new(objectid, 1, rng.below(9)),
                data: FVec::try_from_slice(&data).unwrap(),
            })
            .unwrap();
    }
    node
}

fn node_used(items: &FVec<Item>) -> usize {
    items.iter().map(Item::size).sum()
}

fn internal(rng: &mut Rng) -> Node {
    let mut children = FVec::new();
    for i in 0..MAX_CHILDREN as u64 {
        children
            .try_push(Child {
                key: Key::new(i * 10, 0, 0),
                block: rng.next(),
                generation: i,
            })
            .unwrap();
    }
    Node::new_internal(3, 900, 2, children)
}

fn encode(node: &Node, bytenr: u64) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    node.encode(&FSID, bytenr, &mut block).unwrap();
    block
}

#[test]
fn round_trip() {
    let mut rng = Rng::new(1);
    for node in [leaf(&mut rng), internal(&mut rng), Node::new_leaf(1, 1)] {
        let block = encode(&node, 4096 * 77);
        assert_eq!(Node::decode(&FSID, 4096 * 77, &block).unwrap(), node);
    }
}

#[test]
fn every_flipped_byte_is_caught_and_names_the_block() {
    let mut rng = Rng::new(2);
    for node in [leaf(&mut rng), internal(&mut rng)] {
        let good = encode(&node, 8192);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            match Node::decode(&FSID, 8192, &bad) {
                Err(EngineError::Corrupt { block, .. }) => assert_eq!(block, 8192),
                other => panic!("byte {i}: {other:?}"),
            }
        }
    }
}

#[test]
fn wrong_address_or_filesystem_is_caught() {
    let mut rng = Rng::new(3);
    let block = encode(&leaf(&mut rng), 4096);
    assert!(matches!(
        Node::decode(&FSID, 8192, &block),
        Err(EngineError::Corrupt { block: 8192, .. })
    ));
    assert!(matches!(
        Node::decode(b"fedcba9876543210", 4096, &block),
        Err(EngineError::Corrupt { .. })
    ));
}

#[test]
fn oversized_node_does_not_encode() {
    let mut node = Node::new_leaf(1, 1);
    let Body::Leaf(items) = &mut node.body else {
        unreachable!()
    };
    for i in 0..5 {
        items
            .try_push(Item {
                key: Key::new(i, 0, 0),
                data: FVec::try_from_slice(&[0u8; MAX_ITEM_DATA]).unwrap(),
            })
            .unwrap();
    }
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    assert!(node.encode(&FSID, 0, &mut block).is_err());
}

/// Mutations of valid blocks with the checksum fixed up afterwards, so the decoder's
/// structural checks (not just the checksum) see hostile input: errors only, no panics.
#[test]
fn mutated_blocks_with_valid_checksums_never_panic() {
    let mut rng = Rng::new(4);
    let sources = [
        encode(&leaf(&mut rng), 4096),
        encode(&internal(&mut rng), 4096),
    ];
    for round in 0..200_000u64 {
        let mut block = sources[(round % 2) as usize].clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(block.len() as u64) as usize;
            block[at] = match rng.below(3) {
                0 => rng.next() as u8,
                1 => 0xff,
                _ => 0,
            };
        }
        let csum = ferrofs_engine::crc32c::checksum(&block[4..]);
        block[..4].copy_from_slice(&csum.to_le_bytes());
        let _ = Node::decode(&FSID, 4096, &block);
    }
}

fn reason(result: Result<Node, EngineError>) -> &'static str {
    match result {
        Err(EngineError::Corrupt { block, reason }) => {
            assert_eq!(block, 8192, "the error names the block");
            reason
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

fn child(key: u64, block: u64, generation: u64) -> Child {
    Child {
        key: Key::new(key, 0, 0),
        block,
        generation,
    }
}

#[test]
fn a_node_that_repeats_a_child_is_rejected() {
    let mut children = FVec::new();
    for (k, b) in [(1, 4096), (2, 8192 * 3), (3, 4096)] {
        children.try_push(child(k, b, 5)).unwrap();
    }
    let block = encode(&Node::new_internal(3, 9, 1, children), 8192);
    assert_eq!(
        reason(Node::decode(&FSID, 8192, &block)),
        "node points at the same child twice"
    );
}

#[test]
fn a_child_newer_than_its_parent_or_an_empty_internal_node_is_rejected() {
    let mut children = FVec::new();
    children.try_push(child(1, 4096, 10)).unwrap();
    let block = encode(&Node::new_internal(3, 9, 1, children), 8192);
    assert_eq!(
        reason(Node::decode(&FSID, 8192, &block)),
        "child newer than its parent"
    );
    let block = encode(&Node::new_internal(3, 9, 1, FVec::new()), 8192);
    assert_eq!(
        reason(Node::decode(&FSID, 8192, &block)),
        "empty internal node"
    );
}

#[test]
fn a_node_is_checked_against_what_its_parent_says() {
    let mut rng = Rng::new(3);
    let node = leaf(&mut rng); // owner 7, generation 42, level 0
    let first = node.first_key();
    let good = NodeRef {
        block: 8192,
        generation: 42,
        level: 0,
        first_key: first,
    };
    assert_eq!(node.verify(&good, 7), Ok(()));
    assert_eq!(
        node.verify(
            &NodeRef {
                first_key: None,
                ..good
            },
            7
        ),
        Ok(())
    );
    let stale = NodeRef {
        generation: 43,
        ..good
    };
    assert!(node.verify(&stale, 7).unwrap_err().contains("generation"));
    let deeper = NodeRef { level: 1, ..good };
    assert!(node.verify(&deeper, 7).unwrap_err().contains("level"));
    assert!(node.verify(&good, 5).unwrap_err().contains("another tree"));
    let moved = NodeRef {
        first_key: Some(Key::new(0, 0, 0)),
        ..good
    };
    assert!(node.verify(&moved, 7).unwrap_err().contains("first key"));
    // Only a root may be empty.
    let empty = Node::new_leaf(7, 42);
    assert_eq!(
        empty.verify(
            &NodeRef {
                first_key: None,
                ..good
            },
            7
        ),
        Ok(())
    );
    assert!(empty.verify(&good, 7).unwrap_err().contains("empty"));
}
