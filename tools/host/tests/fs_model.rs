//! The filesystem API against a simple in-memory model: random sequences of create, mkdir,
//! symlink, link, unlink, rmdir, rename (plain, NOREPLACE, EXCHANGE), write, truncate,
//! read, setattr, xattrs and readdir, with commits and remounts in between. After every
//! step the results and errno values must match the model; after every remount the whole
//! tree is compared, and fsck must be clean.

use std::collections::{BTreeMap, HashMap};

use ferrofs_engine::chunk::{Kind, Profile};
use ferrofs_engine::error::EngineError;
use ferrofs_engine::fs::{
    Fs, Owner, SetAttr, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE,
    RENAME_EXCHANGE, RENAME_NOREPLACE,
};
use ferrofs_engine::fsck;
use ferrofs_engine::inode::{Timespec, ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use ferrofs_engine::volume::{MkfsOptions, OpenOptions};
use ferrofs_host::memdev::{self, devs, MemDev, MemDisk};

#[derive(Clone, Debug)]
enum Obj {
    File {
        data: Vec<u8>,
        nlink: u32,
    },
    Dir {
        entries: BTreeMap<Vec<u8>, u64>,
        parent: u64,
    },
    Link {
        target: Vec<u8>,
    },
}

#[derive(Clone, Debug, Default)]
struct Model {
    objs: HashMap<u64, Obj>,
    modes: HashMap<u64, u32>,
    xattrs: HashMap<u64, BTreeMap<Vec<u8>, Vec<u8>>>,
}

type R<T> = Result<T, i32>;

/// Creates regular file `name` in the root directory at time `t`.
fn new_file(fs: &mut Fs<MemDev>, name: &[u8], t: u64) -> u64 {
    fs.create(ROOT_INO, name, S_IFREG | 0o644, 0, Owner::default(), now(t))
        .unwrap()
        .ino
}

fn reopen(disks: &[MemDisk]) -> Fs<MemDev> {
    Fs::open(devs(disks), OpenOptions::default()).unwrap()
}

fn assert_fsck_clean(fs: &mut Fs<MemDev>) {
    let report = fsck::check(&mut fs.vol, false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
}

fn errno(e: EngineError) -> i32 {
    e.errno()
}

impl Model {
    fn new() -> Self {
        let mut m = Model::default();
        m.objs.insert(
            ROOT_INO,
            Obj::Dir {
                entries: BTreeMap::new(),
                parent: ROOT_INO,
            },
        );
        m.modes.insert(ROOT_INO, S_IFDIR | 0o755);
        m
    }
    fn dir(&self, ino: u64) -> R<&BTreeMap<Vec<u8>, u64>> {
        match self.objs.get(&ino) {
            Some(Obj::Dir { entries, .. }) => Ok(entries),
            Some(_) => Err(20),
            None => Err(2),
        }
    }
    fn dir_mut(&mut self, ino: u64) -> &mut BTreeMap<Vec<u8>, u64> {
        match self.objs.get_mut(&ino) {
            Some(Obj::Dir { entries, .. }) => entries,
            _ => panic!("not a dir"),
        }
    }
    fn is_dir(&self, ino: u64) -> bool {
        matches!(self.objs.get(&ino), Some(Obj::Dir { .. }))
    }
    fn is_ancestor(&self, anc: u64, mut d: u64) -> bool {
        loop {
            if d == anc {
                return true;
            }
            if d == ROOT_INO {
                return false;
            }
            d = match self.objs.get(&d) {
                Some(Obj::Dir { parent, .. }) => *parent,
                _ => return false,
            };
        }
    }
    fn add(&mut self, dir: u64, name: &[u8], ino: u64, obj: Obj, mode: u32) -> R<()> {
        if self.dir(dir)?.contains_key(name) {
            return Err(17);
        }
        self.dir_mut(dir).insert(name.to_vec(), ino);
        self.objs.insert(ino, obj);
        self.modes.insert(ino, mode);
        Ok(())
    }
    fn drop_name(&mut self, ino: u64) {
        match self.objs.get_mut(&ino) {
            Some(Obj::File { nlink, .. }) => {
                *nlink -= 1;
                if *nlink == 0 {
                    self.objs.remove(&ino);
                    self.xattrs.remove(&ino);
                }
            }
            _ => {
                self.objs.remove(&ino);
                self.xattrs.remove(&ino);
            }
        }
    }
    fn unlink(&mut self, dir: u64, name: &[u8]) -> R<()> {
        let ino = *self.dir(dir)?.get(name).ok_or(2)?;
        if self.is_dir(ino) {
            return Err(21);
        }
        self.dir_mut(dir).remove(name);
        self.drop_name(ino);
        Ok(())
    }
    fn rmdir(&mut self, dir: u64, name: &[u8]) -> R<()> {
        let ino = *self.dir(dir)?.get(name).ok_or(2)?;
        match self.objs.get(&ino) {
            Some(Obj::Dir { entries, .. }) if entries.is_empty() => {}
            Some(Obj::Dir { .. }) => return Err(39),
            _ => return Err(20),
        }
        self.dir_mut(dir).remove(name);
        self.objs.remove(&ino);
        self.xattrs.remove(&ino);
        Ok(())
    }
    fn rename(&mut self, sd: u64, sn: &[u8], dd: u64, dn: &[u8], flags: u32) -> R<()> {
        self.dir(sd)?;
        self.dir(dd)?;
        let s = *self.dir(sd)?.get(sn).ok_or(2)?;
        let t = self.dir(dd)?.get(dn).copied();
        if self.is_dir(s) && sd != dd && self.is_ancestor(s, dd) {
            return Err(22);
        }
        if flags & RENAME_EXCHANGE != 0 {
            let t = t.ok_or(2)?;
            if self.is_dir(t) && sd != dd && self.is_ancestor(t, sd) {
                return Err(22);
            }
            if s == t {
                return Ok(());
            }
            self.dir_mut(sd).insert(sn.to_vec(), t);
            self.dir_mut(dd).insert(dn.to_vec(), s);
            for (ino, p) in [(s, dd), (t, sd)] {
                if let Some(Obj::Dir { parent, .. }) = self.objs.get_mut(&ino) {
                    *parent = p;
                }
            }
            return Ok(());
        }
        if let Some(t) = t {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(17);
            }
            if t == s {
                return Ok(());
            }
            match (self.is_dir(s), self.is_dir(t)) {
                (true, false) => return Err(20),
                (false, true) => return Err(21),
                (true, true) => self.rmdir(dd, dn)?,
                (false, false) => self.unlink(dd, dn)?,
            }
        }
        self.dir_mut(sd).remove(sn);
        self.dir_mut(dd).insert(dn.to_vec(), s);
        if let Some(Obj::Dir { parent, .. }) = self.objs.get_mut(&s) {
            *parent = dd;
        }
        Ok(())
    }
}

const NAMES: [&[u8]; 6] = [b"a", b"b", b"cc", b"dd", b"e-long-name-here", b"f"];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

fn now(step: u64) -> Timespec {
    Timespec {
        sec: 1_700_000_000 + step as i64,
        nsec: (step % 1000) as u32 * 1000,
    }
}

fn res<T>(r: Result<T, EngineError>) -> R<T> {
    r.map_err(errno)
}

/// Compares every object reachable from the root with the model.
fn compare_all(fs: &mut Fs<MemDev>, m: &Model) {
    let mut stack = vec![ROOT_INO];
    while let Some(d) = stack.pop() {
        let entries = m.dir(d).unwrap().clone();
        let listed = fs.readdir(d, 0, 10_000).unwrap();
        let got: BTreeMap<Vec<u8>, u64> = listed.iter().map(|e| (e.name.to_vec(), e.ino)).collect();
        assert_eq!(got, entries, "directory {d}");
        let dnode = fs.getattr(d).unwrap();
        let subdirs = entries.values().filter(|i| m.is_dir(**i)).count() as u32;
        assert_eq!(dnode.nlink, 2 + subdirs, "nlink of directory {d}");
        for (name, ino) in entries {
            let inode = fs.getattr(ino).unwrap();
            assert_eq!(inode.mode, m.modes[&ino], "mode of {ino}");
            match &m.objs[&ino] {
                Obj::Dir { .. } => stack.push(ino),
                Obj::File { data, nlink } => {
                    assert_eq!(inode.nlink, *nlink, "nlink of {ino}");
                    assert_eq!(inode.size, data.len() as u64, "size of {ino}");
                    let got = fs.read(ino, 0, data.len() + 10).unwrap();
                    assert!(
                        got[..] == data[..],
                        "data of {ino} ({:?})",
                        String::from_utf8_lossy(&name)
                    );
                }
                Obj::Link { target } => {
                    assert_eq!(&fs.readlink(ino).unwrap()[..], &target[..]);
                }
            }
            let mut xs: Vec<Vec<u8>> = fs
                .list_xattr(ino)
                .unwrap()
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_vec())
                .collect();
            xs.sort();
            let want: Vec<Vec<u8>> = m
                .xattrs
                .get(&ino)
                .map(|x| x.keys().cloned().collect())
                .unwrap_or_default();
            assert_eq!(xs, want, "xattrs of {ino}");
        }
    }
}

/// Checks a create-like result against the model (EEXIST if the name exists) and records
/// the new object.
fn expect_created(m: &mut Model, d: u64, name: &[u8], got: R<u64>, obj: Obj, mode: u32, ctx: &str) {
    let exists = m.dir(d).map(|e| e.contains_key(name));
    match (got, exists) {
        (Ok(ino), Ok(false)) => m.add(d, name, ino, obj, mode).unwrap(),
        (Err(e), Ok(true)) => assert_eq!(e, 17, "{ctx}"),
        (got, exists) => panic!("{ctx}: got {got:?}, name exists: {exists:?}"),
    }
}

fn run(seed: u64, steps: u64, disks_n: usize, profile: Profile) {
    let disks = MemDisk::set(disks_n, 160 << 20);
    let mut fs = memdev::mkfs_fs(&disks, profile).unwrap();
    let mut m = Model::new();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for step in 1..=steps {
        let t = now(step);
        let mut dirs: Vec<u64> = m
            .objs
            .iter()
            .filter(|(_, o)| matches!(o, Obj::Dir { .. }))
            .map(|(i, _)| *i)
            .collect();
        dirs.sort();
        let mut files: Vec<u64> = m
            .objs
            .iter()
            .filter(|(_, o)| matches!(o, Obj::File { .. }))
            .map(|(i, _)| *i)
            .collect();
        files.sort();
        let mut all: Vec<u64> = m.objs.keys().copied().collect();
        all.sort();
        let d = rng.pick(&dirs);
        let name = rng.pick(&NAMES);
        let what = rng.below(100);
        let ctx = format!("seed {seed} step {step} op {what}");
        match what {
            0..=11 => {
                let got = res(fs.create(
                    d,
                    name,
                    S_IFREG | 0o644,
                    0,
                    Owner {
                        uid: 1000,
                        gid: 1000,
                    },
                    t,
                ));
                let obj = Obj::File {
                    data: vec![],
                    nlink: 1,
                };
                expect_created(
                    &mut m,
                    d,
                    name,
                    got.map(|i| i.ino),
                    obj,
                    S_IFREG | 0o644,
                    &ctx,
                );
            }
            12..=19 => {
                let got = res(fs.mkdir(d, name, 0o755, Owner::default(), t));
                let obj = Obj::Dir {
                    entries: BTreeMap::new(),
                    parent: d,
                };
                expect_created(
                    &mut m,
                    d,
                    name,
                    got.map(|i| i.ino),
                    obj,
                    S_IFDIR | 0o755,
                    &ctx,
                );
            }
            20..=23 => {
                // Mostly short targets (inline), some past one item (in a data block).
                let mut target: Vec<u8> = format!("../target/{}", rng.below(1000)).into_bytes();
                if rng.below(4) == 0 {
                    let len = 800 + rng.below(3296) as usize;
                    target.resize(len, b'x');
                }
                let got = res(fs.symlink(d, name, &target, Owner::default(), t));
                let obj = Obj::Link { target };
                expect_created(
                    &mut m,
                    d,
                    name,
                    got.map(|i| i.ino),
                    obj,
                    S_IFLNK | 0o777,
                    &ctx,
                );
            }
            24..=29 if !files.is_empty() => {
                let f = rng.pick(&files);
                let got = res(fs.link(f, d, name, t)).map(|_| ());
                let want = if m.dir(d).unwrap().contains_key(name) {
                    Err(17)
                } else {
                    Ok(())
                };
                assert_eq!(got, want, "{ctx} link");
                if want.is_ok() {
                    m.dir_mut(d).insert(name.to_vec(), f);
                    if let Some(Obj::File { nlink, .. }) = m.objs.get_mut(&f) {
                        *nlink += 1;
                    }
                }
            }
            30..=39 => {
                let got = res(fs.unlink(d, name, t)).map(|_| ());
                let want = m.unlink(d, name);
                assert_eq!(got, want, "{ctx} unlink");
            }
            40..=44 => {
                let got = res(fs.rmdir(d, name, t));
                let want = m.rmdir(d, name);
                assert_eq!(got, want, "{ctx} rmdir");
            }
            45..=54 => {
                let d2 = rng.pick(&dirs);
                let n2 = rng.pick(&NAMES);
                let flags = [0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE][rng.below(4) as usize];
                let got = res(fs.rename(d, name, d2, n2, flags, t));
                let mut m2 = m.clone();
                let want = m2.rename(d, name, d2, n2, flags);
                assert_eq!(
                    got,
                    want,
                    "{ctx} rename {d}/{:?} -> {d2}/{:?} flags {flags}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(n2)
                );
                if want.is_ok() {
                    m = m2;
                }
            }
            55..=69 if !files.is_empty() => {
                let f = rng.pick(&files);
                let off =
                    [0, 1, 4095, 4096, 5000, 12288, 100_000][rng.below(7) as usize] + rng.below(3);
                let len = [1, 100, 4096, 5000, 20_000][rng.below(5) as usize];
                let byte = rng.next() as u8;
                let data: Vec<u8> = (0..len).map(|i| byte.wrapping_add(i as u8)).collect();
                fs.write(f, off, &data, t).unwrap();
                if let Some(Obj::File { data: md, .. }) = m.objs.get_mut(&f) {
                    let end = off as usize + data.len();
                    if md.len() < end {
                        md.resize(end, 0);
                    }
                    md[off as usize..end].copy_from_slice(&data);
                }
            }
            70..=75 if !files.is_empty() => {
                let f = rng.pick(&files);
                let size = [0, 1, 4095, 4096, 4097, 9000, 30_000][rng.below(7) as usize];
                fs.setattr(
                    f,
                    &SetAttr {
                        size: Some(size),
                        trim: false,
                        ..SetAttr::default()
                    },
                    t,
                )
                .unwrap();
                if let Some(Obj::File { data, .. }) = m.objs.get_mut(&f) {
                    data.resize(size as usize, 0);
                }
            }
            76..=78 if !files.is_empty() => {
                let f = rng.pick(&files);
                let off = [0, 100, 4096, 6000, 16384][rng.below(5) as usize];
                let len = [1, 4096, 5000, 12288, 30_000][rng.below(5) as usize];
                let mode = [
                    0,
                    FALLOC_FL_KEEP_SIZE,
                    FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
                    FALLOC_FL_ZERO_RANGE,
                    FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                ][rng.below(5) as usize];
                fs.fallocate(f, mode, off, len, t).unwrap();
                if let Some(Obj::File { data, .. }) = m.objs.get_mut(&f) {
                    let (off, end) = (off as usize, (off + len) as usize);
                    if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 {
                        let end = end.min(data.len());
                        if off < end {
                            data[off..end].fill(0);
                        }
                    }
                    if mode & FALLOC_FL_KEEP_SIZE == 0 && data.len() < end {
                        data.resize(end, 0);
                    }
                }
            }
            79..=81 if !files.is_empty() => {
                let f = rng.pick(&files);
                let off = rng.below(40_000);
                let len = rng.below(20_000) as usize;
                let got = fs.read(f, off, len).unwrap();
                if let Some(Obj::File { data, .. }) = m.objs.get(&f) {
                    let s = (off as usize).min(data.len());
                    let e = (off as usize + len).min(data.len());
                    assert!(got[..] == data[s..e], "{ctx} read {off}+{len}");
                }
            }
            82..=85 => {
                let ino = rng.pick(&all);
                let mode = 0o600 | (rng.below(8) as u32) << 3;
                fs.setattr(
                    ino,
                    &SetAttr {
                        mode: Some(mode),
                        ..SetAttr::default()
                    },
                    t,
                )
                .unwrap();
                let old = m.modes[&ino];
                m.modes.insert(ino, (old & S_IFMT) | mode);
            }
            86..=90 => {
                let ino = rng.pick(&all);
                let xname = format!("user.{}", rng.pick(&["a", "bb", "ccc"])).into_bytes();
                if rng.below(3) == 0 {
                    let got = res(fs.remove_xattr(ino, &xname, t));
                    let had = m.xattrs.entry(ino).or_default().remove(&xname).is_some();
                    assert_eq!(got, if had { Ok(()) } else { Err(61) }, "{ctx} removexattr");
                } else {
                    // Mostly short values, some spilled out of their item.
                    let len = match rng.below(8) {
                        0 => rng.below(9000),
                        _ => rng.below(300),
                    };
                    let value: Vec<u8> = (0..len).map(|i| (i as u8) ^ rng.next() as u8).collect();
                    fs.set_xattr(ino, &xname, &value, t).unwrap();
                    m.xattrs
                        .entry(ino)
                        .or_default()
                        .insert(xname.clone(), value);
                }
                let got = res(fs.get_xattr(ino, &xname)).map(|v| v.to_vec());
                let want = m
                    .xattrs
                    .get(&ino)
                    .and_then(|x| x.get(&xname))
                    .cloned()
                    .ok_or(61);
                assert_eq!(got, want, "{ctx} getxattr");
            }
            91..=94 => fs.sync().unwrap(),
            95..=96 => {
                // Remount: what is synced and what is not must both be there after a clean
                // unmount (sync first, as unmount does).
                fs.sync().unwrap();
                drop(fs);
                fs = reopen(&disks);
                compare_all(&mut fs, &m);
                let report = fsck::check(&mut fs.vol, false).unwrap();
                assert!(
                    report.problems.is_empty(),
                    "{ctx}: fsck {:?}",
                    &report.problems[..]
                );
            }
            _ => {
                // Lookups of every name in a directory.
                for n in NAMES {
                    let got = res(fs.lookup(d, n));
                    let want = m.dir(d).map(|e| e.get(n).copied());
                    assert_eq!(got, want, "{ctx} lookup");
                }
            }
        }
    }
    fs.sync().unwrap();
    compare_all(&mut fs, &m);
    let report = fsck::check(&mut fs.vol, false).unwrap();
    assert!(
        report.problems.is_empty(),
        "fsck: {:?}",
        &report.problems[..]
    );
}

#[test]
fn model_single_device() {
    for seed in 1..=6 {
        run(seed, 1500, 1, Profile::Single);
    }
}

/// A longer campaign, not part of the suite: `cargo test --release -p ferrofs-host --test
/// fs_model -- --ignored` runs FERROFS_MODEL_SEEDS (default 40) more seeds of 4000 steps.
#[test]
#[ignore = "long campaign, run by hand"]
fn model_long_campaign() {
    let n: u64 = std::env::var("FERROFS_MODEL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    for seed in 1000..1000 + n {
        run(
            seed,
            4000,
            1 + (seed % 2) as usize,
            if seed % 2 == 0 {
                Profile::Single
            } else {
                Profile::Raid1
            },
        );
    }
}

#[test]
fn model_raid1() {
    for seed in 100..=102 {
        run(seed, 1500, 2, Profile::Raid1);
    }
}

#[test]
fn bad_names_and_types_are_refused() {
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let t = now(1);
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(
            fs.create(ROOT_INO, bad, S_IFREG | 0o644, 0, Owner::default(), t)
                .unwrap_err()
                .errno(),
            22
        );
    }
    assert_eq!(
        fs.create(ROOT_INO, &[b'x'; 256], S_IFREG, 0, Owner::default(), t)
            .unwrap_err()
            .errno(),
        36
    );
    let f = fs
        .create(ROOT_INO, b"file", S_IFREG | 0o644, 0, Owner::default(), t)
        .unwrap();
    assert_eq!(fs.lookup(f.ino, b"x").unwrap_err().errno(), 20);
    assert_eq!(
        fs.mkdir(f.ino, b"x", 0o755, Owner::default(), t)
            .unwrap_err()
            .errno(),
        20
    );
    let d = fs
        .mkdir(ROOT_INO, b"dir", 0o755, Owner::default(), t)
        .unwrap();
    assert_eq!(
        fs.link(d.ino, ROOT_INO, b"dirlink", t).unwrap_err().errno(),
        1
    );
    assert_eq!(fs.read(d.ino, 0, 10).unwrap_err().errno(), 21);
    assert_eq!(fs.write(d.ino, 0, b"x", t).unwrap_err().errno(), 21);
    assert_eq!(
        fs.rename(ROOT_INO, b"dir", d.ino, b"inside", 0, t)
            .unwrap_err()
            .errno(),
        22
    );
    assert_eq!(fs.get_xattr(f.ino, b"user.none").unwrap_err().errno(), 61);
    assert_eq!(
        fs.set_xattr(f.ino, b"user.big", &[0u8; 65537], t)
            .unwrap_err()
            .errno(),
        28
    );
    assert_eq!(fs.write(f.ino, 1 << 50, b"x", t).unwrap_err().errno(), 27);
    assert_eq!(
        fs.fallocate(f.ino, FALLOC_FL_PUNCH_HOLE, 0, 10, t)
            .unwrap_err()
            .errno(),
        95
    );
    assert_eq!(fs.fallocate(f.ino, 0x40, 0, 10, t).unwrap_err().errno(), 95);
    assert_eq!(fs.fallocate(f.ino, 0, 0, 0, t).unwrap_err().errno(), 22);
    assert_eq!(fs.fallocate(d.ino, 0, 0, 10, t).unwrap_err().errno(), 21);
}

/// Data checksums: a damaged copy of a data block is found by fsck, read around (the
/// other copy), and rewritten; with one copy, the read fails with EUCLEAN.
#[test]
fn damaged_data_is_found_read_around_and_repaired() {
    use ferrofs_engine::inode::{kind, Extent};
    use ferrofs_engine::key::Key;
    for profile in [Profile::Raid1, Profile::Single] {
        let n = if profile == Profile::Raid1 { 2 } else { 1 };
        let disks = MemDisk::set(n, 96 << 20);
        let mut fs = memdev::mkfs_fs(&disks, profile).unwrap();
        let f = fs
            .create(
                ROOT_INO,
                b"data",
                S_IFREG | 0o644,
                0,
                Owner::default(),
                now(1),
            )
            .unwrap()
            .ino;
        let content: Vec<u8> = (0..3 * 4096).map(|i| (i * 7) as u8).collect();
        fs.write(f, 0, &content, now(2)).unwrap();
        fs.sync().unwrap();
        let ext = fs
            .vol
            .lookup(fs.tree(), &Key::new(f, kind::EXTENT_DATA, 0))
            .unwrap()
            .unwrap();
        let ext = Extent::decode(&ext, 0).unwrap();
        let block = ext.disk + 4096;
        let copy = fs.vol.map_block(block).unwrap()[0];
        drop(fs);
        disks[(copy.devid - 1) as usize].corrupt(copy.physical + 17, 0x40);
        let mut fs = reopen(&disks);
        let report = fsck::check(&mut fs.vol, false).unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.block == block && p.devid == copy.devid && p.what.contains("checksum")),
            "{profile:?}: {:?}",
            &report.problems[..]
        );
        if profile == Profile::Raid1 {
            assert_eq!(&fs.read(f, 0, content.len()).unwrap()[..], &content[..]);
            let report = fsck::check(&mut fs.vol, false).unwrap();
            assert!(
                report.problems.iter().all(|p| p.repaired),
                "read did not repair: {:?}",
                &report.problems[..]
            );
            assert_fsck_clean(&mut fs);
        } else {
            // A bad data block is EIO, as a bad sector is (metadata is EUCLEAN).
            let err = fs.read(f, 0, content.len()).unwrap_err();
            assert!(matches!(err, EngineError::BadData { .. }), "{err:?}");
            assert_eq!(err.errno(), 5);
            assert_eq!(
                &fs.read(f, 0, 4096).unwrap()[..],
                &content[..4096],
                "other blocks still read"
            );
        }
    }
}

/// fsck recomputes what other structures determine: a wrong link count and a wrong chunk
/// usage are reported by `fsck -n`, fixed by a repairing fsck, and gone after.
#[test]
fn fsck_repairs_link_counts_and_usage() {
    use ferrofs_engine::format::item;
    use ferrofs_engine::inode::{kind, Inode};
    use ferrofs_engine::key::Key;
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let f = new_file(&mut fs, b"f", 1);
    fs.link(f, ROOT_INO, b"g", now(2)).unwrap();
    fs.sync().unwrap();
    // Damage, through the volume: nlink 5 instead of 2, and a chunk's usage off by a block.
    let key = Key::new(f, kind::INODE, 0);
    let mut inode = Inode::decode(f, &fs.vol.lookup(fs.tree(), &key).unwrap().unwrap(), 0).unwrap();
    inode.nlink = 5;
    fs.vol.insert(fs.tree(), key, &inode.encode()).unwrap();
    // The data chunk: this commit changes no block in it, so nothing rewrites its usage.
    let chunk = fs.vol.chunks()[2].logical;
    let bg = Key::new(chunk, item::BLOCK_GROUP, 0);
    let used = u64::from_le_bytes(
        fs.vol
            .lookup(ferrofs_engine::volume::Tree::SPACE, &bg)
            .unwrap()
            .unwrap()[..8]
            .try_into()
            .unwrap(),
    );
    fs.vol
        .insert(
            ferrofs_engine::volume::Tree::SPACE,
            bg,
            &(used + 4096).to_le_bytes(),
        )
        .unwrap();
    fs.vol.commit().unwrap();
    drop(fs);
    let mut fs = reopen(&disks);
    let report = fsck::check(&mut fs.vol, false).unwrap();
    let whats: Vec<&str> = report.problems.iter().map(|p| p.what).collect();
    assert!(
        whats.contains(&"link count differs from the names of the inode"),
        "{whats:?}"
    );
    assert!(report.problems.iter().all(|p| !p.repaired));
    let report = fsck::check(&mut fs.vol, true).unwrap();
    assert_eq!(report.unrepaired(), 0, "{:?}", &report.problems[..]);
    assert!(!report.problems.is_empty());
    drop(fs);
    let mut fs = reopen(&disks);
    assert_fsck_clean(&mut fs);
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
}

/// Found by fuzzing: a damaged extent length once sent fsck walking 2^48 blocks. Extents
/// longer than any write makes, or with unaligned or overflowing ranges, are corrupt.
#[test]
fn absurd_extents_are_corrupt() {
    use ferrofs_engine::inode::{Extent, ExtentKind, MAX_EXTENT_BYTES};
    let ok = Extent {
        kind: ExtentKind::Regular,
        disk: 1 << 30,
        len: MAX_EXTENT_BYTES,
    };
    assert_eq!(Extent::decode(&ok.encode(), 7).unwrap(), ok);
    for (disk, len) in [
        (1 << 30, MAX_EXTENT_BYTES + 4096),
        (1 << 30, 0),
        (1 << 30, 100),
        (4097, 4096),
        (u64::MAX - 4095, 8192),
    ] {
        let bad = Extent {
            kind: ExtentKind::Regular,
            disk,
            len,
        };
        assert_eq!(
            Extent::decode(&bad.encode(), 7).unwrap_err().errno(),
            117,
            "{disk} {len}"
        );
    }
}

/// Symlink targets up to PATH_MAX - 1 bytes: short ones inline, long ones in a data block,
/// both read back after a remount and checked by fsck; one byte more is ENAMETOOLONG.
#[test]
fn symlink_targets_up_to_path_max() {
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let mut made = Vec::new();
    for len in [1usize, 900, 901, 4000, 4095] {
        let target: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let name = format!("l{len}");
        let ino = fs
            .symlink(ROOT_INO, name.as_bytes(), &target, Owner::default(), now(1))
            .unwrap()
            .ino;
        assert_eq!(fs.getattr(ino).unwrap().size, len as u64);
        made.push((ino, target));
    }
    let too_long = vec![b'z'; 4096];
    let err = fs
        .symlink(ROOT_INO, b"long", &too_long, Owner::default(), now(1))
        .unwrap_err();
    assert_eq!(errno(err), 36);
    assert_eq!(fs.lookup(ROOT_INO, b"long").unwrap(), None);
    fs.sync().unwrap();
    drop(fs);
    let mut fs = reopen(&disks);
    for (ino, target) in &made {
        assert_eq!(&fs.readlink(*ino).unwrap()[..], &target[..]);
    }
    assert_fsck_clean(&mut fs);
    // Removing the long ones frees their blocks: fsck still balances every count.
    for (ino, _) in &made {
        let name = format!("l{}", fs.getattr(*ino).unwrap().size);
        fs.unlink(ROOT_INO, name.as_bytes(), now(2)).unwrap();
    }
    fs.sync().unwrap();
    assert_fsck_clean(&mut fs);
}

/// A change that fails half-way aborts the transaction: the filesystem falls back to its
/// last commit and turns read-only (EROFS for every later change), and a remount finds
/// the last commit whole. A read-only mount refuses changes the same way.
#[test]
fn a_failure_half_way_aborts_to_the_last_commit() {
    let disks = MemDisk::set(2, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Raid1).unwrap();
    let f = new_file(&mut fs, b"f", 1);
    fs.write(f, 0, b"committed", now(1)).unwrap();
    fs.sync().unwrap();
    // Not committed: lost with the abort.
    fs.create(ROOT_INO, b"g", S_IFREG | 0o644, 0, Owner::default(), now(2))
        .unwrap();
    for d in &disks {
        d.fail_writes(true);
    }
    let err = fs.write(f, 0, &[7u8; 3 * 4096], now(3)).unwrap_err();
    assert_eq!(errno(err), 5);
    assert_eq!(fs.aborted(), Some(EngineError::Io));
    // Reads see the last commit.
    assert_eq!(&fs.read(f, 0, 100).unwrap()[..], b"committed");
    assert_eq!(fs.lookup(ROOT_INO, b"g").unwrap(), None);
    for d in &disks {
        d.fail_writes(false);
    }
    // Read-only now, though the devices work again.
    let err = fs
        .create(ROOT_INO, b"h", S_IFREG | 0o644, 0, Owner::default(), now(4))
        .unwrap_err();
    assert_eq!(errno(err), 30);
    assert_eq!(errno(fs.write(f, 0, b"x", now(4)).unwrap_err()), 30);
    assert_eq!(errno(fs.sync().unwrap_err()), 30);
    drop(fs);
    let mut fs = reopen(&disks);
    assert_fsck_clean(&mut fs);
    assert_eq!(&fs.read(f, 0, 100).unwrap()[..], b"committed");
    assert_eq!(fs.lookup(ROOT_INO, b"g").unwrap(), None);
    // A failure before any change leaves the transaction alone.
    let err = fs.unlink(ROOT_INO, b"missing", now(5)).unwrap_err();
    assert_eq!(errno(err), 2);
    assert_eq!(fs.aborted(), None);
    fs.create(ROOT_INO, b"h", S_IFREG | 0o644, 0, Owner::default(), now(5))
        .unwrap();
    fs.sync().unwrap();
    drop(fs);
    let ro = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let mut fs = Fs::open(devs(&disks), ro).unwrap();
    assert!(fs.lookup(ROOT_INO, b"h").unwrap().is_some());
    let err = fs.unlink(ROOT_INO, b"h", now(6)).unwrap_err();
    assert_eq!(errno(err), 30);
}

/// Wrong reference counts (one too low, one too high, one leaked block) are reported by
/// `fsck -n`, set from the references found by a repairing fsck, and gone after.
#[test]
fn fsck_repairs_reference_counts() {
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let f = new_file(&mut fs, b"f", 1);
    fs.write(f, 0, &[5u8; 4 * 4096], now(1)).unwrap();
    fs.sync().unwrap();
    let data_start = fs
        .vol
        .chunks()
        .iter()
        .find(|c| c.kind == ferrofs_engine::chunk::Kind::Data)
        .unwrap()
        .logical;
    let mut used = Vec::new();
    let mut free = None;
    for n in 0..64u64 {
        let b = data_start + n * 4096;
        match fs.vol.stored_refcount(b).unwrap() {
            0 if free.is_none() => free = Some(b),
            0 => {}
            _ => used.push(b),
        }
    }
    assert_eq!(used.len(), 4);
    let leak = free.unwrap();
    // Dropping a data block's count drops its checksum too: put it back, so that only the
    // count is wrong.
    let csum_key = ferrofs_engine::key::Key::new(
        ferrofs_engine::inode::CSUM_OBJECTID,
        ferrofs_engine::inode::EXTENT_CSUM,
        used[0],
    );
    // The item holds the checksums of the file's four blocks: keep the first one's.
    let csum = fs
        .vol
        .lookup(ferrofs_engine::volume::Tree::CSUM, &csum_key)
        .unwrap()
        .unwrap()[..4]
        .to_vec();
    fs.vol.set_refcount(used[0], 0).unwrap();
    fs.vol
        .insert(ferrofs_engine::volume::Tree::CSUM, csum_key, &csum)
        .unwrap();
    fs.vol.set_refcount(used[1], 4).unwrap();
    fs.vol.set_refcount(leak, 1).unwrap();
    fs.vol.commit().unwrap();
    drop(fs);
    let mut fs = reopen(&disks);
    let report = fsck::check(&mut fs.vol, false).unwrap();
    let whats: Vec<(u64, &str)> = report.problems.iter().map(|p| (p.block, p.what)).collect();
    for (block, what) in [
        (
            used[0],
            "reference count lower than the references to the block",
        ),
        (
            used[1],
            "reference count higher than the references to the block",
        ),
        (
            leak,
            "block counted in the space map but not referenced (leak)",
        ),
    ] {
        assert!(whats.contains(&(block, what)), "{whats:?}");
    }
    assert!(report.problems.iter().all(|p| !p.repaired));
    let report = fsck::check(&mut fs.vol, true).unwrap();
    assert_eq!(report.unrepaired(), 0, "{:?}", &report.problems[..]);
    drop(fs);
    let mut fs = reopen(&disks);
    assert_fsck_clean(&mut fs);
    assert_eq!(fs.vol.stored_refcount(used[0]).unwrap(), 1);
    assert_eq!(fs.vol.stored_refcount(used[1]).unwrap(), 1);
    assert_eq!(fs.vol.stored_refcount(leak).unwrap(), 0);
    assert_eq!(&fs.read(f, 0, 4096).unwrap()[..], &[5u8; 4096][..]);
}

/// Unlinked but open (the kernel keeps such inodes): with `keep_unlinked`, an inode that
/// loses its last name stays readable with an orphan item until evicted, or until the next
/// mount; a tmpfile is an orphan until linked. fsck accepts orphans and balances their
/// blocks, and finds none left after eviction.
#[test]
fn unlinked_open_files_live_until_evicted_or_remounted() {
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    fs.set_keep_unlinked(true);
    let data = vec![9u8; 3 * 4096 + 5];
    let a = new_file(&mut fs, b"a", 1);
    let b = new_file(&mut fs, b"b", 1);
    let c = new_file(&mut fs, b"c", 1);
    for ino in [a, b, c] {
        fs.write(ino, 0, &data, now(1)).unwrap();
    }
    fs.unlink(ROOT_INO, b"a", now(2)).unwrap();
    // Renaming over `c` drops its only name.
    fs.rename(ROOT_INO, b"b", ROOT_INO, b"c", 0, now(2))
        .unwrap();
    let t = fs
        .tmpfile(ROOT_INO, 0o600, Owner::default(), now(3))
        .unwrap()
        .ino;
    fs.write(t, 0, b"tmp", now(3)).unwrap();
    let u = fs
        .tmpfile(ROOT_INO, 0o600, Owner::default(), now(3))
        .unwrap()
        .ino;
    fs.write(u, 0, b"named later", now(3)).unwrap();
    fs.link(u, ROOT_INO, b"u", now(4)).unwrap();
    for ino in [a, c, t] {
        assert_eq!(fs.getattr(ino).unwrap().nlink, 0);
    }
    assert_eq!(&fs.read(a, 0, data.len()).unwrap()[..], &data[..]);
    assert_eq!(&fs.read(c, 0, data.len()).unwrap()[..], &data[..]);
    assert_eq!(fs.getattr(u).unwrap().nlink, 1);
    assert_eq!(fs.lookup(ROOT_INO, b"c").unwrap(), Some(b));
    fs.sync().unwrap();
    assert_fsck_clean(&mut fs);
    // Evicting a named inode does nothing; evicting an orphan frees it.
    fs.evict(u).unwrap();
    fs.evict(a).unwrap();
    assert_eq!(errno(fs.getattr(a).unwrap_err()), 2);
    assert_eq!(&fs.read(u, 0, 100).unwrap()[..], b"named later");
    fs.sync().unwrap();
    assert_fsck_clean(&mut fs);
    drop(fs);
    // The mount frees the orphans left (c and t, as after a crash).
    let mut fs = reopen(&disks);
    for ino in [c, t] {
        assert_eq!(errno(fs.getattr(ino).unwrap_err()), 2);
    }
    assert_eq!(&fs.read(b, 0, data.len()).unwrap()[..], &data[..]);
    fs.sync().unwrap();
    assert_fsck_clean(&mut fs);
    // A new inode after the remount does not reuse a number.
    let v = new_file(&mut fs, b"v", 5);
    assert!(v > u);
}

/// statfs counts what files could still get: free blocks of the data chunks plus what new
/// data chunks could take from unallocated space, with the copies the profile keeps; and
/// it goes down by what a write takes. Used space is the blocks in use, not the chunks.
#[test]
fn statfs_free_space_follows_the_profile() {
    for (n, profile, copies) in [
        (1, Profile::Single, 1),
        (2, Profile::Raid1, 2),
        (3, Profile::Raid1, 2),
    ] {
        let disks = MemDisk::set(n, 256 << 20);
        let mut fs = memdev::mkfs_fs(&disks, profile).unwrap();
        let st = fs.statfs();
        let raw = n as u64 * (256 << 20);
        assert_eq!(st.total_bytes, raw / copies, "{profile:?} x{n}");
        // Metadata and system chunks and the reserved areas take some, and chunks placed
        // as the allocator places them leave an odd device's remainder; most is free.
        assert!(
            st.free_bytes > st.total_bytes * 7 / 10,
            "{profile:?} x{n}: {st:?}"
        );
        assert!(st.free_bytes <= st.total_bytes);
        // Used counts the blocks in use, not the chunks: a new filesystem uses little of
        // its metadata chunk.
        assert!(st.used_bytes < 1 << 20, "{profile:?} x{n}: {st:?}");
        assert!(st.free_bytes <= st.total_bytes - st.used_bytes);
        let f = new_file(&mut fs, b"f", 1);
        fs.write(f, 0, &vec![1u8; 16 << 20], now(2)).unwrap();
        fs.sync().unwrap();
        let after = fs.statfs();
        let taken = st.free_bytes - after.free_bytes;
        assert!(
            (16 << 20..=(16 << 20) + (4 << 20)).contains(&taken),
            "{profile:?} x{n}: took {taken}"
        );
        let used = after.used_bytes - st.used_bytes;
        assert!(
            (16 << 20..=(16 << 20) + (1 << 20)).contains(&used),
            "{profile:?} x{n}: used grew by {used}"
        );
    }
}

/// Space freed by a transaction only comes back when it commits: rewriting a file many
/// times over without a sync must commit on its own when space runs short, not fail with
/// ENOSPC (nor abort); a file that cannot fit fails with ENOSPC and leaves the filesystem
/// writable and clean.
#[test]
fn rewrites_commit_when_space_runs_short() {
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let f = new_file(&mut fs, b"f", 1);
    let chunk = vec![3u8; 1 << 20];
    // 24 MiB live, rewritten 12 times: far more than the volume holds at once.
    for round in 0..12u64 {
        for mib in 0..24u64 {
            fs.write(f, mib << 20, &chunk, now(2 + round)).unwrap();
        }
    }
    assert_eq!(fs.aborted(), None);
    let g = new_file(&mut fs, b"g", 20);
    let mut written = 0u64;
    let err = loop {
        match fs.write(g, written, &chunk, now(21)) {
            Ok(_) => written += 1 << 20,
            Err(e) => break e,
        }
    };
    assert_eq!(errno(err), 28);
    assert_eq!(fs.aborted(), None, "a clean ENOSPC aborts nothing");
    fs.unlink(ROOT_INO, b"g", now(22)).unwrap();
    fs.sync().unwrap();
    assert_fsck_clean(&mut fs);
    assert_eq!(&fs.read(f, 5 << 20, 4096).unwrap()[..], &chunk[..4096]);
}

/// The names of one inode in one directory share a back-reference item; once it is full,
/// further names are extended references (as xfstests generic/040 makes: 3001 links of a
/// file in one directory). They all resolve after a remount, fsck counts them, and
/// unlinking them (from either kind) leaves no back reference behind.
#[test]
fn many_names_of_one_inode_in_one_directory() {
    use ferrofs_engine::format::INCOMPAT_EXTREF;
    use ferrofs_engine::inode::kind;
    use ferrofs_engine::key::Key;
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let f = new_file(&mut fs, b"f", 1);
    let name = |i: u32| format!("link-number-{i:05}").into_bytes();
    for i in 0..3001 {
        fs.link(f, ROOT_INO, &name(i), now(2)).unwrap();
    }
    // Another directory has its own back-reference item.
    let d = fs
        .mkdir(ROOT_INO, b"d", 0o755, Owner::default(), now(3))
        .unwrap()
        .ino;
    fs.link(f, d, b"more", now(4)).unwrap();
    fs.sync().unwrap();
    let mut fs = reopen(&disks);
    assert_ne!(fs.vol.superblock().incompat & INCOMPAT_EXTREF, 0);
    assert_eq!(fs.getattr(f).unwrap().nlink, 3003);
    for i in 0..3001 {
        assert_eq!(fs.lookup(ROOT_INO, &name(i)).unwrap(), Some(f));
    }
    assert_fsck_clean(&mut fs);
    // Every other name first (from both kinds of item), then the rest.
    for i in (0..3001).step_by(2).chain((1..3001).step_by(2)) {
        fs.unlink(ROOT_INO, &name(i), now(5)).unwrap();
    }
    fs.unlink(d, b"more", now(6)).unwrap();
    fs.sync().unwrap();
    assert_fsck_clean(&mut fs);
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    let tree = fs.tree();
    let mut backs = fs.vol.range(
        tree,
        Key::new(f, kind::INODE_REF, 0),
        Key::new(f, kind::INODE_EXTREF, u64::MAX),
    );
    let (k, _) = fs.vol.next_in(&mut backs).unwrap().unwrap();
    assert_eq!((k.kind, k.offset), (kind::INODE_REF, ROOT_INO));
    assert!(fs.vol.next_in(&mut backs).unwrap().is_none());
}

/// A commit in two steps: changes made between its start and its finish belong to the next
/// transaction. A power cut before the finish finds the commit before it; one after the
/// finish finds the commit without the later changes, whose rewrite of committed blocks
/// went elsewhere. A full commit while one is started finishes that one first; a failed
/// flush aborts to the last commit.
#[test]
fn a_started_commit_lets_changes_go_on() {
    use ferrofs_engine::chunk::Kind;
    use ferrofs_engine::dev::BlockDev;
    let disks = MemDisk::set(2, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Raid1).unwrap();
    let a = new_file(&mut fs, b"a", 1);
    fs.write(a, 0, &[1u8; 10000], now(1)).unwrap();
    fs.sync().unwrap();
    let b = new_file(&mut fs, b"b", 2);
    fs.write(b, 0, &[2u8; 20000], now(2)).unwrap();
    let ticket = fs.commit_start().unwrap();
    let started = disks[0].log().borrow().len();
    // The next transaction, while the commit waits for its flush.
    fs.write(a, 0, &[3u8; 10000], now(3)).unwrap();
    new_file(&mut fs, b"c", 3);
    fs.vol.trim_cache().unwrap();
    assert_eq!(fs.read(b, 0, 20000).unwrap()[..], vec![2u8; 20000][..]);
    assert_eq!(fs.read(a, 0, 10000).unwrap()[..], vec![3u8; 10000][..]);
    let flushed = disks.iter().try_for_each(|d| d.dev().flush());
    fs.commit_finish(ticket, flushed).unwrap();
    let finished = disks[0].log().borrow().len();
    let cut_at = |cut: usize| {
        let image = memdev::crash_disks(&disks, cut, &|_| false, false);
        let mut fs = reopen(&image);
        assert_fsck_clean(&mut fs);
        fs
    };
    let mut before = cut_at(started);
    assert_eq!(before.lookup(ROOT_INO, b"b").unwrap(), None);
    assert_eq!(before.read(a, 0, 10000).unwrap()[..], vec![1u8; 10000][..]);
    let mut after = cut_at(finished);
    assert_eq!(after.read(b, 0, 20000).unwrap()[..], vec![2u8; 20000][..]);
    assert_eq!(after.read(a, 0, 10000).unwrap()[..], vec![1u8; 10000][..]);
    assert_eq!(after.lookup(ROOT_INO, b"c").unwrap(), None);
    // A full commit (as when space runs short) finishes the started one first.
    let ticket = fs.commit_start().unwrap();
    fs.write(b, 0, &[4u8; 4096], now(4)).unwrap();
    fs.vol.commit().unwrap();
    fs.commit_finish(ticket, Ok(())).unwrap();
    assert!(!fs.vol.needs_commit());
    drop(fs);
    let mut fs = reopen(&disks);
    assert_fsck_clean(&mut fs);
    assert_eq!(fs.read(a, 0, 10000).unwrap()[..], vec![3u8; 10000][..]);
    assert_eq!(fs.read(b, 0, 4096).unwrap()[..], vec![4u8; 4096][..]);
    assert!(fs.lookup(ROOT_INO, b"c").unwrap().is_some());
    // The tree blocks the commit replaced stay allocated until it finishes.
    new_file(&mut fs, b"e", 5);
    let ticket = fs.commit_start().unwrap();
    let started_free = fs.vol.free_bytes(Kind::Metadata);
    fs.commit_finish(ticket, Ok(())).unwrap();
    assert!(fs.vol.free_bytes(Kind::Metadata) > started_free);
    // A flush that failed: the commit is dropped with everything after the last one.
    new_file(&mut fs, b"d", 5);
    let ticket = fs.commit_start().unwrap();
    let err = fs.commit_finish(ticket, Err(EngineError::Io)).unwrap_err();
    assert_eq!(errno(err), 5);
    assert_eq!(fs.aborted(), Some(EngineError::Io));
    assert_eq!(fs.lookup(ROOT_INO, b"d").unwrap(), None);
    assert_eq!(errno(fs.sync().unwrap_err()), 30);
    drop(fs);
    let mut fs = reopen(&disks);
    assert_fsck_clean(&mut fs);
    assert_eq!(fs.lookup(ROOT_INO, b"d").unwrap(), None);
}

/// Data striped over devices (raid0, raid10) is written and read in runs that follow the
/// 64 KiB stripes: a file whose blocks all differ reads back whole and in pieces across
/// stripe boundaries after a remount, with fsck clean.
#[test]
fn striped_data_reads_back_in_runs() {
    for (n, profile) in [(2, Profile::Raid0), (4, Profile::Raid10)] {
        let disks = MemDisk::set(n, 128 << 20);
        let mut fs = memdev::mkfs_fs(&disks, profile).unwrap();
        let f = new_file(&mut fs, b"f", 1);
        let data: Vec<u8> = (0..(3u32 << 20) + 12345)
            .map(|i| (i / 4096 * 7 + i % 251) as u8)
            .collect();
        fs.write(f, 0, &data, now(1)).unwrap();
        fs.sync().unwrap();
        drop(fs);
        let mut fs = reopen(&disks);
        assert_fsck_clean(&mut fs);
        assert!(
            fs.read(f, 0, data.len()).unwrap()[..] == data[..],
            "{profile:?}"
        );
        for (off, len) in [(60_000, 10_000), (65_535, 2), (1_000_000, 1_500_000)] {
            let got = fs.read(f, off as u64, len).unwrap();
            assert!(got[..] == data[off..off + len], "{profile:?} at {off}");
        }
    }
}

/// A degraded raid10 mount needs a device of every mirrored pair: data raid10 and
/// metadata raid1c3 over four devices, the two devices of one pair missing, is refused
/// with the error a profile with too many devices missing gives; one device missing from
/// each of two pairs mounts and reads every byte back.
#[test]
fn degraded_raid10_needs_a_device_of_every_pair() {
    let disks = MemDisk::set(4, 128 << 20);
    let uuids: Vec<[u8; 16]> = (0..4).map(|i| [i as u8 + 1; 16]).collect();
    let opts = MkfsOptions {
        data: Profile::Raid10,
        metadata: Profile::Raid1c3,
        label: b"",
        fsid: *b"FERROFS-RAID10-!",
        dev_uuids: &uuids,
    };
    let mut fs = Fs::mkfs(devs(&disks), &opts, Timespec::default()).unwrap();
    let f = new_file(&mut fs, b"f", 1);
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i / 4096 + i % 253) as u8)
        .collect();
    fs.write(f, 0, &data, now(1)).unwrap();
    fs.sync().unwrap();
    let data_chunks: Vec<_> = fs
        .vol
        .chunks()
        .iter()
        .filter(|c| c.kind == Kind::Data)
        .collect();
    assert_eq!(data_chunks.len(), 1);
    let pairs: Vec<[u64; 2]> = data_chunks[0]
        .stripes
        .chunks(2)
        .map(|p| [p[0].devid, p[1].devid])
        .collect();
    assert_eq!(pairs.len(), 2);
    drop(fs);
    let degraded = OpenOptions {
        degraded: true,
        read_only: true,
    };
    let without = |missing: &[u64]| -> Vec<MemDisk> {
        (1..=4u64)
            .filter(|d| !missing.contains(d))
            .map(|d| disks[d as usize - 1].clone())
            .collect()
    };
    for pair in &pairs {
        match Fs::open(devs(&without(pair)), degraded) {
            Err(err) => assert_eq!(
                err,
                EngineError::Invalid("too many devices missing to read every chunk"),
                "pair {pair:?} missing"
            ),
            Ok(mut fs) => panic!(
                "pair {pair:?} missing: mounted, and reading the file gives {:?}",
                fs.read(f, 0, data.len()).map(|d| d.len())
            ),
        }
    }
    for a in pairs[0] {
        for b in pairs[1] {
            let mut fs = Fs::open(devs(&without(&[a, b])), degraded)
                .unwrap_or_else(|e| panic!("devices {a} and {b} missing: {e:?}"));
            assert!(
                fs.read(f, 0, data.len()).unwrap()[..] == data[..],
                "devices {a} and {b} missing"
            );
        }
    }
}

/// The node cache stays within its limit across commits: past it, a commit drops every
/// cached block once they are written, and what follows reads them again from the
/// devices, also while the commit waits for its flush.
#[test]
fn the_node_cache_stays_bounded_across_commits() {
    let disks = MemDisk::set(2, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Raid1).unwrap();
    let limit = 16;
    fs.vol.set_cache_limit(limit);
    let mut files = Vec::new();
    let mut most_cached = 0;
    for i in 0..300u64 {
        let name = format!("f{i}");
        let ino = new_file(&mut fs, name.as_bytes(), i);
        fs.write(ino, 0, &[i as u8; 5000], now(i)).unwrap();
        files.push(ino);
        most_cached = most_cached.max(fs.vol.cached_blocks());
        if i % 25 == 24 {
            fs.sync().unwrap();
            assert!(
                fs.vol.cached_blocks() <= limit,
                "{} blocks cached after a commit, limit {limit}",
                fs.vol.cached_blocks()
            );
        }
    }
    // The workload needs more blocks than the limit between commits.
    assert!(
        most_cached > limit,
        "only {most_cached} blocks were ever cached"
    );
    let ticket = fs.commit_start().unwrap();
    assert!(fs.vol.cached_blocks() <= limit);
    for (i, &ino) in files.iter().enumerate() {
        assert_eq!(fs.read(ino, 0, 5000).unwrap()[..], vec![i as u8; 5000][..]);
    }
    fs.write(files[0], 0, &[0xee; 100], now(400)).unwrap();
    fs.commit_finish(ticket, Ok(())).unwrap();
    fs.sync().unwrap();
    drop(fs);
    let mut fs = reopen(&disks);
    assert_fsck_clean(&mut fs);
    assert_eq!(fs.read(files[0], 0, 100).unwrap()[..], [0xee; 100][..]);
    drop(fs);
    // Reads alone (read-only: no atime changes), with no commit to trim at, keep to the
    // limit too: the least used blocks make room.
    let ro = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let mut fs = Fs::open(devs(&disks), ro).unwrap();
    fs.vol.set_cache_limit(limit);
    for (i, &ino) in files.iter().enumerate().skip(1) {
        assert_eq!(fs.read(ino, 0, 5000).unwrap()[..], vec![i as u8; 5000][..]);
        let cached = fs.vol.cached_blocks();
        assert!(cached <= limit, "{cached} blocks cached by reads");
    }
}

/// `RENAME_WHITEOUT`: the source moves and a whiteout (character device 0:0, owned by the
/// caller) takes its name, in one change; with `RENAME_NOREPLACE` an existing target stops
/// both; the flags it cannot take are refused before any change; links of one inode move
/// nothing and leave no whiteout.
#[test]
fn rename_whiteout_leaves_a_whiteout_in_the_same_change() {
    use ferrofs_engine::fs::{RENAME_WHITEOUT, WHITEOUT_DEV};
    use ferrofs_engine::inode::S_IFCHR;
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let t = now(1);
    let caller = Owner {
        uid: 1000,
        gid: 100,
    };
    let a = new_file(&mut fs, b"a", 1);
    fs.write(a, 0, b"moved", t).unwrap();
    let w = fs
        .rename_whiteout(ROOT_INO, b"a", ROOT_INO, b"b", RENAME_WHITEOUT, caller, t)
        .unwrap()
        .expect("a whiteout");
    assert_eq!(fs.lookup(ROOT_INO, b"b").unwrap(), Some(a));
    assert_eq!(fs.lookup(ROOT_INO, b"a").unwrap(), Some(w.ino));
    let got = fs.getattr(w.ino).unwrap();
    assert_eq!((got.mode, got.rdev), (S_IFCHR, WHITEOUT_DEV));
    assert_eq!((got.uid, got.gid, got.nlink), (1000, 100, 1));
    // Over an existing target, into another directory.
    let d = fs
        .mkdir(ROOT_INO, b"d", 0o755, Owner::default(), t)
        .unwrap();
    let c = new_file(&mut fs, b"c", 2);
    fs.create(d.ino, b"old", S_IFREG | 0o644, 0, Owner::default(), t)
        .unwrap();
    fs.rename_whiteout(ROOT_INO, b"c", d.ino, b"old", RENAME_WHITEOUT, caller, t)
        .unwrap()
        .expect("a whiteout");
    assert_eq!(fs.lookup(d.ino, b"old").unwrap(), Some(c));
    // NOREPLACE with a target there: nothing changes.
    let e = new_file(&mut fs, b"e", 3);
    let flags = RENAME_WHITEOUT | RENAME_NOREPLACE;
    let err = fs
        .rename_whiteout(ROOT_INO, b"e", ROOT_INO, b"b", flags, caller, t)
        .unwrap_err();
    assert_eq!(err.errno(), 17);
    assert_eq!(fs.lookup(ROOT_INO, b"e").unwrap(), Some(e));
    // EXCHANGE cannot leave a whiteout; plain rename does not take the flag.
    let flags = RENAME_WHITEOUT | RENAME_EXCHANGE;
    let err = fs
        .rename_whiteout(ROOT_INO, b"e", ROOT_INO, b"b", flags, caller, t)
        .unwrap_err();
    assert_eq!(err.errno(), 22);
    let err = fs
        .rename(ROOT_INO, b"e", ROOT_INO, b"f", RENAME_WHITEOUT, t)
        .unwrap_err();
    assert_eq!(err.errno(), 22);
    // Two links of one inode: nothing to do.
    fs.link(e, ROOT_INO, b"e2", t).unwrap();
    let none = fs
        .rename_whiteout(ROOT_INO, b"e", ROOT_INO, b"e2", RENAME_WHITEOUT, caller, t)
        .unwrap();
    assert!(none.is_none());
    assert_eq!(fs.lookup(ROOT_INO, b"e").unwrap(), Some(e));
    assert!(!fs.vol.is_read_only());
    fs.sync().unwrap();
    let mut fs = reopen(&disks);
    assert_eq!(fs.lookup(ROOT_INO, b"a").unwrap(), Some(w.ino));
    assert_eq!(&fs.read(a, 0, 5).unwrap()[..], b"moved");
    assert_fsck_clean(&mut fs);
}

/// Extended attributes given to a new inode with its creation (inherited ACLs): there
/// after a remount; one too large fails the create with ENOSPC and leaves no inode, no
/// name and a writable filesystem.
#[test]
fn create_with_xattrs_is_one_change() {
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let t = now(1);
    let acl = [2u8, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff];
    let xattrs: [(&[u8], &[u8]); 2] = [
        (b"system.posix_acl_access", &acl),
        (b"system.posix_acl_default", &acl),
    ];
    let d = fs
        .create_with_xattrs(&xattrs, t, |fs| {
            fs.mkdir(ROOT_INO, b"d", 0o755, Owner::default(), t)
        })
        .unwrap();
    let f = fs
        .create_with_xattrs(&xattrs[..1], t, |fs| {
            fs.create(d.ino, b"f", S_IFREG | 0o640, 0, Owner::default(), t)
        })
        .unwrap();
    let big = vec![7u8; 65537];
    let err = fs
        .create_with_xattrs(&[(b"system.posix_acl_access", &big)], t, |fs| {
            fs.create(d.ino, b"g", S_IFREG | 0o640, 0, Owner::default(), t)
        })
        .unwrap_err();
    assert_eq!(err.errno(), 28);
    assert_eq!(fs.lookup(d.ino, b"g").unwrap(), None);
    assert!(!fs.vol.is_read_only());
    fs.sync().unwrap();
    let mut fs = reopen(&disks);
    assert_eq!(
        &fs.get_xattr(d.ino, b"system.posix_acl_default").unwrap()[..],
        &acl
    );
    assert_eq!(
        &fs.get_xattr(f.ino, b"system.posix_acl_access").unwrap()[..],
        &acl
    );
    assert_eq!(
        fs.get_xattr(f.ino, b"system.posix_acl_default")
            .unwrap_err()
            .errno(),
        61
    );
    assert_fsck_clean(&mut fs);
}

/// Counts read from disk are lowered with checks, not clamped: a file whose link count
/// says 0 while a name still points at it, or whose byte count is below its extents, is
/// reported as corrupt (EUCLEAN) when unlinked or truncated, and nothing changes.
#[test]
fn a_count_too_low_on_disk_is_corruption_not_a_clamp() {
    use ferrofs_engine::inode::{kind, Inode};
    use ferrofs_engine::key::Key;
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let f = new_file(&mut fs, b"f", 1);
    let g = new_file(&mut fs, b"g", 2);
    fs.write(g, 0, &[7u8; 8192], now(3)).unwrap();
    fs.sync().unwrap();
    let key = Key::new(f, kind::INODE, 0);
    let mut inode = Inode::decode(f, &fs.vol.lookup(fs.tree(), &key).unwrap().unwrap(), 0).unwrap();
    inode.nlink = 0;
    fs.vol.insert(fs.tree(), key, &inode.encode()).unwrap();
    let key = Key::new(g, kind::INODE, 0);
    let mut inode = Inode::decode(g, &fs.vol.lookup(fs.tree(), &key).unwrap().unwrap(), 0).unwrap();
    inode.bytes = 4096;
    fs.vol.insert(fs.tree(), key, &inode.encode()).unwrap();
    fs.vol.commit().unwrap();
    drop(fs);
    let mut fs = reopen(&disks);
    let err = fs.unlink(ROOT_INO, b"f", now(4)).unwrap_err();
    assert!(
        matches!(err, EngineError::Corrupt { block, .. } if block == f),
        "unlink: {err:?}"
    );
    assert_eq!(err.errno(), 117, "EUCLEAN");
    let mut fs = reopen(&disks);
    let err = fs
        .setattr(
            g,
            &SetAttr {
                size: Some(0),
                trim: false,
                ..SetAttr::default()
            },
            now(5),
        )
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Corrupt { block, .. } if block == g),
        "truncate: {err:?}"
    );
    // Nothing changed on disk: both names are still there.
    let mut fs = reopen(&disks);
    assert_eq!(fs.lookup(ROOT_INO, b"f").unwrap(), Some(f));
    assert_eq!(&fs.read(g, 0, 8192).unwrap()[..], &[7u8; 8192][..]);
}

/// A file extent whose key puts it past the largest file, or a block extent off a block
/// boundary, is corruption: reads fail with EUCLEAN and fsck names it (a clamped end once
/// read such an extent as a hole).
#[test]
fn extents_misplaced_in_the_file_are_corrupt() {
    use ferrofs_engine::fs::MAX_FILE_SIZE;
    use ferrofs_engine::inode::kind;
    use ferrofs_engine::key::Key;
    for bad_offset in [MAX_FILE_SIZE, u64::MAX - 4095, 100] {
        let disks = MemDisk::set(1, 96 << 20);
        let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
        let f = new_file(&mut fs, b"f", 1);
        fs.write(f, 0, &[7u8; 4096], now(2)).unwrap();
        let tree = fs.tree();
        let at0 = Key::new(f, kind::EXTENT_DATA, 0);
        let item = fs.vol.remove(tree, &at0).unwrap().unwrap();
        fs.vol
            .insert(tree, Key::new(f, kind::EXTENT_DATA, bad_offset), &item)
            .unwrap();
        fs.sync().unwrap();
        let mut fs = reopen(&disks);
        assert_eq!(
            fs.read(f, 0, 4096).map(|_| ()).map_err(errno),
            Err(117),
            "extent at {bad_offset}"
        );
        let report = fsck::check(&mut fs.vol, false).unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.block == f && p.what.contains("largest file size")),
            "extent at {bad_offset}: {:?}",
            &report.problems[..]
        );
    }
}

/// An exchange that would move a directory into a parent at the link limit is refused
/// with EMLINK before anything changes: both names stay, the filesystem goes on.
#[test]
fn exchange_into_a_full_parent_is_refused_whole() {
    use ferrofs_engine::fs::LINK_MAX;
    use ferrofs_engine::inode::kind;
    use ferrofs_engine::key::Key;
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let mk = |fs: &mut Fs<MemDev>, dir, name: &[u8]| {
        fs.mkdir(dir, name, 0o755, Owner::default(), now(1))
            .unwrap()
            .ino
    };
    let a = mk(&mut fs, ROOT_INO, b"a");
    let b = mk(&mut fs, ROOT_INO, b"b");
    let sub = mk(&mut fs, a, b"sub");
    let file = fs
        .create(b, b"file", S_IFREG | 0o644, 0, Owner::default(), now(2))
        .unwrap()
        .ino;
    // Parent `b` as if it had LINK_MAX - 2 subdirectories.
    let mut full = fs.getattr(b).unwrap();
    full.nlink = LINK_MAX;
    fs.vol
        .insert(fs.tree(), Key::new(b, kind::INODE, 0), &full.encode())
        .unwrap();
    fs.sync().unwrap();
    let err = fs
        .rename(a, b"sub", b, b"file", RENAME_EXCHANGE, now(3))
        .unwrap_err();
    assert_eq!(errno(err), 31);
    assert_eq!(fs.lookup(a, b"sub").unwrap(), Some(sub));
    assert_eq!(fs.lookup(b, b"file").unwrap(), Some(file));
    assert_eq!(fs.getattr(b).unwrap().nlink, LINK_MAX);
    // Not aborted: changes still go through and commit.
    new_file(&mut fs, b"after", 4);
    fs.sync().unwrap();
}

/// Values too long for the item of their name are spilled to pieces: up to
/// `XATTR_SIZE_MAX`, read back whole after a remount, replaced and removed with their
/// pieces, names of one hash each with their own; fsck checks the pieces both ways.
#[test]
fn long_xattr_values_spill() {
    use ferrofs_engine::format::INCOMPAT_XATTR_SPILL;
    use ferrofs_engine::inode::{self, kind, name_hash, XATTR_VALUE_MAX};
    use ferrofs_engine::key::Key;
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let t = now(1);
    let f = new_file(&mut fs, b"f", 1);
    let value =
        |len: usize, seed: u8| -> Vec<u8> { (0..len).map(|i| (i * 31) as u8 ^ seed).collect() };
    assert_eq!(fs.vol.superblock().incompat & INCOMPAT_XATTR_SPILL, 0);
    // Two names of one hash (a CRC-32C collision, found by a search over "user.cN"): one
    // item, two slots.
    let (a, b) = (b"user.c1371838".to_vec(), b"user.c2000402".to_vec());
    assert_eq!(name_hash(&a), name_hash(&b));
    let sizes = [
        (b"user.max".to_vec(), XATTR_VALUE_MAX),
        (b"user.3840".to_vec(), 3840),
        (a.clone(), 5000),
        (b.clone(), 961),
    ];
    for (i, (name, len)) in sizes.iter().enumerate() {
        fs.set_xattr(f, name, &value(*len, i as u8), t).unwrap();
    }
    fs.set_xattr(f, b"user.small", b"inline", t).unwrap();
    fs.sync().unwrap();
    let mut fs = reopen(&disks);
    assert_ne!(fs.vol.superblock().incompat & INCOMPAT_XATTR_SPILL, 0);
    for (i, (name, len)) in sizes.iter().enumerate() {
        assert_eq!(
            &fs.get_xattr(f, name).unwrap()[..],
            &value(*len, i as u8)[..]
        );
    }
    assert_fsck_clean(&mut fs);
    // Replaced by a short one, then by a long one again; removed: no piece left behind.
    fs.set_xattr(f, &a, b"short", t).unwrap();
    assert_eq!(&fs.get_xattr(f, &b).unwrap()[..], &value(961, 3)[..]);
    fs.sync().unwrap();
    assert_fsck_clean(&mut fs);
    fs.set_xattr(f, &a, &value(2000, 9), t).unwrap();
    fs.remove_xattr(f, &b, t).unwrap();
    assert_eq!(&fs.get_xattr(f, &a).unwrap()[..], &value(2000, 9)[..]);
    assert_eq!(fs.get_xattr(f, &b).unwrap_err().errno(), 61);
    fs.remove_xattr(f, b"user.max", t).unwrap();
    fs.sync().unwrap();
    assert_fsck_clean(&mut fs);
    // fsck names a missing piece, and a piece no attribute names.
    let hash = name_hash(b"user.3840");
    let tree = fs.tree();
    let piece = inode::xattr_spill_key(f, hash, 0, 1);
    fs.vol.remove(tree, &piece).unwrap().unwrap();
    let stray = Key::new(f, kind::XATTR_SPILL, piece.offset + 7);
    fs.vol.insert(tree, stray, b"stray").unwrap();
    fs.sync().unwrap();
    let report = fsck::check(&mut fs.vol, false).unwrap();
    let whats: Vec<&str> = report.problems.iter().map(|p| p.what).collect();
    assert!(
        whats.iter().any(|w| w.contains("missing or wrong pieces")),
        "{whats:?}"
    );
    assert!(
        whats
            .iter()
            .any(|w| w.contains("piece without its attribute")),
        "{whats:?}"
    );
    assert_eq!(fs.get_xattr(f, b"user.3840").unwrap_err().errno(), 117);
    // The file goes with every piece.
    fs.vol.remove(tree, &stray).unwrap();
    fs.unlink(ROOT_INO, b"f", t).unwrap();
    fs.sync().unwrap();
    let mut pieces = fs
        .vol
        .range(tree, Key::new(f, 0, 0), Key::new(f, u8::MAX, u64::MAX));
    assert!(fs.vol.next_in(&mut pieces).unwrap().is_none());
}

/// Data checksums are packed, many blocks to an item: a run of writes takes an item per
/// 240 blocks, and blocks freed from the middle of items (a hole punched across two, a
/// block rewritten) split them, keeping the checksums of the blocks around; reads verify
/// every block and fsck finds the items exact.
#[test]
fn data_checksums_are_packed_and_split_as_blocks_go() {
    use ferrofs_engine::format::INCOMPAT_PACKED_CSUMS;
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let f = new_file(&mut fs, b"f", 1);
    let block = |n: u64| -> Vec<u8> { vec![(n % 251) as u8 + 1; 4096] };
    let content: Vec<u8> = (0..300).flat_map(block).collect();
    fs.write(f, 0, &content, now(2)).unwrap();
    fs.sync().unwrap();
    let runs = fs.vol.csum_runs().unwrap();
    assert_eq!(runs.len(), 2, "{:?}", &runs[..]);
    let start = runs[0].0;
    assert_eq!(&runs[..], &[(start, 240), (start + 240 * 4096, 60)][..]);
    assert_ne!(fs.vol.superblock().incompat & INCOMPAT_PACKED_CSUMS, 0);
    // A hole across the two items.
    let mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    fs.fallocate(f, mode, 100 * 4096, 150 * 4096, now(3))
        .unwrap();
    fs.sync().unwrap();
    let runs = fs.vol.csum_runs().unwrap();
    assert_eq!(&runs[..], &[(start, 100), (start + 250 * 4096, 50)][..]);
    // A block rewritten in the middle of the first: its old copy's checksum goes.
    fs.write(f, 10 * 4096, &block(1000), now(4)).unwrap();
    fs.sync().unwrap();
    let runs = fs.vol.csum_runs().unwrap();
    assert!(runs.contains(&(start, 10)), "{:?}", &runs[..]);
    assert!(runs.contains(&(start + 11 * 4096, 89)), "{:?}", &runs[..]);
    let mut fs = reopen(&disks);
    let got = fs.read(f, 0, content.len()).unwrap();
    for n in 0..300u64 {
        let want = match n {
            10 => block(1000),
            100..250 => vec![0u8; 4096],
            _ => block(n),
        };
        let at = n as usize * 4096;
        assert_eq!(&got[at..at + 4096], &want[..], "block {n}");
    }
    assert_fsck_clean(&mut fs);
}

/// Devices from the 16 MiB minimum up get a filesystem whose chunks fit them with room to
/// grow: files fill it to ENOSPC, every file written before that reads back after a
/// remount, fsck is clean, and a device below the minimum is refused.
#[test]
fn small_devices_fill_to_enospc_and_stay_consistent() {
    for size in [16u64 << 20, 25 << 20, 40 << 20] {
        for profile in [Profile::Dup, Profile::Single] {
            let disks = MemDisk::set(1, size);
            let mut fs = memdev::mkfs_fs(&disks, profile).unwrap();
            let data: Vec<u8> = (0..256 << 10).map(|i: u32| (i % 251) as u8).collect();
            let mut written = Vec::new();
            for n in 0.. {
                let name = format!("f{n}");
                let Ok(node) = fs.create(
                    ROOT_INO,
                    name.as_bytes(),
                    S_IFREG | 0o644,
                    0,
                    Owner::default(),
                    T0,
                ) else {
                    break;
                };
                match fs.write(node.ino, 0, &data, T0).and_then(|_| fs.sync()) {
                    Ok(_) => written.push(node.ino),
                    Err(EngineError::NoSpace) => break,
                    Err(e) => panic!("{size} {profile:?}: write {n}: {e:?}"),
                }
            }
            // Much of the device holds data (two copies of it on DUP): the first chunks
            // do not take it all.
            let copies = if profile == Profile::Dup { 2 } else { 1 };
            let min_files = (size / 3 / copies / (256 << 10)) as usize;
            assert!(
                written.len() >= min_files,
                "{size} {profile:?}: only {} files of 256 KiB",
                written.len()
            );
            drop(fs);
            let mut fs = Fs::open(devs(&disks), OpenOptions::default()).unwrap();
            let report = fsck::check(&mut fs.vol, false).unwrap();
            assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
            for &ino in &written {
                assert_eq!(fs.read(ino, 0, data.len()).unwrap()[..], data[..]);
            }
        }
    }
    let disks = MemDisk::set(1, (16 << 20) - 4096);
    assert!(matches!(
        memdev::mkfs_fs(&disks, Profile::Dup),
        Err(EngineError::Invalid(_))
    ));
}

const T0: Timespec = Timespec {
    sec: 1_700_000_000,
    nsec: 0,
};

/// A truncate that does not grow the file (`trim`) releases the blocks preallocated past
/// its end, also when the size stays; one that grows it keeps them (generic/092).
#[test]
fn truncate_to_the_size_releases_preallocated_blocks_past_it() {
    const B: u64 = 4096;
    let disks = MemDisk::set(1, 64 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let ino = fs
        .create(ROOT_INO, b"f", S_IFREG | 0o644, 0, Owner::default(), T0)
        .unwrap()
        .ino;
    let past_end = |fs: &mut Fs<MemDev>, size: u64| {
        fs.extents(ino, size, u64::MAX, 100)
            .unwrap()
            .iter()
            .filter(|(off, e)| off + e.len > size)
            .count()
    };
    fs.fallocate(ino, FALLOC_FL_KEEP_SIZE, 0, 10 * B, T0)
        .unwrap();
    fs.write(ino, 0, &vec![7u8; 5 * B as usize], T0).unwrap();
    assert_eq!(fs.getattr(ino).unwrap().bytes, 10 * B);
    let truncate = |fs: &mut Fs<MemDev>, size: u64, trim: bool| {
        let attr = SetAttr {
            size: Some(size),
            trim,
            ..SetAttr::default()
        };
        fs.setattr(ino, &attr, T0).unwrap();
    };
    // Without trim, a truncate to the size keeps them (the old behaviour, for contrast).
    truncate(&mut fs, 5 * B, false);
    assert!(past_end(&mut fs, 5 * B) > 0);
    truncate(&mut fs, 5 * B, true);
    assert_eq!(
        past_end(&mut fs, 5 * B),
        0,
        "preallocated blocks past the size kept"
    );
    let node = fs.getattr(ino).unwrap();
    assert_eq!((node.size, node.bytes), (5 * B, 5 * B));
    // Growing keeps what lies past the old end, also past the new one.
    fs.fallocate(ino, FALLOC_FL_KEEP_SIZE, 5 * B, 5 * B, T0)
        .unwrap();
    truncate(&mut fs, 7 * B, false);
    assert!(past_end(&mut fs, 7 * B) > 0);
    assert_eq!(fs.getattr(ino).unwrap().bytes, 10 * B);
    assert_eq!(
        fs.read(ino, 0, 8 * B as usize).unwrap()[..],
        {
            let mut v = vec![7u8; 5 * B as usize];
            v.resize(7 * B as usize, 0);
            v
        }[..]
    );
    fs.sync().unwrap();
    let report = fsck::check(&mut fs.vol, false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
}

/// The free space statfs reports can be preallocated whole, also when new chunks must be
/// made for it on gaps that do not divide evenly; a request past it fails with ENOSPC
/// before changing anything (the transaction is not aborted) (generic/103).
#[test]
fn statfs_free_space_can_be_preallocated() {
    for (data, metadata) in [
        (Profile::Single, Profile::Dup),
        (Profile::Dup, Profile::Dup),
    ] {
        let disks = MemDisk::set(1, 3 << 30);
        let mut fs = Fs::mkfs(
            devs(&disks),
            &MkfsOptions {
                data,
                metadata,
                label: b"",
                fsid: [7; 16],
                dev_uuids: &[[1; 16]],
            },
            T0,
        )
        .unwrap();
        let keep = fs
            .create(ROOT_INO, b"keep", S_IFREG | 0o644, 0, Owner::default(), T0)
            .unwrap()
            .ino;
        fs.write(keep, 0, &[5u8; 65536], T0).unwrap();
        let spc = fs
            .create(ROOT_INO, b"spc", S_IFREG | 0o644, 0, Owner::default(), T0)
            .unwrap()
            .ino;
        let free = fs.statfs().free_bytes;
        let len = (free / 1024 - 512) * 1024;
        fs.fallocate(spc, 0, 0, len, T0)
            .unwrap_or_else(|e| panic!("{data:?}: fallocate of {len} of {free} free: {e:?}"));
        let more = fs.statfs().free_bytes + (1 << 20);
        let err = fs.fallocate(spc, 0, len, more, T0).unwrap_err();
        assert_eq!(err, EngineError::NoSpace, "{data:?}");
        assert!(
            fs.aborted().is_none(),
            "{data:?}: ENOSPC aborted the transaction"
        );
        fs.sync().unwrap();
        assert_eq!(fs.read(keep, 0, 65536).unwrap()[..], [5u8; 65536][..]);
        assert_eq!(fs.getattr(spc).unwrap().size, len);
        let report = fsck::check(&mut fs.vol, false).unwrap();
        assert!(report.problems.is_empty(), "{:?}", &report.problems[..]);
    }
}

/// A directory stream bounded by `dir_end` at its start ends while its reader renames
/// each entry it reads away and back (each rename gives the entry a new, later position),
/// and returns each entry once; an unbounded one would read the renamed entries again.
#[test]
fn readdir_before_the_start_end_ends_while_entries_are_renamed() {
    let disks = MemDisk::set(1, 96 << 20);
    let mut fs = memdev::mkfs_fs(&disks, Profile::Single).unwrap();
    let t = now(1);
    let d = fs
        .mkdir(ROOT_INO, b"d", 0o755, Owner::default(), t)
        .unwrap();
    let count = 300usize;
    for i in 0..count {
        let name = format!("{i}");
        fs.create(
            d.ino,
            name.as_bytes(),
            S_IFREG | 0o644,
            0,
            Owner::default(),
            t,
        )
        .unwrap();
    }
    let end = fs.dir_end(d.ino).unwrap();
    let mut seen = Vec::new();
    let mut pos = 2;
    loop {
        let batch = fs.readdir_before(d.ino, pos, end, 7).unwrap();
        if batch.is_empty() {
            break;
        }
        for e in batch.iter() {
            assert!(e.index < end, "entry at {} past the end {end}", e.index);
            seen.push(e.name.to_vec());
            fs.rename(d.ino, &e.name, d.ino, b"TEMPFILE", 0, t).unwrap();
            fs.rename(d.ino, b"TEMPFILE", d.ino, &e.name, 0, t).unwrap();
            pos = e.index + 1;
        }
        assert!(seen.len() <= count, "{} entries read", seen.len());
    }
    let mut want: Vec<Vec<u8>> = (0..count).map(|i| format!("{i}").into_bytes()).collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
    // The renamed entries are all past the old end now, where an unbounded stream finds
    // them again.
    assert_eq!(fs.readdir(d.ino, end, 10_000).unwrap().len(), count);
    assert_eq!(fs.readdir_before(d.ino, end, end, 10).unwrap().len(), 0);
}
