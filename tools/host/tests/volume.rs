//! Volumes end to end on in-memory disks: mkfs with every profile, items through
//! transactions and remounts against a model, fsck clean, corruption found and repaired
//! from mirrors, degraded mounts.

use std::collections::BTreeMap;

use ferrofs_engine::chunk::{Kind, Profile};
use ferrofs_engine::error::EngineError;
use ferrofs_engine::format::{tree_id, Superblock, SUPERBLOCK_OFFSETS};
use ferrofs_engine::fsck;
use ferrofs_engine::key::Key;
use ferrofs_engine::mem::FVec;
use ferrofs_engine::node::{Child, Node, MAX_CHILDREN};
use ferrofs_engine::volume::Volume;
use ferrofs_host::memdev::{self, devs, MemDev, MemDisk, TEST_TREE};

const DISK: u64 = 256 << 20;

fn mkfs(disks: &[MemDisk], data: Profile, metadata: Profile) -> Volume<MemDev> {
    memdev::mkfs(disks, data, metadata, b"test").expect("mkfs")
}

fn assert_clean(vol: &mut Volume<MemDev>) {
    let report = fsck::check(vol, false).unwrap();
    assert!(
        report.problems.is_empty(),
        "fsck problems: {:?}",
        &report.problems[..]
    );
}

fn new_disks(n: usize) -> Vec<MemDisk> {
    MemDisk::set(n, DISK)
}

#[test]
fn mkfs_every_profile_is_clean_and_mounts() {
    let cases = [
        (1, Profile::Single, Profile::Single),
        (1, Profile::Single, Profile::Dup),
        (2, Profile::Raid0, Profile::Raid1),
        (3, Profile::Raid1, Profile::Raid1),
        (3, Profile::Raid1c3, Profile::Raid1c3),
        (4, Profile::Raid10, Profile::Raid10),
    ];
    for (n, data, metadata) in cases {
        let disks = new_disks(n);
        let mut vol = mkfs(&disks, data, metadata);
        assert_clean(&mut vol);
        for kind in Kind::ALL {
            let c = vol.chunks().iter().find(|c| c.kind == kind).unwrap();
            let want = if kind == Kind::Data { data } else { metadata };
            assert_eq!(c.profile, want, "{kind:?}");
        }
        drop(vol);
        let mut vol = Volume::open(devs(&disks), false).expect("mount");
        assert_clean(&mut vol);
        assert_eq!(vol.superblock().label_bytes(), b"test");
    }
}

#[test]
fn mkfs_rejects_too_few_devices() {
    let disks = new_disks(2);
    assert!(memdev::mkfs(&disks, Profile::Raid1c3, Profile::Raid1, b"").is_err());
    assert!(memdev::mkfs(&disks, Profile::Raid1, Profile::Raid10, b"").is_err());
    assert!(
        memdev::mkfs(&disks, Profile::Raid1, Profile::Raid1, &[b'x'; 256]).is_err(),
        "label too long"
    );
}

#[test]
fn items_survive_commits_and_remounts() {
    let disks = new_disks(3);
    let mut vol = mkfs(&disks, Profile::Raid1, Profile::Raid1);
    let mut model = BTreeMap::new();
    let mut seed = 7u64;
    for round in 0..8 {
        for i in 0..400u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = Key::new(256 + (seed >> 40) % 3000, 1, i % 7);
            if seed % 5 == 0 {
                assert_eq!(
                    vol.remove(TEST_TREE, &key).unwrap().map(|v| v.to_vec()),
                    model.remove(&key)
                );
            } else {
                let value = vec![(seed >> 8) as u8; (seed % 300) as usize];
                assert_eq!(
                    vol.insert(TEST_TREE, key, &value)
                        .unwrap()
                        .map(|v| v.to_vec()),
                    model.insert(key, value)
                );
            }
        }
        vol.commit().unwrap();
        if round % 2 == 1 {
            drop(vol);
            vol = Volume::open(devs(&disks), false).unwrap();
        }
        assert_clean(&mut vol);
        let mut seen = BTreeMap::new();
        let mut items = vol.range(TEST_TREE, Key::MIN, Key::MAX);
        while let Some((k, v)) = vol.next_in(&mut items).unwrap() {
            seen.insert(k, v.to_vec());
        }
        assert_eq!(seen, model, "round {round}");
    }
}

#[test]
fn freed_blocks_are_reused_after_commit() {
    let disks = new_disks(1);
    let mut vol = mkfs(&disks, Profile::Single, Profile::Single);
    let free_before = vol.free_bytes(Kind::Metadata);
    for round in 0..50u64 {
        for i in 0..200u64 {
            vol.insert(TEST_TREE, Key::new(i, 1, round), &[1u8; 200])
                .unwrap();
        }
        vol.commit().unwrap();
        for i in 0..200u64 {
            vol.remove(TEST_TREE, &Key::new(i, 1, round)).unwrap();
        }
        vol.commit().unwrap();
    }
    vol.commit().unwrap();
    assert_clean(&mut vol);
    // Churn must not leak: usage returns close to where it started.
    let free_after = vol.free_bytes(Kind::Metadata);
    assert!(
        free_before - free_after < 64 * 4096,
        "leaked {} bytes",
        free_before - free_after
    );
}

fn metadata_block_offsets(vol: &Volume<MemDev>) -> Vec<(u64, u64, u64)> {
    // (logical, devid, physical) of every copy of the FS tree root block.
    let root = vol.root_block(TEST_TREE).unwrap();
    vol.map_block(root)
        .unwrap()
        .iter()
        .map(|c| (root, c.devid, c.physical))
        .collect()
}

#[test]
fn a_flipped_byte_is_named_by_fsck_and_repaired_from_the_mirror() {
    let disks = new_disks(3);
    let mut vol = mkfs(&disks, Profile::Raid1, Profile::Raid1);
    for i in 0..50 {
        vol.insert(TEST_TREE, Key::new(i, 1, 0), b"data").unwrap();
    }
    vol.commit().unwrap();
    let copies = metadata_block_offsets(&vol);
    drop(vol);
    let (logical, devid, physical) = copies[0];
    disks[(devid - 1) as usize].corrupt(physical + 1000, 0x01);
    let mut vol = Volume::open(devs(&disks), false).unwrap();
    let report = fsck::check(&mut vol, false).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.block == logical && p.devid == devid && p.what.contains("checksum")),
        "{:?}",
        &report.problems[..]
    );
    // Reads still work (the other copy), and repair fixes the bad copy.
    assert_eq!(
        vol.lookup(TEST_TREE, &Key::new(3, 1, 0))
            .unwrap()
            .as_deref(),
        Some(&b"data"[..])
    );
    let report = fsck::check(&mut vol, true).unwrap();
    assert_eq!(report.unrepaired(), 0);
    assert_clean(&mut vol);
}

#[test]
fn single_copy_corruption_fails_cleanly() {
    let disks = new_disks(1);
    let mut vol = mkfs(&disks, Profile::Single, Profile::Single);
    vol.insert(TEST_TREE, Key::new(1, 1, 0), b"x").unwrap();
    vol.commit().unwrap();
    let (logical, _, physical) = metadata_block_offsets(&vol)[0];
    drop(vol);
    disks[0].corrupt(physical + 100, 0x80);
    let mut vol = Volume::open(devs(&disks), false).unwrap();
    let err = vol.lookup(TEST_TREE, &Key::new(1, 1, 0)).unwrap_err();
    assert_eq!(
        err,
        ferrofs_engine::error::EngineError::Corrupt {
            block: logical,
            reason: "metadata block checksum mismatch"
        }
    );
    assert_eq!(err.errno(), 117);
    let report = fsck::check(&mut vol, true).unwrap();
    assert!(report.unrepaired() > 0);
}

#[test]
fn degraded_mount_reads_from_the_remaining_copies() {
    let disks = new_disks(3);
    let mut vol = mkfs(&disks, Profile::Raid1, Profile::Raid1);
    for i in 0..300 {
        vol.insert(TEST_TREE, Key::new(i, 1, 0), &[i as u8; 100])
            .unwrap();
    }
    vol.commit().unwrap();
    drop(vol);
    for missing in 0..3 {
        let present: Vec<MemDisk> = disks
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, d)| d.clone())
            .collect();
        assert!(
            Volume::open(devs(&present), false).is_err(),
            "mount without degraded must refuse"
        );
        let mut vol = Volume::open(devs(&present), true).unwrap();
        for i in 0..300u64 {
            assert_eq!(
                vol.lookup(TEST_TREE, &Key::new(i, 1, 0))
                    .unwrap()
                    .as_deref(),
                Some(&[i as u8; 100][..])
            );
        }
    }
}

/// A tree large enough for several levels and a multi-leaf space tree, committed in
/// batches with fsck after each. (Once failed at 650k items: a space tree root collapsed
/// while its own reference count was being read.)
#[test]
fn large_tree_in_batches_stays_consistent() {
    let disks = MemDisk::set(1, 2_000_000_000 / 4096 * 4096);
    let mut vol = mkfs(&disks, Profile::Single, Profile::Single);
    let key = |i: u64| Key::new(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20, 1, i);
    let n = 700_000u64;
    for i in 0..n {
        vol.insert(TEST_TREE, key(i), &i.to_le_bytes()).unwrap();
        if (i + 1) % 50_000 == 0 {
            vol.commit().unwrap();
            vol.trim_cache().unwrap();
            if (i + 1) % 350_000 == 0 {
                let report = fsck::check(&mut vol, false).unwrap();
                assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
                assert!(
                    report.items > i,
                    "fewer items than inserted: {}",
                    report.items
                );
            }
        }
    }
    for i in (0..n).step_by(997) {
        assert_eq!(
            vol.lookup(TEST_TREE, &key(i)).unwrap().as_deref(),
            Some(&i.to_le_bytes()[..])
        );
    }
}

/// Trees outgrow the chunks mkfs made: new metadata chunks are added in the transaction
/// (with the same profile, recorded in the chunk and device trees), and a full volume fails
/// with ENOSPC, leaving the last committed state intact.
#[test]
fn chunks_are_added_as_trees_grow_until_the_devices_are_full() {
    for (n, profile) in [(1, Profile::Dup), (2, Profile::Raid1)] {
        let disks = MemDisk::set(n, 128 << 20);
        let mut vol = mkfs(&disks, Profile::Single, profile);
        let first_chunks = vol.chunks().len();
        let key = |i: u64| Key::new(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20, 1, i);
        let mut committed = 0u64;
        let mut i = 0u64;
        let full = loop {
            match vol.insert(TEST_TREE, key(i), &[7u8; 40]) {
                Ok(_) => {}
                Err(e) => break e,
            }
            i += 1;
            if i % 20_000 == 0 {
                match vol.commit() {
                    Ok(()) => committed = i,
                    Err(e) => break e,
                }
            }
        };
        assert_eq!(
            full,
            ferrofs_engine::error::EngineError::NoSpace,
            "{profile:?}"
        );
        assert!(
            vol.chunks().len() > first_chunks + 1,
            "{profile:?}: no chunks were added"
        );
        for c in vol.chunks().iter().filter(|c| c.kind == Kind::Metadata) {
            assert_eq!(c.profile, profile);
        }
        drop(vol);
        // The last commit survives; everything after it is gone, cleanly.
        let mut vol = Volume::open(devs(&disks), false).unwrap();
        assert_clean(&mut vol);
        assert!(
            committed > 20_000,
            "{profile:?}: too little fitted ({committed} items)"
        );
        for j in (0..committed).step_by(101) {
            assert!(
                vol.lookup(TEST_TREE, &key(j)).unwrap().is_some(),
                "{profile:?}: item {j} lost"
            );
        }
        assert!(vol.lookup(TEST_TREE, &key(committed)).unwrap().is_none());
    }
}

/// Writes `node` as block `logical` to every copy of it (checksum and address valid).
fn plant_node(vol: &Volume<MemDev>, disks: &[MemDisk], logical: u64, node: &Node) {
    let mut block = vec![0u8; 4096];
    node.encode(&vol.fsid(), logical, &mut block).unwrap();
    for copy in vol.map_block(logical).unwrap().iter() {
        disks[(copy.devid - 1) as usize].write_at(copy.physical, &block);
    }
}

/// A crafted root tree: the root at `level` (taking the place of the real root, with its
/// generation), built by `children` for each level above the leaves; the superblocks
/// updated to name the new root level.
fn craft_root_tree(
    disks: &[MemDisk],
    level: u8,
    children: impl Fn(u8, &[u64], u64) -> Vec<Child>,
) -> EngineError {
    let vol = mkfs(disks, Profile::Single, Profile::Single);
    let root = vol.root(ferrofs_engine::volume::Tree::ROOT).unwrap();
    let generation = root.generation;
    // Blocks for the crafted nodes, from the far end of the metadata chunk.
    let chunk = vol
        .chunks()
        .iter()
        .find(|c| c.kind == Kind::Metadata)
        .unwrap();
    let spare: Vec<u64> = (1..=12)
        .map(|i| chunk.logical + chunk.length - i * 4096)
        .collect();
    // Empty leaves in the spare blocks, then each level's node above them.
    for &b in &spare[..4] {
        plant_node(&vol, disks, b, &Node::new_leaf(tree_id::ROOT, generation));
    }
    let mut below: Vec<u64> = spare[..4].to_vec();
    for l in 1..=level {
        let at = if l == level {
            root.block
        } else {
            spare[3 + l as usize]
        };
        let mut entries = FVec::new();
        for c in children(l, &below, generation) {
            entries.try_push(c).unwrap();
        }
        plant_node(
            &vol,
            disks,
            at,
            &Node::new_internal(tree_id::ROOT, generation, l, entries),
        );
        below = vec![at];
    }
    // The superblocks now name a root at `level`.
    drop(vol);
    let mut buf = vec![0u8; 4096];
    for &offset in SUPERBLOCK_OFFSETS.iter().take(2) {
        let mut sb = Superblock::decode(offset, &disks[0].read_at(offset, 4096)).unwrap();
        sb.root_tree_level = level;
        sb.encode(offset, &mut buf).unwrap();
        disks[0].write_at(offset, &buf);
    }
    match Volume::open(devs(disks), false) {
        Ok(_) => panic!("a crafted root tree mounted"),
        Err(err) => err,
    }
}

fn corrupt_reason(err: EngineError) -> &'static str {
    match err {
        EngineError::Corrupt { reason, .. } => reason,
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

/// Nodes whose every entry points at one child, eight levels deep, would make a walk that
/// backtracks over empty subtrees visit 122^8 nodes: the repeated child is refused when
/// the node is read.
#[test]
fn a_crafted_tree_repeating_one_child_is_refused_at_once() {
    let disks = new_disks(1);
    let err = craft_root_tree(&disks, 8, |_, below, generation| {
        (0..MAX_CHILDREN as u64)
            .map(|i| Child {
                key: Key::new(i, 0, 0),
                block: below[0],
                generation,
            })
            .collect()
    });
    assert_eq!(corrupt_reason(err), "node points at the same child twice");
}

/// Distinct children that are empty leaves: refused when the first is read.
#[test]
fn a_crafted_tree_of_empty_leaves_is_refused() {
    let disks = new_disks(1);
    let err = craft_root_tree(&disks, 1, |_, below, generation| {
        below
            .iter()
            .enumerate()
            .map(|(i, &block)| Child {
                key: Key::new(i as u64, 0, 0),
                block,
                generation,
            })
            .collect()
    });
    assert_eq!(corrupt_reason(err), "empty non-root tree block");
}

/// Reference updates carry their owner, and a reference goes only to a block of the kind
/// its owner uses: file data to data chunks, tree blocks to metadata chunks.
#[test]
fn a_reference_goes_to_a_block_of_its_owners_kind() {
    use ferrofs_engine::volume::{RefOwner, Tree};
    let disks = new_disks(1);
    let mut vol = mkfs(&disks, Profile::Single, Profile::Single);
    let file = RefOwner::File {
        tree: Tree::FS,
        ino: 257,
        offset: 0,
    };
    let (data, count) = vol.alloc_data(4, file, None).unwrap();
    assert!(count >= 1);
    // A tree may not take a reference to a data block, nor a file to a tree block.
    let tree_block = vol.root_block(TEST_TREE).unwrap();
    assert!(matches!(
        vol.data_ref(tree_block, 1, file),
        Err(EngineError::Corrupt { .. })
    ));
    assert!(matches!(
        vol.alloc_data(1, RefOwner::Tree(Tree::FS), None),
        Err(EngineError::Corrupt { .. })
    ));
    for i in 0..count {
        vol.data_ref(data + i * 4096, -1, file.advanced(i)).unwrap();
    }
    vol.commit().unwrap();
    assert_clean(&mut vol);
}
