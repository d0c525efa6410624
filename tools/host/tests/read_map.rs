//! File data moved outside the engine, as the kernel moves it with bios over page-cache
//! folios. `Fs::map_read`, the map readahead reads a file by: for files with holes,
//! preallocated ranges, a short last block and data striped over several devices, reading
//! every piece from the disks where the map says, checked against the checksums it gives,
//! must give what `Fs::read` gives. `Fs::write_placed`, the write writeback makes: the
//! bytes written by the caller where it says, on every copy, read back through the engine
//! before and after a commit and a remount, with fsck clean.

use ferrofs_engine::chunk::Profile;
use ferrofs_engine::crc32c;
use ferrofs_engine::dev::BlockDev;
use ferrofs_engine::fs::{Fs, Owner, ReadSource, FALLOC_FL_KEEP_SIZE};
use ferrofs_engine::fsck;
use ferrofs_engine::inode::{Timespec, ROOT_INO, S_IFREG};
use ferrofs_engine::volume::OpenOptions;
use ferrofs_host::memdev::{self, devs, MemDev, MemDisk};

const BLOCK: u64 = 4096;

const T0: Timespec = Timespec {
    sec: 1_700_000_000,
    nsec: 0,
};

/// A new empty regular file `name` in the root directory; its inode number.
fn create_file(fs: &mut Fs<MemDev>, name: &[u8]) -> u64 {
    fs.create(ROOT_INO, name, S_IFREG | 0o644, 0, Owner::default(), T0)
        .unwrap()
        .ino
}

/// Bytes of `ino` from `offset` for `len`, read as the map says, checking every device
/// block against its checksum; `None` where the map sends the reader to the engine.
fn read_by_map(fs: &mut Fs<MemDev>, disks: &[MemDisk], ino: u64, offset: u64, len: u64) -> Vec<u8> {
    let map = fs.map_read(ino, offset, len).unwrap();
    let mut out = Vec::new();
    let mut pos = offset;
    for piece in map.iter() {
        assert_eq!(piece.offset, pos, "pieces leave a gap or overlap");
        assert_eq!(piece.len % BLOCK, 0, "a piece of a partial block");
        assert!(piece.len > 0, "an empty piece");
        match &piece.source {
            ReadSource::Zeros => out.resize(out.len() + piece.len as usize, 0),
            ReadSource::Device(d) => {
                assert_eq!(d.csums.len() as u64 * BLOCK, piece.len);
                let disk = &disks[(d.devid - 1) as usize];
                let bytes = disk.read_at(d.physical, piece.len as usize);
                for (block, &want) in bytes.chunks(BLOCK as usize).zip(d.csums.iter()) {
                    assert_eq!(crc32c::checksum(block), want, "a block fails its checksum");
                }
                out.extend_from_slice(&bytes);
            }
            ReadSource::Engine => {
                let data = fs.read(ino, piece.offset, piece.len as usize).unwrap();
                out.extend_from_slice(&data);
                out.resize((piece.offset + piece.len - offset) as usize, 0);
            }
        }
        pos += piece.len;
    }
    assert_eq!(
        pos,
        (offset + len).div_ceil(BLOCK) * BLOCK,
        "the map stops short"
    );
    out
}

fn check_file(fs: &mut Fs<MemDev>, disks: &[MemDisk], ino: u64, size: u64) {
    let mut ranges = vec![(0, size + 3 * BLOCK)];
    let mut seed = ino.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..40 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let start = (seed >> 20) % (size + 2 * BLOCK) / BLOCK * BLOCK;
        let len = 1 + (seed >> 8) % (600 << 10);
        ranges.push((start, len));
    }
    for (start, len) in ranges {
        let got = read_by_map(fs, disks, ino, start, len);
        let mut want = fs.read(ino, start, got.len()).unwrap().to_vec();
        want.resize(got.len(), 0);
        assert!(got == want, "ino {ino}: map read of {start}+{len} differs");
    }
}

#[test]
fn map_read_matches_read_on_every_profile() {
    for (n, profile) in [
        (1, Profile::Single),
        (1, Profile::Dup),
        (2, Profile::Raid0),
        (2, Profile::Raid1),
        (4, Profile::Raid10),
    ] {
        let disks = MemDisk::set(n, 256 << 20);
        let mut fs = memdev::mkfs_fs(&disks, profile).unwrap();
        let mut files = Vec::new();
        for (i, size) in [(0u64, 5 * BLOCK + 123), (1, 3 << 20), (2, (1 << 20) + 1)] {
            let name = format!("f{i}");
            let ino = fs
                .create(
                    ROOT_INO,
                    name.as_bytes(),
                    S_IFREG | 0o644,
                    0,
                    Owner::default(),
                    T0,
                )
                .unwrap()
                .ino;
            let data: Vec<u8> = (0..size).map(|b| (b % 253) as u8 ^ i as u8).collect();
            fs.write(ino, 0, &data, T0).unwrap();
            // A hole, a rewritten middle (a second extent) and a preallocated range.
            fs.fallocate(
                ino,
                ferrofs_engine::fs::FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                BLOCK,
                2 * BLOCK,
                T0,
            )
            .unwrap();
            fs.write(ino, 3 * BLOCK + 7, &data[..5000.min(data.len())], T0)
                .unwrap();
            fs.fallocate(ino, FALLOC_FL_KEEP_SIZE, size + BLOCK, 4 * BLOCK, T0)
                .unwrap();
            files.push((ino, fs.getattr(ino).unwrap().size));
        }
        for &(ino, size) in &files {
            check_file(&mut fs, &disks, ino, size);
        }
        fs.sync().unwrap();
        for &(ino, size) in &files {
            check_file(&mut fs, &disks, ino, size);
        }
    }
}

#[test]
fn map_read_refuses_what_it_cannot_map() {
    let disks = MemDisk::set(1, 64 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let ino = fs
        .create(ROOT_INO, b"f", S_IFREG | 0o644, 0, Owner::default(), T0)
        .unwrap()
        .ino;
    assert!(
        fs.map_read(ino, 100, BLOCK).is_err(),
        "an unaligned start maps"
    );
    assert!(fs.map_read(ROOT_INO, 0, BLOCK).is_err(), "a directory maps");
    // An empty file is zeros, however far the range goes.
    let map = fs.map_read(ino, 0, 3 * BLOCK).unwrap();
    assert_eq!(map.len(), 1);
    assert!(matches!(map[0].source, ReadSource::Zeros));
    assert_eq!(map[0].len, 3 * BLOCK);
}

#[test]
fn placed_writes_read_back_on_every_profile() {
    for (n, profile, copies) in [
        (1, Profile::Single, 1),
        (1, Profile::Dup, 2),
        (2, Profile::Raid0, 1),
        (3, Profile::Raid1, 2),
        (4, Profile::Raid10, 2),
    ] {
        let disks = MemDisk::set(n, 256 << 20);
        let mut fs = memdev::mkfs_fs(&disks, profile).unwrap();
        let ino = fs
            .create(ROOT_INO, b"f", S_IFREG | 0o644, 0, Owner::default(), T0)
            .unwrap()
            .ino;
        let mut model = Vec::new();
        // Appends, an overwrite in the middle, a run longer than one extent can take
        // (several allocations), and a last block the data ends inside.
        for (i, (offset, blocks, tail)) in [
            (0u64, 3usize, 0u64),
            (3 * BLOCK, 300, 0),
            (BLOCK, 2, 0),
            (303 * BLOCK, 5, 1000),
        ]
        .into_iter()
        .enumerate()
        {
            let mut bytes: Vec<u8> = (0..blocks as u64 * BLOCK)
                .map(|b| (b % 241) as u8 ^ (i as u8 * 31))
                .collect();
            let data_end = if tail > 0 {
                let end = offset + blocks as u64 * BLOCK - BLOCK + tail;
                let keep = bytes.len() - BLOCK as usize + tail as usize;
                bytes[keep..].fill(0);
                end
            } else {
                offset + bytes.len() as u64
            };
            let sums: Vec<u32> = bytes.chunks(BLOCK as usize).map(crc32c::checksum).collect();
            let mut covered = 0;
            let node = fs
                .write_placed(ino, offset, &sums, data_end, T0, |dev, t| {
                    covered += t.len;
                    dev.write(t.physical, &bytes[t.from..t.from + t.len])
                })
                .unwrap();
            assert_eq!(node.size, data_end.max(model.len() as u64));
            assert_eq!(
                covered,
                bytes.len() * copies,
                "{profile:?}: copies not all placed"
            );
            let end = (offset as usize + bytes.len()).min(data_end as usize);
            if model.len() < end {
                model.resize(end, 0);
            }
            model[offset as usize..end].copy_from_slice(&bytes[..end - offset as usize]);
            assert_eq!(fs.read(ino, 0, model.len() + 10).unwrap()[..], model[..]);
        }
        fs.sync().unwrap();
        drop(fs);
        let mut fs = Fs::open(devs(&disks), OpenOptions::default()).unwrap();
        assert_eq!(fs.read(ino, 0, model.len() + 10).unwrap()[..], model[..]);
        let report = fsck::check(&mut fs.vol, false).unwrap();
        assert!(
            report.problems.is_empty(),
            "{profile:?}: {:?}",
            &report.problems[..]
        );
    }
}

/// Writeback may place a file's ranges out of order (an `fsync` beside the flusher, each
/// taking the next dirty run): each range still goes where the file's extent before it
/// leads on disk, so the file lies in file order, one run after another. (Another file
/// allocating meanwhile may take such a place; that range then goes elsewhere.) Data and
/// fsck stay good.
#[test]
fn placed_writes_out_of_order_land_in_file_order() {
    const RUN: u64 = 64;
    let disks = MemDisk::set(1, 256 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let (ino, other) = (create_file(&mut fs, b"f"), create_file(&mut fs, b"g"));
    let put = |fs: &mut Fs<MemDev>, ino: u64, run: u64| {
        let offset = run * RUN * BLOCK;
        let bytes: Vec<u8> = (0..RUN * BLOCK)
            .map(|b| (b % 251) as u8 ^ (run as u8).wrapping_mul(37) ^ ino as u8)
            .collect();
        let sums: Vec<u32> = bytes.chunks(BLOCK as usize).map(crc32c::checksum).collect();
        let end = offset + bytes.len() as u64;
        fs.write_placed(ino, offset, &sums, end, T0, |dev, t| {
            dev.write(t.physical, &bytes[t.from..t.from + t.len])
        })
        .unwrap();
        bytes
    };
    // Another file first, so that the allocator does not start at the chunk's start.
    let other_bytes = put(&mut fs, other, 0);
    let order = [0u64, 2, 1, 4, 3, 6, 5, 7];
    let mut model = vec![0u8; (order.len() as u64 * RUN * BLOCK) as usize];
    for &run in order.iter() {
        let bytes = put(&mut fs, ino, run);
        let at = (run * RUN * BLOCK) as usize;
        model[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    let extents = fs.extents(ino, 0, model.len() as u64, 100).unwrap();
    let mut next = None;
    let mut covered = 0;
    for (offset, e) in extents.iter() {
        assert_eq!(*offset, covered, "extents leave a gap");
        if let Some(next) = next {
            assert_eq!(
                e.disk, next,
                "the extent at {offset} does not follow the one before it on disk"
            );
        }
        next = Some(e.disk + e.len);
        covered += e.len;
    }
    assert_eq!(covered, model.len() as u64);
    assert_eq!(fs.read(ino, 0, model.len()).unwrap()[..], model[..]);
    assert_eq!(
        fs.read(other, 0, other_bytes.len()).unwrap()[..],
        other_bytes[..]
    );
    fs.sync().unwrap();
    let report = fsck::check(&mut fs.vol, false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
}

#[test]
fn placed_writes_refuse_partial_blocks() {
    let disks = MemDisk::set(1, 64 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let ino = fs
        .create(ROOT_INO, b"f", S_IFREG | 0o644, 0, Owner::default(), T0)
        .unwrap()
        .ino;
    let sums = [0u32; 2];
    for (offset, end) in [(100, 2 * BLOCK), (0, 3 * BLOCK), (0, BLOCK), (0, 0)] {
        let placed = fs.write_placed(ino, offset, &sums, end, T0, |_, _| Ok(()));
        assert!(placed.is_err(), "{offset} {end} accepted");
    }
    assert!(fs.write_placed(ino, 0, &[], 0, T0, |_, _| Ok(())).is_err());
    let dir = fs.write_placed(ROOT_INO, 0, &sums, 2 * BLOCK, T0, |_, _| Ok(()));
    assert!(dir.is_err());
    assert_eq!(fs.getattr(ino).unwrap().size, 0);
    assert!(fs.aborted().is_none());
    // A write that fails aborts the transaction: nothing of it stays.
    let failed = fs.write_placed(ino, 0, &sums, 2 * BLOCK, T0, |_, _| {
        Err(ferrofs_engine::error::EngineError::Io)
    });
    assert!(failed.is_err());
    assert!(
        fs.aborted().is_some(),
        "a failed placed write left the transaction running"
    );
}

/// `Fs::mapped_blocks`, which `stat` subtracts from a file's dirty pages to count what
/// writeback will add, and `Fs::unmapped_runs`, where FIEMAP reports dirty pages as
/// delayed allocation: data, preallocated space and an inline extent count as mapped,
/// holes do not, against a per-block model of the file.
#[test]
fn mapped_and_unmapped_blocks_follow_data_and_preallocated_space() {
    let disks = MemDisk::set(1, 64 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    // Blocks 0-3 data, 4-5 a hole, 6-9 data rewritten over 7-8, 12-15 preallocated past
    // the end; 10-11 and 16 on are holes.
    let ino = create_file(&mut fs, b"sparse");
    fs.write(ino, 0, &[1u8; 4 * BLOCK as usize], T0).unwrap();
    fs.write(ino, 6 * BLOCK, &[2u8; 4 * BLOCK as usize], T0)
        .unwrap();
    fs.write(ino, 7 * BLOCK + 5, &[3u8; 2 * BLOCK as usize - 5], T0)
        .unwrap();
    fs.fallocate(ino, FALLOC_FL_KEEP_SIZE, 12 * BLOCK, 4 * BLOCK, T0)
        .unwrap();
    let model: Vec<bool> = (0..20)
        .map(|b| b < 4 || (6..10).contains(&b) || (12..16).contains(&b))
        .collect();
    for pass in 0..2 {
        for first in 0..20u64 {
            for count in 0..(21 - first) {
                let want = model[first as usize..(first + count) as usize]
                    .iter()
                    .filter(|&&m| m)
                    .count() as u64;
                let got = fs.mapped_blocks(ino, first, count).unwrap();
                assert_eq!(got, want, "pass {pass}: blocks {first}+{count}");
                let mut holes = Vec::new();
                for b in first..first + count {
                    match holes.last_mut() {
                        Some((s, n)) if !model[b as usize] && *s + *n == b => *n += 1,
                        _ if !model[b as usize] => holes.push((b, 1)),
                        _ => {}
                    }
                }
                let got = fs.unmapped_runs(ino, first, count, usize::MAX).unwrap();
                assert_eq!(
                    got.as_slice(),
                    holes,
                    "pass {pass}: holes in {first}+{count}"
                );
                // A bound keeps the first runs only.
                let got = fs.unmapped_runs(ino, first, count, 1).unwrap();
                assert_eq!(got.as_slice(), &holes[..holes.len().min(1)]);
                assert!(fs.unmapped_runs(ino, first, count, 0).unwrap().is_empty());
            }
        }
        fs.sync().unwrap();
    }
    // A small file kept inline: its one block counts.
    let small = create_file(&mut fs, b"small");
    fs.write(small, 0, b"inline data", T0).unwrap();
    assert_eq!(fs.mapped_blocks(small, 0, 3).unwrap(), 1);
    assert_eq!(fs.mapped_blocks(small, 1, 2).unwrap(), 0);
    assert_eq!(
        fs.unmapped_runs(small, 0, 3, 8).unwrap().as_slice(),
        [(1, 2)]
    );
    // Ranges past the largest offset fail rather than wrap.
    assert!(fs.mapped_blocks(ino, u64::MAX / BLOCK, 2).is_err());
    assert!(fs.unmapped_runs(ino, u64::MAX / BLOCK, 2, 8).is_err());
}
