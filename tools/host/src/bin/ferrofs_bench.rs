// SPDX-License-Identifier: GPL-2.0

//! Engine micro-benchmarks on in-memory devices (see scripts/bench/btree): b-tree inserts
//! and lookups per second and commit throughput, at growing tree sizes, so the growth of
//! cost with size is visible; with `io [MiB]`, file writes with a commit and reads through
//! `Fs` (see scripts/bench/io, which prints it beside the VM's figures); with
//! `fsync [COUNT]`, 4 KiB random writes each made durable by `fsync` (the log) and by a
//! commit, and the device writes and flushes each costs. Volumes are made as `mkfs.ferrofs` makes them on one device (metadata DUP).
//! Not a test: it prints numbers and asserts nothing.

use std::time::Instant;

use ferrofs_engine::chunk::Profile;
use ferrofs_engine::dev::BlockDev;
use ferrofs_engine::error::{EngineError, EngineResult};
use ferrofs_engine::fs::{Fs, Owner};
use ferrofs_engine::inode::{Timespec, ROOT_INO, S_IFREG};
use ferrofs_engine::key::Key;
use ferrofs_engine::mem::FVec;
use ferrofs_engine::volume::MkfsOptions;
use ferrofs_host::memdev::{self, MemDisk, Op, TEST_TREE};

fn main() {
    let count = |default: u64| {
        std::env::args()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    match std::env::args().nth(1).as_deref() {
        Some("io") => return bench_io(count(256)),
        Some("fsync") => return bench_fsync(count(2000)),
        _ => {}
    }
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 100_000, 10_000_000]
    } else {
        sizes
    };
    println!(
        "{:>10} {:>14} {:>14} {:>12} {:>14} {:>10}",
        "items", "insert/s", "lookup/s", "commits", "commit MB/s", "tree MiB"
    );
    for n in sizes {
        bench(n);
    }
}

fn bench(n: u64) {
    // About 64 bytes of metadata per item with headers and slack, and room to copy.
    let disk_size = (n * 200).max(512 << 20);
    let disk = MemDisk::new(disk_size);
    let mut vol = match memdev::mkfs(
        std::slice::from_ref(&disk),
        Profile::Single,
        Profile::Single,
        b"bench",
    ) {
        Ok(v) => v,
        Err(e) => {
            println!("{n:>10} mkfs failed: {e:?}");
            return;
        }
    };
    // Keys in a scrambled order, values of 8 bytes.
    let key = |i: u64| Key::new(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20, 1, i);
    let batch = 50_000u64;
    let start = Instant::now();
    let mut commit_time = 0.0f64;
    let mut commits = 0u64;
    let mut bytes_committed = 0u64;
    for i in 0..n {
        if let Err(e) = vol.insert(TEST_TREE, key(i), &i.to_le_bytes()) {
            println!("{n:>10} insert failed at {i}: {e:?}");
            return;
        }
        if (i + 1) % batch == 0 || i + 1 == n {
            let t = Instant::now();
            if let Err(e) = vol.commit() {
                println!("{n:>10} commit failed: {e:?}");
                return;
            }
            commit_time += t.elapsed().as_secs_f64();
            commits += 1;
            // Every block write of the commit (flushes are not data).
            let log = disk.log();
            let writes = log
                .borrow()
                .iter()
                .filter(|(_, op)| !matches!(op, Op::Flush))
                .count() as u64;
            bytes_committed += writes * 4096;
            log.borrow_mut().clear();
            let _ = vol.trim_cache();
        }
    }
    let insert_rate = n as f64 / (start.elapsed().as_secs_f64() - commit_time).max(1e-9);
    let lookups = n.min(1_000_000);
    let start = Instant::now();
    for i in 0..lookups {
        let j = i.wrapping_mul(7919) % n;
        match vol.lookup(TEST_TREE, &key(j)) {
            Ok(Some(_)) => {}
            other => {
                println!("{n:>10} lookup of item {j} failed: {other:?}");
                return;
            }
        }
    }
    let lookup_rate = lookups as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let mb_s = bytes_committed as f64 / (1 << 20) as f64 / commit_time.max(1e-9);
    let used = vol.superblock().bytes_used as f64 / (1 << 20) as f64;
    println!(
        "{n:>10} {insert_rate:>14.0} {lookup_rate:>14.0} {commits:>12} {mb_s:>14.1} {used:>10.1}"
    );
}

/// What a device was asked to do.
#[derive(Default, Clone, Copy)]
struct IoCounts {
    writes: u64,
    bytes_written: u64,
    flushes: u64,
    fua_writes: u64,
}

/// A device in memory that only stores and counts: no crash simulation, no log (unlike
/// `MemDisk`), so the engine's own cost is what is measured.
struct RamDev(Vec<u8>, std::rc::Rc<std::cell::Cell<IoCounts>>);

impl RamDev {
    fn count(&self, change: impl FnOnce(&mut IoCounts)) {
        let mut counts = self.1.get();
        change(&mut counts);
        self.1.set(counts);
    }
}

impl BlockDev for RamDev {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> EngineResult<()> {
        let at = offset as usize;
        let src = self.0.get(at..at + buf.len()).ok_or(EngineError::Io)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        let at = offset as usize;
        let dst = self.0.get_mut(at..at + buf.len()).ok_or(EngineError::Io)?;
        dst.copy_from_slice(buf);
        self.count(|c| {
            c.writes += 1;
            c.bytes_written += buf.len() as u64;
        });
        Ok(())
    }

    fn flush(&mut self) -> EngineResult<()> {
        self.count(|c| c.flushes += 1);
        Ok(())
    }

    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.write(offset, buf)?;
        self.count(|c| c.fua_writes += 1);
        Ok(())
    }
}

/// A one-device volume on a prefaulted RAM device of `size` bytes, and its counters.
fn ram_fs(size: u64) -> EngineResult<(Fs<RamDev>, std::rc::Rc<std::cell::Cell<IoCounts>>)> {
    let counts = std::rc::Rc::new(std::cell::Cell::new(IoCounts::default()));
    let mut devs = FVec::new();
    // Filled, not zeroed, so that its pages exist before the clock starts: the first
    // touch of a page is the host's cost, not the engine's.
    devs.try_push(RamDev(vec![0xa5u8; size as usize], counts.clone()))?;
    let opts = MkfsOptions {
        data: Profile::Single,
        metadata: Profile::Dup,
        label: b"bench",
        fsid: *b"FERROFS-BENCH-IO",
        dev_uuids: &[[1u8; 16]],
    };
    let fs = Fs::mkfs(devs, &opts, Timespec { sec: 0, nsec: 0 })?;
    Ok((fs, counts))
}

/// 4 KiB writes at random places of a 256 MiB file, each followed by `fsync` through the
/// log, or by a commit: writes, bytes and flushes per fsync, and fsyncs per second of
/// engine time, on one core.
fn bench_fsync(count: u64) {
    for log in [true, false] {
        bench_fsync_with(count, log);
    }
}

fn bench_fsync_with(count: u64, log: bool) {
    let run = || -> EngineResult<(f64, IoCounts)> {
        let (mut fs, counts) = ram_fs(1 << 30)?;
        let t0 = Timespec { sec: 0, nsec: 0 };
        let ino = fs
            .create(ROOT_INO, b"bench", S_IFREG | 0o644, 0, Owner::default(), t0)?
            .ino;
        let file_blocks = 256u64 << 8;
        let mega: Vec<u8> = vec![0x5au8; 1 << 20];
        for i in 0..file_blocks / 256 {
            fs.write(ino, i << 20, &mega, t0)?;
        }
        fs.sync()?;
        let block = vec![0x3cu8; 4096];
        let before = counts.get();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let start = Instant::now();
        for _ in 0..count {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            fs.write(ino, (seed % file_blocks) << 12, &block, t0)?;
            if log {
                fs.fsync()?;
            } else {
                fs.sync()?;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let after = counts.get();
        Ok((
            elapsed,
            IoCounts {
                writes: after.writes - before.writes,
                bytes_written: after.bytes_written - before.bytes_written,
                flushes: after.flushes - before.flushes,
                fua_writes: after.fua_writes - before.fua_writes,
            },
        ))
    };
    match run() {
        Ok((elapsed, c)) => {
            let n = count.max(1) as f64;
            println!(
                "engine on the host, 4 KiB random write + {}, dup metadata: {:.0} per second; \
                 per fsync {:.1} writes ({:.1} KiB), {:.1} flushes, {:.1} FUA writes",
                if log { "fsync (log)" } else { "commit" },
                n / elapsed.max(1e-9),
                c.writes as f64 / n,
                c.bytes_written as f64 / n / 1024.0,
                c.flushes as f64 / n,
                c.fua_writes as f64 / n
            );
        }
        Err(e) => println!("engine fsync benchmark failed: {e:?}"),
    }
}

/// Writes a file of `mib` MiB in 1 MiB calls and commits, then reads it back in 1 MiB
/// calls after the node cache was trimmed: MB/s of each, on one core.
fn bench_io(mib: u64) {
    let size = (mib * 2 + 256) << 20;
    let t0 = Timespec { sec: 0, nsec: 0 };
    let run = || -> EngineResult<(f64, f64)> {
        let (mut fs, _) = ram_fs(size)?;
        let ino = fs
            .create(ROOT_INO, b"bench", S_IFREG | 0o644, 0, Owner::default(), t0)?
            .ino;
        let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
        let start = Instant::now();
        for i in 0..mib {
            fs.write(ino, i << 20, &chunk, t0)?;
        }
        fs.sync()?;
        let write = start.elapsed().as_secs_f64();
        let _ = fs.vol.trim_cache();
        let start = Instant::now();
        for i in 0..mib {
            let got = fs.read(ino, i << 20, 1 << 20)?;
            if got.len() != chunk.len() {
                return Err(EngineError::Io);
            }
        }
        let read = start.elapsed().as_secs_f64();
        Ok((write, read))
    };
    match run() {
        Ok((write, read)) => {
            let mb = (mib << 20) as f64 / 1e6;
            println!(
                "engine on the host, {mib} MiB file: write+commit {:.0} MB/s, read {:.0} MB/s",
                mb / write.max(1e-9),
                mb / read.max(1e-9)
            );
        }
        Err(e) => println!("engine io benchmark failed: {e:?}"),
    }
}
