//! Mutation fuzzing of mounting: damage tree blocks and superblocks of a real image (with
//! checksums fixed up, so the structural checks see the damage), then mount, fsck, read
//! everything and write a little. Errors are expected; a panic is a bug. Each case is
//! reproducible from its seed; seeds that once found a bug are kept in `REGRESSIONS`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrofs_engine::btree::Direction;
use ferrofs_engine::chunk::Profile;
use ferrofs_engine::crc32c;
use ferrofs_engine::format::SUPERBLOCK_OFFSETS;
use ferrofs_engine::fsck;
use ferrofs_engine::key::Key;
use ferrofs_engine::node::Body;
use ferrofs_engine::volume::Volume;
use ferrofs_host::memdev::{self, crash_disks, devs, MemDisk, TEST_TREE};

/// Seeds of cases that found bugs (kept as regression tests).
const REGRESSIONS: &[u64] = &[];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 17
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A two-device raid1 image with a few hundred items, frozen as the base; returns the
/// disks and every (disk index, physical offset) holding a tree block or superblock copy.
fn build() -> (Vec<MemDisk>, Vec<(usize, u64)>) {
    let disks = MemDisk::set(2, 80 << 20);
    let mut vol = memdev::mkfs(&disks, Profile::Raid1, Profile::Raid1, b"fuzz").unwrap();
    for i in 0..600u64 {
        vol.insert(
            TEST_TREE,
            Key::new(256 + i / 3, (i % 3) as u8 + 1, i),
            &vec![i as u8; (i % 90) as usize],
        )
        .unwrap();
    }
    vol.commit().unwrap();
    let mut places = Vec::new();
    let ids = vol.tree_ids().unwrap();
    for &id in ids.iter() {
        let mut stack = vec![vol.root(id).unwrap()];
        while let Some(b) = stack.pop() {
            for c in vol.map_block(b).unwrap().iter() {
                places.push(((c.devid - 1) as usize, c.physical));
            }
            if let Body::Internal(children) = &vol.node(b).unwrap().body {
                stack.extend(children.iter().map(|c| c.block));
            }
        }
    }
    for d in 0..2 {
        for &off in SUPERBLOCK_OFFSETS.iter().take(2) {
            places.push((d, off));
        }
    }
    drop(vol);
    MemDisk::freeze(&disks);
    (disks, places)
}

fn one_case(base: &[MemDisk], places: &[(usize, u64)], seed: u64) {
    let disks = crash_disks(base, 0, &|_| true, false);
    let mut rng = Rng(seed);
    for _ in 0..1 + rng.below(3) {
        let (d, off) = places[rng.below(places.len() as u64) as usize];
        let mut block = disks[d].read_at(off, 4096);
        for _ in 0..1 + rng.below(6) {
            // Bias towards headers and item tables, where the parsers make decisions.
            let at = if rng.below(2) == 0 {
                4 + rng.below(300)
            } else {
                4 + rng.below(4092)
            } as usize;
            block[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                2 => block[at] ^ (1 << rng.below(8)),
                _ => rng.next() as u8,
            };
        }
        if rng.below(8) != 0 {
            let csum = crc32c::checksum(&block[4..]);
            block[..4].copy_from_slice(&csum.to_le_bytes());
        }
        disks[d].write_at(off, &block);
    }
    let degraded = rng.below(2) == 0;
    let Ok(mut vol) = Volume::open(devs(&disks), degraded) else {
        return;
    };
    let _ = fsck::check(&mut vol, rng.below(2) == 0);
    let mut key = Key::MIN;
    for _ in 0..2000 {
        match vol.seek(TEST_TREE, &key, Direction::Forward) {
            Ok(Some((k, _))) => match k.successor() {
                Some(n) => key = n,
                None => break,
            },
            _ => break,
        }
    }
    for i in 0..50u64 {
        let _ = vol.insert(TEST_TREE, Key::new(300 + i, 1, 0), b"after damage");
        let _ = vol.remove(TEST_TREE, &Key::new(256 + i, 1, i * 3));
    }
    let _ = vol.commit();
}

fn run(seeds: impl Iterator<Item = u64>) {
    let (base, places) = build();
    for seed in seeds {
        let result = catch_unwind(AssertUnwindSafe(|| one_case(&base, &places, seed)));
        assert!(
            result.is_ok(),
            "fuzz case with seed {seed} panicked: add it to REGRESSIONS and fix"
        );
    }
}

#[test]
fn regressions() {
    run(REGRESSIONS.iter().copied());
}

#[test]
fn mutated_images_never_panic() {
    // A bounded run in the test suite; FERROFS_FUZZ_CASES raises it for longer sessions.
    let n: u64 = std::env::var("FERROFS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    run(0..n);
}
