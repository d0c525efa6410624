//! Crash simulation: run a workload of tree changes and commits on in-memory disks, then,
//! for every point of the recorded I/O (every write, FUA write and flush), cut the power
//! and rebuild the disks as they could be: unflushed writes dropped, kept, kept in part or
//! kept in reverse order. Every such image must mount, pass fsck, and hold exactly the
//! state of a committed transaction: the last one whose commit had finished by the cut,
//! or the one in progress if its superblock made it.

use std::collections::BTreeMap;

use ferrofs_engine::chunk::Profile;
use ferrofs_engine::fsck;
use ferrofs_engine::key::Key;
use ferrofs_engine::volume::{MkfsOptions, OpenOptions, Volume};
use ferrofs_host::memdev::{crash_disks, devs, MemDev, MemDisk, Op, TEST_TREE};

type Model = BTreeMap<Key, Vec<u8>>;

fn contents(vol: &mut Volume<MemDev>) -> Model {
    let mut out = BTreeMap::new();
    let mut items = vol.range(TEST_TREE, Key::MIN, Key::MAX);
    while let Some((k, v)) = vol.next_in(&mut items).unwrap() {
        out.insert(k, v.to_vec());
    }
    out
}

/// Runs the workload; returns the model after each commit and the log length when each
/// commit returned.
fn workload(
    disks: &[MemDisk],
    profile: Profile,
    rounds: usize,
    ops: usize,
    seed: u64,
) -> (Vec<Model>, Vec<usize>) {
    workload_with(disks, profile, rounds, ops, seed, false)
}

/// [`workload`], remounting before each round if `remount` (a fresh mount allocates from
/// the lowest free block, so blocks freed earlier are written again).
fn workload_with(
    disks: &[MemDisk],
    profile: Profile,
    rounds: usize,
    ops: usize,
    seed: u64,
    remount: bool,
) -> (Vec<Model>, Vec<usize>) {
    let uuids: Vec<[u8; 16]> = (0..disks.len()).map(|i| [i as u8 + 9; 16]).collect();
    let opts = MkfsOptions {
        data: profile,
        metadata: profile,
        label: b"crash",
        fsid: [0x5a; 16],
        dev_uuids: &uuids,
    };
    let mut vol = Volume::mkfs(devs(disks), &opts).unwrap();
    vol.create_tree(TEST_TREE.id()).unwrap();
    vol.commit().unwrap();
    drop(vol);
    MemDisk::freeze(disks);
    let mut vol = Volume::open(devs(disks), false).unwrap();
    let mut model = Model::new();
    let mut states = vec![model.clone()];
    let mut ends = vec![0usize];
    let mut s = seed;
    for _ in 0..rounds {
        if remount {
            drop(vol);
            vol = Volume::open(devs(disks), false).unwrap();
        }
        for i in 0..ops {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = Key::new(256 + (s >> 33) % 500, 1, (i % 3) as u64);
            if s % 4 == 0 {
                vol.remove(TEST_TREE, &key).unwrap();
                model.remove(&key);
            } else {
                let value = vec![(s >> 16) as u8; 20 + (s % 200) as usize];
                vol.insert(TEST_TREE, key, &value).unwrap();
                model.insert(key, value);
            }
        }
        vol.commit().unwrap();
        states.push(model.clone());
        ends.push(disks[0].log().borrow().len());
    }
    (states, ends)
}

fn check_cut(disks: &[MemDisk], states: &[Model], ends: &[usize], cut: usize, variant: usize) {
    let keep: Box<dyn Fn(usize) -> bool> = match variant {
        0 => Box::new(|_| false),
        1 => Box::new(|_| true),
        2 => Box::new(move |i| (i * 7 + cut) % 3 != 0),
        _ => Box::new(|_| true),
    };
    let crashed = crash_disks(disks, cut, &*keep, variant == 3);
    let what = format!("cut {cut} variant {variant}");
    let mut vol = Volume::open(devs(&crashed), false)
        .unwrap_or_else(|e| panic!("{what}: mount failed: {e:?}"));
    let report = fsck::check(&mut vol, false).unwrap();
    assert!(
        report.problems.is_empty(),
        "{what}: fsck: {:?}",
        &report.problems[..]
    );
    // The last commit finished by the cut, or the next one.
    let done = ends.iter().rposition(|&e| e <= cut).unwrap();
    let got = contents(&mut vol);
    let ok = got == states[done] || states.get(done + 1).is_some_and(|next| got == *next);
    assert!(ok, "{what}: state is not commit {done} or {}", done + 1);
}

fn run(n_disks: usize, profile: Profile, rounds: usize, ops: usize, seed: u64, stride: usize) {
    let disks = MemDisk::set(n_disks, 96 << 20);
    let (states, ends) = workload(&disks, profile, rounds, ops, seed);
    let total = disks[0].log().borrow().len();
    assert!(total > 100, "workload too small to be meaningful");
    let mut cut = 0;
    while cut <= total {
        for variant in 0..4 {
            check_cut(&disks, &states, &ends, cut, variant);
        }
        cut += stride;
    }
    // And the end itself: everything committed is there.
    check_cut(&disks, &states, &ends, total, 0);
}

#[test]
fn every_cut_single_device() {
    run(1, Profile::Single, 12, 150, 1, 1);
}

#[test]
fn every_cut_dup() {
    run(1, Profile::Dup, 8, 150, 2, 1);
}

#[test]
fn every_cut_raid1_three_devices() {
    run(3, Profile::Raid1, 5, 60, 3, 1);
}

#[test]
fn sampled_cuts_larger_workload_raid10() {
    run(4, Profile::Raid10, 8, 300, 4, 7);
}

/// Everything reachable from the root, as path -> (mode, contents or target, nlink).
type Snapshot = BTreeMap<String, (u32, Vec<u8>, u32)>;

fn snapshot(fs: &mut ferrofs_engine::fs::Fs<MemDev>) -> Snapshot {
    use ferrofs_engine::inode::{ROOT_INO, S_IFLNK, S_IFMT, S_IFREG};
    let mut out = Snapshot::new();
    let mut stack = vec![(ROOT_INO, String::new())];
    while let Some((dir, path)) = stack.pop() {
        for e in fs.readdir(dir, 0, 100_000).unwrap().iter() {
            let p = format!("{path}/{}", String::from_utf8_lossy(&e.name));
            let inode = fs.getattr(e.ino).unwrap();
            let body = match inode.mode & S_IFMT {
                S_IFREG => fs.read(e.ino, 0, inode.size as usize).unwrap().to_vec(),
                S_IFLNK => fs.readlink(e.ino).unwrap().to_vec(),
                _ => {
                    stack.push((e.ino, p.clone()));
                    Vec::new()
                }
            };
            out.insert(p, (inode.mode, body, inode.nlink));
        }
    }
    out
}

/// How a round of the file workload is made durable.
#[derive(Clone, Copy, PartialEq)]
enum Durable {
    /// A commit (`sync`).
    Commit,
    /// `fsync`, through the fsync log; every fourth round a commit.
    FsyncLog,
}

/// The same power cuts, under a file workload: creates, writes that overwrite and extend,
/// truncates, renames, links, unlinks and directories, with syncs in between.
fn file_workload_cuts(n_disks: usize, profile: Profile, rounds: usize, seed: u64, stride: usize) {
    file_workload_cuts_with(n_disks, profile, rounds, seed, stride, Durable::Commit)
}

/// [`file_workload_cuts`], each round made durable as `durable` says.
fn file_workload_cuts_with(
    n_disks: usize,
    profile: Profile,
    rounds: usize,
    seed: u64,
    stride: usize,
    durable: Durable,
) {
    use ferrofs_engine::fs::{Fs, Owner, SetAttr};
    use ferrofs_engine::inode::{Timespec, ROOT_INO, S_IFREG};
    use ferrofs_engine::volume::OpenOptions;
    let disks = MemDisk::set(n_disks, 96 << 20);
    drop(ferrofs_host::memdev::mkfs_fs(&disks, profile).unwrap());
    MemDisk::freeze(&disks);
    let mut fs = Fs::open(devs(&disks), OpenOptions::default()).unwrap();
    let mut states = vec![snapshot(&mut fs)];
    let mut ends = vec![0usize];
    let mut s = seed;
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    };
    let t = Timespec { sec: 1, nsec: 0 };
    let d = fs
        .mkdir(ROOT_INO, b"d", 0o755, Owner::default(), t)
        .unwrap()
        .ino;
    let mut logged = 0;
    for round in 0..rounds {
        for _ in 0..12 {
            let dir = if rnd() % 2 == 0 { ROOT_INO } else { d };
            let name = format!("f{}", rnd() % 8).into_bytes();
            let ino = match fs.lookup(dir, &name).unwrap() {
                Some(i) => i,
                None => {
                    fs.create(dir, &name, S_IFREG | 0o644, 0, Owner::default(), t)
                        .unwrap()
                        .ino
                }
            };
            match rnd() % 6 {
                0..=2 => {
                    let off = rnd() % 20_000;
                    let data = vec![rnd() as u8; 1 + (rnd() % 9000) as usize];
                    fs.write(ino, off, &data, t).unwrap();
                }
                3 => {
                    fs.setattr(
                        ino,
                        &SetAttr {
                            size: Some(rnd() % 12_000),
                            trim: false,
                            ..SetAttr::default()
                        },
                        t,
                    )
                    .unwrap();
                }
                4 => {
                    let other = if dir == d { ROOT_INO } else { d };
                    let to = format!("g{}", rnd() % 4).into_bytes();
                    let _ = fs.rename(dir, &name, other, &to, 0, t);
                }
                _ => {
                    if rnd() % 2 == 0 {
                        fs.unlink(dir, &name, t).unwrap();
                    } else {
                        let _ = fs.link(ino, d, format!("l{}", rnd() % 4).as_bytes(), t);
                    }
                }
            }
        }
        if durable == Durable::FsyncLog && round % 4 != 3 {
            let generation = fs.vol.superblock().generation;
            fs.fsync().unwrap();
            if fs.vol.superblock().generation == generation {
                logged += 1;
            }
        } else {
            fs.sync().unwrap();
        }
        states.push(snapshot(&mut fs));
        ends.push(disks[0].log().borrow().len());
    }
    if durable == Durable::FsyncLog {
        // Most fsyncs went through the log, not a commit (a new chunk blocks it).
        assert!(
            logged * 2 >= rounds,
            "{logged} of {rounds} fsyncs used the log"
        );
    }
    let total = disks[0].log().borrow().len();
    assert!(
        total > 100,
        "workload too small to be meaningful: {total} operations"
    );
    let mut cut = 0;
    while cut <= total {
        for variant in 0..3 {
            let keep: Box<dyn Fn(usize) -> bool> = match variant {
                0 => Box::new(|_| false),
                1 => Box::new(|_| true),
                _ => Box::new(move |i| (i + cut) % 2 == 0),
            };
            let crashed = crash_disks(&disks, cut, &*keep, variant == 2);
            let what = format!("cut {cut}/{total} variant {variant}");
            let mut fs = Fs::open(devs(&crashed), OpenOptions::default())
                .unwrap_or_else(|e| panic!("{what}: mount: {e:?}"));
            let report = fsck::check(&mut fs.vol, false).unwrap();
            assert!(
                report.problems.is_empty(),
                "{what}: fsck {:?}",
                &report.problems[..]
            );
            let done = ends.iter().rposition(|&e| e <= cut).unwrap();
            let got = snapshot(&mut fs);
            let ok = got == states[done] || states.get(done + 1).is_some_and(|n| got == *n);
            assert!(ok, "{what}: state is not sync {done} or {}", done + 1);
        }
        cut += stride;
    }
}

#[test]
fn file_workload_every_cut_single() {
    file_workload_cuts(1, Profile::Single, 8, 11, 1);
}

#[test]
fn file_workload_sampled_cuts_raid1() {
    file_workload_cuts(2, Profile::Raid1, 10, 12, 3);
}

/// With `fsync` through the log: a cut anywhere in a log write, before or after its flush,
/// leaves the state of the last fsync that returned, or of the one being made.
#[test]
fn fsync_log_every_cut_single() {
    file_workload_cuts_with(1, Profile::Single, 10, 21, 1, Durable::FsyncLog);
}

#[test]
fn fsync_log_every_cut_dup() {
    file_workload_cuts_with(1, Profile::Dup, 8, 22, 1, Durable::FsyncLog);
}

#[test]
fn fsync_log_sampled_cuts_raid1() {
    file_workload_cuts_with(2, Profile::Raid1, 12, 23, 2, Durable::FsyncLog);
}

/// Logical address a tree block records in its header (its `bytenr`).
fn recorded_address(block: &[u8]) -> u64 {
    u64::from_le_bytes(block[24..32].try_into().unwrap())
}

/// What disk `disk` holds at `offset` after the first `upto` operations of the log.
fn contents_before(disks: &[MemDisk], upto: usize, disk: usize, offset: u64) -> Vec<u8> {
    crash_disks(disks, upto, &|_| true, false)[disk].read_at(offset, 4096)
}

/// Plants, on the second device of a raid1 after the whole workload, a lost write (a tree
/// block write of the last commit that never reached the disk, so the block there is the
/// older one, checksum and address valid) and a misdirected one (a tree block written over
/// another tree block's place, whose own place keeps its older contents). Both must be
/// named by fsck, the reads must come from the good mirror, and a repairing fsck must
/// rewrite them.
#[test]
fn lost_and_misdirected_tree_block_writes_are_caught_and_repaired_from_the_mirror() {
    let disks = MemDisk::set(2, 96 << 20);
    let (states, ends) = workload_with(&disks, Profile::Raid1, 8, 200, 9, true);
    let total = disks[0].log().borrow().len();
    let last_commit = ends[ends.len() - 2]..total;
    // Tree block writes of the last commit on the second disk that replaced an older tree
    // block at the same place, each the last write to its place.
    let log = disks[0].log().borrow().clone();
    let sb_offsets = ferrofs_engine::format::SUPERBLOCK_OFFSETS;
    let mut candidates = Vec::new();
    for j in last_commit.clone() {
        let (id, Op::Write { offset, data }) = &log[j] else {
            continue;
        };
        if *id != 1 || sb_offsets.contains(offset) || data.len() != 4096 {
            continue;
        }
        let rewritten_later = log[j + 1..].iter().any(|(i, op)| {
            *i == 1 && matches!(op, Op::Write { offset: o, .. } | Op::WriteFua { offset: o, .. } if o == offset)
        });
        let before = contents_before(&disks, j, 1, *offset);
        if !rewritten_later
            && recorded_address(&before) == recorded_address(data)
            && before != *data
        {
            candidates.push((j, *offset, data.clone(), before));
        }
    }
    assert!(
        candidates.len() >= 3,
        "workload wrote too few tree blocks over old ones: {} of {} ops in the last commit",
        candidates.len(),
        last_commit.len()
    );
    let image = crash_disks(&disks, total, &|_| true, false);
    // The lost write: the older block stays.
    let (_, lost_at, lost_data, lost_before) = &candidates[0];
    image[1].write_at(*lost_at, lost_before);
    // The misdirected write: block B lands on block C's place; B's place keeps its older
    // contents.
    let (_, from_at, from_data, from_before) = &candidates[1];
    let (_, onto_at, onto_data, _) = &candidates[2];
    image[1].write_at(*from_at, from_before);
    image[1].write_at(*onto_at, from_data);
    let stale = [recorded_address(lost_data), recorded_address(from_data)];
    let overwritten = recorded_address(onto_data);

    // fsck -n names every planted block on the second device, and writes nothing.
    let opts = OpenOptions {
        degraded: false,
        read_only: true,
    };
    let mut vol = Volume::open_with(devs(&image), opts).unwrap();
    let report = fsck::check(&mut vol, false).unwrap();
    for block in stale.iter().chain([&overwritten]) {
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.block == *block && p.devid == 2),
            "block {block} not reported: {:?}",
            &report.problems[..]
        );
    }
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.what.contains("generation")),
        "the lost write is not reported as one: {:?}",
        &report.problems[..]
    );
    // Every read takes the good copy, whichever device it tries first.
    assert_eq!(contents(&mut vol), *states.last().unwrap());
    drop(vol);

    // A repairing fsck rewrites them from the mirror; after it, everything is clean.
    let mut vol = Volume::open(devs(&image), false).unwrap();
    let report = fsck::check(&mut vol, true).unwrap();
    assert!(
        report.problems.iter().all(|p| p.repaired),
        "not repaired: {:?}",
        &report.problems[..]
    );
    drop(vol);
    assert_eq!(image[1].read_at(*lost_at, 4096), *lost_data);
    assert_eq!(image[1].read_at(*from_at, 4096), *from_data);
    assert_eq!(image[1].read_at(*onto_at, 4096), *onto_data);
    let mut vol = Volume::open(devs(&image), false).unwrap();
    let report = fsck::check(&mut vol, false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
    assert_eq!(contents(&mut vol), *states.last().unwrap());
}
