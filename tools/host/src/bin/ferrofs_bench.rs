// SPDX-License-Identifier: GPL-2.0

//! Engine micro-benchmarks on in-memory devices (see scripts/bench/btree): b-tree inserts
//! and lookups per second and commit throughput, at growing tree sizes, so the growth of
//! cost with size is visible. Not a test: it prints numbers and asserts nothing.

use std::time::Instant;

use ferrofs_engine::chunk::Profile;
use ferrofs_engine::key::Key;
use ferrofs_host::memdev::{self, MemDisk, Op, TEST_TREE};

fn main() {
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
