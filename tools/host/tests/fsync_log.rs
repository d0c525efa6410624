// SPDX-License-Identifier: GPL-2.0

//! The fsync log: `fsync` writes a record and flushes once instead of committing, a power
//! cut after it loses nothing it made durable, replay at mount (writable, read-only, and
//! fsck's repair) brings the records back, and what the log cannot take falls back to a
//! commit. Every cut point of log writes is enumerated in `crash.rs`.

use ferrofs_engine::chunk::Profile;
use ferrofs_engine::error::EngineError;
use ferrofs_engine::fs::{Fs, Owner};
use ferrofs_engine::fsck;
use ferrofs_engine::inode::{Timespec, ROOT_INO, S_IFREG};
use ferrofs_engine::volume::{LogWrite, OpenOptions};
use ferrofs_host::memdev::{self, crash_disks, devs, MemDev, MemDisk, Op};

fn t(step: i64) -> Timespec {
    Timespec {
        sec: 1_700_000_000 + step,
        nsec: 0,
    }
}

fn new_file(fs: &mut Fs<MemDev>, name: &[u8]) -> u64 {
    fs.create(ROOT_INO, name, S_IFREG | 0o644, 0, Owner::default(), t(1))
        .unwrap()
        .ino
}

/// The disks as a power cut right now would leave them: only what was flushed.
fn cut_now(disks: &[MemDisk]) -> Vec<MemDisk> {
    let len = disks[0].log().borrow().len();
    crash_disks(disks, len, &|_| false, false)
}

fn open(disks: &[MemDisk], read_only: bool) -> Fs<MemDev> {
    let opts = OpenOptions {
        degraded: false,
        read_only,
    };
    Fs::open(devs(disks), opts).unwrap()
}

fn assert_fsck_clean(fs: &mut Fs<MemDev>) {
    let report = fsck::check(&mut fs.vol, false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
}

/// A fresh volume on `n` disks with `profile`, committed and frozen (the crash base).
fn volume(n: usize, profile: Profile) -> (Vec<MemDisk>, Fs<MemDev>) {
    let disks = MemDisk::set(n, 128 << 20);
    drop(memdev::mkfs_fs(&disks, profile).unwrap());
    MemDisk::freeze(&disks);
    let fs = open(&disks, false);
    (disks, fs)
}

#[test]
fn fsync_writes_one_record_and_flushes_once() {
    let (disks, mut fs) = volume(1, Profile::Dup);
    assert!(fs.vol.log_area().is_some(), "mkfs made no log area");
    let ino = new_file(&mut fs, b"f");
    fs.write(ino, 0, &vec![7u8; 64 << 10], t(2)).unwrap();
    fs.sync().unwrap();
    let generation = fs.vol.superblock().generation;
    let before = disks[0].log().borrow().len();
    fs.write(ino, 8192, &[9u8; 4096], t(3)).unwrap();
    fs.fsync().unwrap();
    let log = disks[0].log();
    let ops: Vec<Op> = log.borrow()[before..]
        .iter()
        .map(|(_, op)| op.clone())
        .collect();
    let writes = ops.iter().filter(|o| matches!(o, Op::Write { .. })).count();
    let flushes = ops.iter().filter(|o| matches!(o, Op::Flush)).count();
    let fua = ops
        .iter()
        .filter(|o| matches!(o, Op::WriteFua { .. }))
        .count();
    // The data block and one log block, each in the two DUP copies (data and metadata
    // are both DUP here).
    assert_eq!((writes, flushes, fua), (4, 1, 0));
    assert_eq!(
        fs.vol.superblock().generation,
        generation,
        "fsync committed"
    );
    // Nothing more to write: a second fsync does nothing.
    let before = log.borrow().len();
    fs.fsync().unwrap();
    assert_eq!(log.borrow().len(), before);

    // A power cut now: the mount replays the record, and commits it.
    drop(fs);
    let crashed = cut_now(&disks);
    let mut fs = open(&crashed, false);
    let got = fs.read(ino, 0, 64 << 10).unwrap();
    assert_eq!(&got[..8192], &[7u8; 8192][..]);
    assert_eq!(&got[8192..12288], &[9u8; 4096][..]);
    assert_eq!(&got[12288..], &vec![7u8; (64 << 10) - 12288][..]);
    assert_eq!(fs.vol.superblock().generation, generation + 1);
    assert_fsck_clean(&mut fs);
}

/// A data write the device accepted and then failed (the kernel reports it at the next
/// flush, so after the record pointing at it was written): the fsync fails, and the
/// transaction is dropped rather than committed; no mount replays the record, whose data
/// has no good copy. What comes back is what was durable before: the first fsync's data.
#[test]
fn a_write_failed_before_the_log_flush_is_neither_replayed_nor_committed() {
    let (disks, mut fs) = volume(1, Profile::Dup);
    let ino = new_file(&mut fs, b"f");
    fs.write(ino, 0, &vec![7u8; 64 << 10], t(2)).unwrap();
    fs.fsync().unwrap();
    disks[0].lose_writes(true);
    fs.write(ino, 0, &vec![9u8; 64 << 10], t(3)).unwrap();
    disks[0].lose_writes(false);
    assert_eq!(fs.fsync(), Err(EngineError::Io));
    assert!(
        fs.vol.is_read_only(),
        "the transaction went on after the failed flush"
    );
    assert!(fs.sync().is_err(), "a commit followed the failed flush");
    drop(fs);

    // Only what the devices made durable: the failed fsync's record is there (its flush
    // applied it), its data is not.
    let crashed = cut_now(&disks);
    let mut fs = open(&crashed, false);
    assert_eq!(
        &fs.read(ino, 0, 64 << 10).unwrap()[..],
        &vec![7u8; 64 << 10][..]
    );
    assert_fsck_clean(&mut fs);
}

#[test]
fn names_and_removals_come_back_from_the_log() {
    let (disks, mut fs) = volume(1, Profile::Single);
    let gone = new_file(&mut fs, b"gone");
    fs.write(gone, 0, &[1u8; 10000], t(2)).unwrap();
    let kept = new_file(&mut fs, b"kept");
    fs.sync().unwrap();
    // After the commit: a new directory with a file, a rename, an unlink, a truncate.
    let d = fs
        .mkdir(ROOT_INO, b"d", 0o755, Owner::default(), t(3))
        .unwrap()
        .ino;
    let inner = fs
        .create(d, b"inner", S_IFREG | 0o600, 0, Owner::default(), t(3))
        .unwrap()
        .ino;
    fs.write(inner, 0, b"inside", t(4)).unwrap();
    fs.fsync().unwrap();
    fs.rename(ROOT_INO, b"kept", d, b"moved", 0, t(5)).unwrap();
    fs.unlink(ROOT_INO, b"gone", t(5)).unwrap();
    fs.fsync().unwrap();
    // Not fsynced: lost by the cut.
    fs.write(inner, 0, b"later!", t(6)).unwrap();
    drop(fs);
    let crashed = cut_now(&disks);
    let mut fs = open(&crashed, false);
    assert_eq!(fs.lookup(ROOT_INO, b"gone").unwrap(), None);
    assert_eq!(fs.lookup(ROOT_INO, b"kept").unwrap(), None);
    assert_eq!(fs.lookup(d, b"moved").unwrap(), Some(kept));
    assert_eq!(fs.lookup(d, b"inner").unwrap(), Some(inner));
    assert_eq!(&fs.read(inner, 0, 100).unwrap()[..], b"inside");
    assert!(
        fs.getattr(gone).is_err(),
        "the unlinked file is still there"
    );
    assert_fsck_clean(&mut fs);
    // The blocks of the unlinked file are free again once the replay is committed.
    let after = fs.statfs();
    let mut fresh = open(&crashed, false);
    assert_eq!(fresh.statfs().used_bytes, after.used_bytes);
}

#[test]
fn a_read_only_mount_replays_in_memory_and_leaves_the_records() {
    let (disks, mut fs) = volume(2, Profile::Raid1);
    let ino = new_file(&mut fs, b"f");
    fs.write(ino, 0, b"durable", t(2)).unwrap();
    fs.fsync().unwrap();
    drop(fs);
    let crashed = cut_now(&disks);
    let generation = {
        let mut ro = open(&crashed, true);
        assert_eq!(&ro.read(ino, 0, 100).unwrap()[..], b"durable");
        ro.vol.superblock().generation
    };
    // Nothing was written: a writable mount finds the records still there.
    let mut fs = open(&crashed, false);
    assert_eq!(&fs.read(ino, 0, 100).unwrap()[..], b"durable");
    assert_eq!(fs.vol.superblock().generation, generation + 1);
    assert_fsck_clean(&mut fs);
}

#[test]
fn fsck_counts_the_log_area_and_its_repair_replays_the_log() {
    let (disks, mut fs) = volume(1, Profile::Dup);
    let ino = new_file(&mut fs, b"f");
    fs.write(ino, 0, &[5u8; 8192], t(2)).unwrap();
    fs.fsync().unwrap();
    drop(fs);
    let crashed = cut_now(&disks);
    // Checked as committed (the file is not there yet), and clean: the log area's blocks
    // are referenced, not leaked.
    let mut vol =
        ferrofs_engine::volume::Volume::open_with(devs(&crashed), OpenOptions::default()).unwrap();
    let report = fsck::check(&mut vol, false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
    // A repair replays before it commits: the fsynced file survives it.
    let report = fsck::check(&mut vol, true).unwrap();
    assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
    drop(vol);
    let mut fs = open(&crashed, false);
    assert_eq!(&fs.read(ino, 0, 8192).unwrap()[..], &[5u8; 8192][..]);
}

#[test]
fn what_the_log_cannot_take_is_committed() {
    let (disks, mut fs) = volume(1, Profile::Single);
    let ino = new_file(&mut fs, b"f");
    fs.sync().unwrap();
    // A label change is not logged: fsync commits it.
    let generation = fs.vol.superblock().generation;
    fs.set_label(b"renamed").unwrap();
    fs.write(ino, 0, b"x", t(2)).unwrap();
    assert_eq!(fs.log_start().unwrap(), LogWrite::NeedsCommit);
    fs.fsync().unwrap();
    assert_eq!(fs.vol.superblock().generation, generation + 1);
    // Writes between fsyncs that outgrow the area: the records are dropped, and fsync
    // commits.
    let area = fs.vol.log_area().unwrap();
    let mut offset = 0u64;
    let chunk = vec![3u8; 1 << 20];
    let generation = fs.vol.superblock().generation;
    let mut logged = 0;
    for _ in 0..64 {
        fs.write(ino, offset, &chunk, t(3)).unwrap();
        offset += 1 << 20;
        let before = fs.vol.superblock().generation;
        fs.fsync().unwrap();
        if fs.vol.superblock().generation == before {
            logged += 1;
        }
    }
    assert!(logged > 0, "no fsync used the log");
    assert!(
        fs.vol.superblock().generation > generation,
        "a log of {} blocks took 64 MiB of writes without a commit",
        area.blocks
    );
    drop(fs);
    let crashed = cut_now(&disks);
    let mut fs = open(&crashed, false);
    let size = fs.getattr(ino).unwrap().size;
    assert_eq!(size, offset);
    let got = fs.read(ino, offset - 4096, 4096).unwrap();
    assert_eq!(&got[..], &chunk[..4096]);
    assert_eq!(fs.label(), b"renamed");
    assert_fsck_clean(&mut fs);
}

#[test]
fn changes_made_while_a_log_write_flushes_go_in_the_next_record() {
    let (disks, mut fs) = volume(1, Profile::Dup);
    let a = new_file(&mut fs, b"a");
    fs.write(a, 0, b"first", t(2)).unwrap();
    let LogWrite::Started(ticket) = fs.log_start().unwrap() else {
        panic!("no log write started");
    };
    // Another call runs while the devices are flushed.
    let b = new_file(&mut fs, b"b");
    fs.write(b, 0, b"second", t(3)).unwrap();
    let flushed = fs.vol.flush_devices();
    fs.log_finish(ticket, flushed).unwrap();
    fs.fsync().unwrap();
    drop(fs);
    let crashed = cut_now(&disks);
    let mut fs = open(&crashed, false);
    assert_eq!(&fs.read(a, 0, 10).unwrap()[..], b"first");
    assert_eq!(&fs.read(b, 0, 10).unwrap()[..], b"second");
    assert_fsck_clean(&mut fs);
}

/// A log block as `log_start` writes it, with `payload` as its record's operations.
fn log_block(fsid: &[u8; 16], generation: u64, payload: &[u8]) -> Vec<u8> {
    let mut block = vec![0u8; 4096];
    block[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    block[8..16].copy_from_slice(b"FRFSLOG1");
    block[16..32].copy_from_slice(fsid);
    block[32..40].copy_from_slice(&generation.to_le_bytes());
    block[56..60].copy_from_slice(&1u32.to_le_bytes());
    block[64..64 + payload.len()].copy_from_slice(payload);
    let crc = ferrofs_engine::crc32c::checksum(&block[4..]);
    block[0..4].copy_from_slice(&crc.to_le_bytes());
    block
}

/// Records whose checksum is right and whose operations are garbage (a bug, or a crafted
/// image) fail the mount with a corruption error, or replay what they validly say; they
/// never panic, and never touch a tree that is not logged.
#[test]
fn garbage_records_are_refused_not_trusted() {
    let disks = MemDisk::set(1, 64 << 20);
    let fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let area = fs.vol.log_area().unwrap();
    let fsid = fs.vol.fsid();
    let generation = fs.vol.superblock().generation + 1;
    let place = fs.vol.map_block(area.start).unwrap()[0].physical;
    drop(fs);
    let image = disks[0].image();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut refused = 0;
    for round in 0..150 {
        let len = (next() % 200) as usize;
        let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Mostly well-formed heads, so the decoder gets past the first byte.
        if let Some(first) = payload.first_mut() {
            *first = 1 + (round % 4) as u8;
        }
        let disk = MemDisk::set(1, 64 << 20).remove(0);
        disk.write_at(0, &image);
        disk.write_at(place, &log_block(&fsid, generation, &payload));
        match Fs::open(devs(std::slice::from_ref(&disk)), OpenOptions::default()) {
            Ok(mut fs) => {
                let report = fsck::check(&mut fs.vol, false).unwrap();
                assert!(
                    report.problems.is_empty(),
                    "round {round}: replayed into a damaged volume: {:?}",
                    &report.problems[..]
                );
            }
            Err(e) => {
                assert!(
                    matches!(e, ferrofs_engine::error::EngineError::Corrupt { .. }),
                    "round {round}: {e:?}"
                );
                refused += 1;
            }
        }
    }
    assert!(
        refused > 50,
        "only {refused} of 150 garbage records refused"
    );
}
