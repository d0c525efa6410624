//! Mutation fuzzing of mounting: damage tree blocks and superblocks of a real image (with
//! checksums fixed up, so the structural checks see the damage), then mount, fsck, read
//! everything and write a little. Errors are expected; a panic is a bug. Each case is
//! reproducible from its seed; seeds that once found a bug are kept in `REGRESSIONS`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrofs_engine::chunk::Profile;
use ferrofs_engine::crc32c;
use ferrofs_engine::format::SUPERBLOCK_OFFSETS;
use ferrofs_engine::fsck;
use ferrofs_engine::key::Key;

use ferrofs_engine::volume::{child_refs, Volume};
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
/// Every (disk index, physical offset) holding a copy of a tree block or of the first two
/// superblocks of each device.
fn tree_places(vol: &mut Volume<ferrofs_host::memdev::MemDev>) -> Vec<(usize, u64)> {
    let mut places = Vec::new();
    for &tree in vol.trees().unwrap().iter() {
        let id = tree.id();
        let mut stack = vec![vol.root(tree).unwrap()];
        while let Some(at) = stack.pop() {
            for c in vol.map_block(at.block).unwrap().iter() {
                places.push(((c.devid - 1) as usize, c.physical));
            }
            stack.extend(child_refs(vol.read_node(&at, id).unwrap()).unwrap().iter());
        }
    }
    for d in 0..vol.devices().len() {
        for &off in SUPERBLOCK_OFFSETS.iter().take(2) {
            places.push((d, off));
        }
    }
    places
}

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
    let places = tree_places(&mut vol);
    drop(vol);
    MemDisk::freeze(&disks);
    (disks, places)
}

fn one_case(base: &[MemDisk], places: &[(usize, u64)], seed: u64) {
    let disks = crash_disks(base, 0, &|_| true, false);
    let mut rng = Rng(seed);
    mutate(&disks, places, &mut rng);
    let degraded = rng.below(2) == 0;
    let Ok(mut vol) = Volume::open(devs(&disks), degraded) else {
        return;
    };
    let _ = fsck::check(&mut vol, rng.below(2) == 0);
    let mut items = vol.range(TEST_TREE, Key::MIN, Key::MAX);
    for _ in 0..2000 {
        match vol.next_in(&mut items) {
            Ok(Some(_)) => {}
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

/// A filesystem with directories, files with data, hard links, symlinks and xattrs; returns
/// the disks and every place holding a tree block, data block or superblock copy.
fn build_fs() -> (Vec<MemDisk>, Vec<(usize, u64)>) {
    use ferrofs_engine::fs::Owner;
    use ferrofs_engine::inode::{Timespec, ROOT_INO, S_IFREG};
    let disks = MemDisk::set(2, 80 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Raid1).unwrap();
    let t = Timespec::default();
    let o = Owner::default();
    for d in 0..6u64 {
        let dir = fs
            .mkdir(ROOT_INO, format!("dir{d}").as_bytes(), 0o755, o, t)
            .unwrap()
            .ino;
        for f in 0..12u64 {
            let name = format!("file{f}");
            let ino = fs
                .create(dir, name.as_bytes(), S_IFREG | 0o644, 0, o, t)
                .unwrap()
                .ino;
            fs.write(
                ino,
                f * 1000,
                &vec![(d * 16 + f) as u8; (f * 700) as usize + 1],
                t,
            )
            .unwrap();
            if f % 4 == 0 {
                fs.link(ino, ROOT_INO, format!("link{d}-{f}").as_bytes(), t)
                    .unwrap();
                fs.set_xattr(ino, b"user.tag", name.as_bytes(), t).unwrap();
                // Spilled to pieces, so damage reaches those too.
                fs.set_xattr(ino, b"user.long", &vec![f as u8; 2500], t)
                    .unwrap();
            }
            if d == 0 && f == 0 {
                // Past what one back-reference item holds: extended references.
                for i in 0..100 {
                    fs.link(ino, dir, format!("many{i}").as_bytes(), t).unwrap();
                }
            }
        }
        fs.symlink(dir, b"sym", b"../dir0/file1", o, t).unwrap();
    }
    fs.sync().unwrap();
    let vol = &mut fs.vol;
    let mut places = tree_places(vol);
    let data_chunk = vol
        .chunks()
        .iter()
        .find(|c| c.kind == ferrofs_engine::chunk::Kind::Data)
        .unwrap();
    for s in data_chunk.stripes.iter().take(1) {
        for i in 0..32u64 {
            places.push(((s.devid - 1) as usize, s.physical + i * 4096));
        }
    }
    drop(fs);
    MemDisk::freeze(&disks);
    (disks, places)
}

fn mutate(disks: &[MemDisk], places: &[(usize, u64)], rng: &mut Rng) {
    for _ in 0..1 + rng.below(3) {
        let (d, off) = places[rng.below(places.len() as u64) as usize];
        let mut block = disks[d].read_at(off, 4096);
        for _ in 0..1 + rng.below(6) {
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
}

fn one_fs_case(base: &[MemDisk], places: &[(usize, u64)], seed: u64) {
    use ferrofs_engine::fs::{Fs, Owner};
    use ferrofs_engine::inode::{Timespec, ROOT_INO, S_IFREG};
    use ferrofs_engine::volume::OpenOptions;
    let disks = crash_disks(base, 0, &|_| true, false);
    let mut rng = Rng(seed);
    mutate(&disks, places, &mut rng);
    let opts = OpenOptions {
        degraded: rng.below(2) == 0,
        read_only: false,
    };
    let Ok(mut fs) = Fs::open(devs(&disks), opts) else {
        return;
    };
    let _ = fsck::check(&mut fs.vol, rng.below(2) == 0);
    // Walk everything that can be reached, reading as we go.
    let mut stack = vec![ROOT_INO];
    let mut visited = 0;
    while let Some(dir) = stack.pop() {
        visited += 1;
        if visited > 200 {
            break;
        }
        let Ok(entries) = fs.readdir(dir, 0, 1000) else {
            continue;
        };
        for e in entries.iter() {
            let _ = fs.getattr(e.ino);
            let _ = fs.read(e.ino, 0, 20_000);
            let _ = fs.readlink(e.ino);
            let _ = fs.list_xattr(e.ino);
            let _ = fs.get_xattr(e.ino, b"user.tag");
            let _ = fs.get_xattr(e.ino, b"user.long");
            let _ = fs.lookup(dir, &e.name);
            if e.file_type == 4 {
                stack.push(e.ino);
            }
        }
    }
    let t = Timespec { sec: 5, nsec: 0 };
    let o = Owner::default();
    for i in 0..10u64 {
        let name = format!("new{i}");
        if let Ok(n) = fs.create(ROOT_INO, name.as_bytes(), S_IFREG | 0o600, 0, o, t) {
            let _ = fs.write(n.ino, i * 3000, b"written after damage", t);
        }
        let _ = fs.unlink(ROOT_INO, format!("link{}-0", i % 6).as_bytes(), t);
        let _ = fs.rename(
            ROOT_INO,
            b"dir1",
            ROOT_INO,
            format!("moved{i}").as_bytes(),
            0,
            t,
        );
    }
    let _ = fs.sync();
}

#[test]
fn mutated_filesystems_never_panic() {
    let n: u64 = std::env::var("FERROFS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (base, places) = build_fs();
    for seed in 0..n {
        let result = catch_unwind(AssertUnwindSafe(|| one_fs_case(&base, &places, seed)));
        assert!(result.is_ok(), "filesystem fuzz case with seed {seed} panicked: fix it and keep the seed as a regression");
    }
}
