//! The tools as a person runs them: mkfs.ferrofs over image files, fsck.ferrofs -n clean,
//! then a byte flipped in each metadata block copy in turn: fsck -n must exit non-zero,
//! name the block, and write nothing; fsck without -n repairs what a mirror can fix.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrofs_engine::volume::{child_refs, Volume};
use ferrofs_host::cli;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ferrofs-tools-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn images(dir: &Path, n: usize, size: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("disk{i}.img"));
            std::fs::File::create(&p).unwrap().set_len(size).unwrap();
            p.display().to_string()
        })
        .collect()
}

fn run(bin: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const MKFS: &str = env!("CARGO_BIN_EXE_mkfs_ferrofs");
const FSCK: &str = env!("CARGO_BIN_EXE_fsck_ferrofs");
const CTL: &str = env!("CARGO_BIN_EXE_ferroctl");

/// (logical block, image index, physical offset) of every copy of every tree block.
fn metadata_copies(paths: &[String]) -> Vec<(u64, usize, u64)> {
    let devs = cli::open_devices(paths, false).unwrap();
    let mut vol = Volume::open(devs, false).unwrap();
    let devids: Vec<u64> = vol.devices().iter().map(|d| d.devid).collect();
    let mut out = Vec::new();
    for &tree in vol.trees().unwrap().iter() {
        let id = tree.id();
        let mut stack = vec![vol.root(tree).unwrap()];
        while let Some(at) = stack.pop() {
            for c in vol.map_block(at.block).unwrap().iter() {
                let idx = devids.iter().position(|&d| d == c.devid).unwrap();
                out.push((at.block, idx, c.physical));
            }
            stack.extend(child_refs(vol.read_node(&at, id).unwrap()).unwrap().iter());
        }
    }
    out
}

fn flip(path: &str, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, offset).unwrap();
}

/// Checksums of the metadata areas of the images (where a check could write).
fn digest(paths: &[String], copies: &[(u64, usize, u64)]) -> Vec<u32> {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::new();
    let mut places: Vec<(usize, u64)> = copies.iter().map(|&(_, i, p)| (i, p)).collect();
    for i in 0..paths.len() {
        for off in ferrofs_engine::format::SUPERBLOCK_OFFSETS.iter().take(2) {
            places.push((i, *off));
        }
    }
    for (img, physical) in places {
        let f = std::fs::File::open(&paths[img]).unwrap();
        let mut buf = vec![0u8; 4096];
        f.read_exact_at(&mut buf, physical).unwrap();
        out.push(ferrofs_engine::crc32c::checksum(&buf));
    }
    out
}

#[test]
fn raid1_over_three_images_flip_every_metadata_block() {
    let dir = scratch("raid1");
    let paths = images(&dir, 3, 256 << 20);
    let args: Vec<&str> = ["-d", "raid1", "-m", "raid1", "-L", "t"]
        .into_iter()
        .chain(paths.iter().map(String::as_str))
        .collect();
    let (rc, out) = run(MKFS, &args);
    assert_eq!(rc, 0, "{out}");
    let p: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut fsck_n = vec!["-n"];
    fsck_n.extend(&p);
    let (rc, out) = run(FSCK, &fsck_n);
    assert_eq!(rc, 0, "fresh filesystem not clean: {out}");
    let copies = metadata_copies(&paths);
    assert!(
        copies.len() >= 6 * 2,
        "expected every tree block twice: {copies:?}"
    );
    for (i, &(logical, img, physical)) in copies.iter().enumerate() {
        // A different byte of the block each time: header, item table, item data.
        let offset = physical + [4u64, 30, 60, 70, 100, 2000, 4095][i % 7];
        flip(&paths[img], offset);
        let before = digest(&paths, &copies);
        let (rc, out) = run(FSCK, &fsck_n);
        assert_eq!(
            rc, 4,
            "flip at {offset} of {}: fsck -n exit {rc}: {out}",
            paths[img]
        );
        assert!(
            out.contains(&format!("block {logical} ")),
            "fsck did not name block {logical}: {out}"
        );
        assert_eq!(
            digest(&paths, &copies),
            before,
            "fsck -n wrote to the images"
        );
        flip(&paths[img], offset);
    }
    // Without -n, a bad copy is repaired from its mirror.
    let (logical, img, physical) = copies[0];
    flip(&paths[img], physical + 50);
    let (rc, out) = run(FSCK, &p);
    assert_eq!(rc, 1, "repair: {out}");
    assert!(
        out.contains(&format!("block {logical} ")) && out.contains("[repaired]"),
        "{out}"
    );
    let (rc, out) = run(FSCK, &fsck_n);
    assert_eq!(rc, 0, "after repair: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn single_device_flip_is_unrepairable_and_named() {
    let dir = scratch("single");
    let paths = images(&dir, 1, 128 << 20);
    let (rc, out) = run(MKFS, &["-m", "single", &paths[0]]);
    assert_eq!(rc, 0, "{out}");
    for (logical, _, physical) in metadata_copies(&paths) {
        flip(&paths[0], physical + 200);
        let (rc, out) = run(FSCK, &["-n", &paths[0]]);
        assert_eq!(rc, 4, "{out}");
        assert!(out.contains(&format!("{logical}")), "{out}");
        flip(&paths[0], physical + 200);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mkfs_refuses_foreign_signatures_without_force_and_bad_arguments() {
    let dir = scratch("sig");
    let paths = images(&dir, 3, 128 << 20);
    // Filesystems libblkid knows (xfstests generic/740 tries every mkfs.* there is),
    // each made by its own mkfs; then ferrofs itself.
    for (mkfs, args, name) in [
        ("mkfs.ext4", &["-q", "-F"][..], "ext4"),
        ("mkfs.minix", &[][..], "minix"),
        ("mkfs.bfs", &[][..], "bfs"),
    ] {
        // A blank image each time, so that no older signature is left beside the new one.
        let image = std::fs::OpenOptions::new()
            .write(true)
            .open(&paths[0])
            .unwrap();
        image.set_len(0).unwrap();
        image.set_len(128 << 20).unwrap();
        drop(image);
        let made = std::process::Command::new(mkfs)
            .args(args)
            .arg(&paths[0])
            .output()
            .or_else(|_| {
                std::process::Command::new(format!("/usr/sbin/{mkfs}"))
                    .args(args)
                    .arg(&paths[0])
                    .output()
            })
            .unwrap_or_else(|e| panic!("{mkfs}: {e}"));
        assert!(made.status.success(), "{mkfs}: {made:?}");
        let (rc, out) = run(MKFS, &[&paths[0]]);
        assert_ne!(rc, 0, "mkfs over {name} without -f: {out}");
        assert!(out.contains(name) && out.contains("-f"), "{out}");
    }
    let (rc, out) = run(MKFS, &["-f", &paths[0]]);
    assert_eq!(rc, 0, "{out}");
    let (rc, out) = run(MKFS, &[&paths[0]]);
    assert_ne!(rc, 0, "mkfs over ferrofs without -f: {out}");
    assert!(out.contains("ferrofs filesystem"), "{out}");
    let (rc, out) = run(MKFS, &[&paths[2]]);
    assert_eq!(rc, 0, "a blank image needs no -f: {out}");
    let (rc, out) = run(MKFS, &["-d", "raid1", &paths[1]]);
    assert_ne!(rc, 0, "raid1 on one device must fail: {out}");
    let (rc, out) = run(MKFS, &["-d", "raid7", &paths[1]]);
    assert_ne!(rc, 0);
    assert!(out.contains("unknown profile"), "{out}");
    let (rc, _) = run(
        FSCK,
        &["-n", &dir.join("missing.img").display().to_string()],
    );
    assert_eq!(rc, 8);
    let (rc, _) = run(FSCK, &["-n", &paths[1]]);
    assert_eq!(rc, 4, "a device without ferrofs is an error, not clean");
    let (rc, out) = run(CTL, &["dump", &paths[0]]);
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("tree 5 (fs)") && out.contains("chunk "),
        "{out}"
    );
    let (rc, out) = run(CTL, &["--help"]);
    assert_eq!(rc, 0);
    assert!(out.contains("dump"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A byte flipped anywhere in a superblock copy (primary or backup, on either device of a
/// raid1): `fsck -n` names the copy, exits 4 and writes nothing; `fsck` rewrites it from
/// the good copies (exit 1), after which the check is clean and the copy decodes again.
#[test]
fn every_damaged_superblock_copy_is_reported_and_rewritten() {
    use ferrofs_engine::format::{Superblock, SUPERBLOCK_OFFSETS};
    use std::os::unix::fs::FileExt;
    let dir = scratch("superblock");
    let paths = images(&dir, 2, 128 << 20);
    let (rc, out) = run(MKFS, &["-d", "raid1", &paths[0], &paths[1]]);
    assert_eq!(rc, 0, "{out}");
    let (rc, out) = run(FSCK, &["-n", &paths[0], &paths[1]]);
    assert_eq!(rc, 0, "{out}");
    let copies = metadata_copies(&paths);
    // 128 MiB images hold the primary (64 KiB) and the first backup (64 MiB).
    for img in 0..2 {
        for &offset in SUPERBLOCK_OFFSETS.iter().take(2) {
            // The magic, the checksum, a field, the unused tail.
            for within in [8u64, 0, 100, 4000] {
                flip(&paths[img], offset + within);
                let before = digest(&paths, &copies);
                let (rc, out) = run(FSCK, &["-n", &paths[0], &paths[1]]);
                assert_eq!(rc, 4, "flip at {offset}+{within} of image {img}: {out}");
                assert!(
                    out.contains(&format!("block {offset} (device ")),
                    "flip at {offset}+{within} of image {img} not named: {out}"
                );
                assert_eq!(before, digest(&paths, &copies), "fsck -n wrote");
                let (rc, out) = run(FSCK, &[&paths[0], &paths[1]]);
                assert_eq!(rc, 1, "repair of {offset}+{within} of image {img}: {out}");
                assert!(out.contains("[repaired]"), "{out}");
                let (rc, out) = run(FSCK, &["-n", &paths[0], &paths[1]]);
                assert_eq!(rc, 0, "after repair of {offset}+{within}: {out}");
                let f = std::fs::File::open(&paths[img]).unwrap();
                let mut buf = vec![0u8; 4096];
                f.read_exact_at(&mut buf, offset).unwrap();
                assert!(Superblock::decode(offset, &buf).is_ok());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
