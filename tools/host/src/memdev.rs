// SPDX-License-Identifier: GPL-2.0

//! [`BlockDev`] in memory, with a volatile write cache, for tests and crash simulation.
//!
//! Writes land in a cache of pending writes until a flush makes them durable, as on a disk
//! with a write-back cache; a FUA write is durable at once. Every operation of a set of
//! disks is recorded in one shared log, in issue order, and [`crash_disks`] builds what the
//! disks could hold after a power cut at any point of that log: everything flushed before
//! the cut, plus any chosen subset of the writes still pending, in any order.
//!
//! Storage is copy-on-write over a shared base image, so a crash image costs only the
//! blocks written since the base was frozen. All I/O is in whole 4096-byte blocks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use ferrofs_engine::dev::BlockDev;
use ferrofs_engine::error::{EngineError, EngineResult};

const BLOCK: usize = 4096;

/// One recorded operation.
#[derive(Clone, Debug)]
pub enum Op {
    /// A cached write.
    Write { offset: u64, data: Vec<u8> },
    /// A forced-unit-access write.
    WriteFua { offset: u64, data: Vec<u8> },
    /// A cache flush.
    Flush,
}

/// The operation log shared by a set of disks: (disk index, operation).
pub type Log = Rc<RefCell<Vec<(usize, Op)>>>;

struct State {
    id: usize,
    size: u64,
    base: Rc<Vec<u8>>,
    durable: HashMap<u64, Vec<u8>>,
    pending: Vec<(u64, Vec<u8>)>,
    log: Log,
    /// Fail every I/O once the shared log holds this many operations.
    fail_after: Option<usize>,
    /// Fail every write and flush (reads still work).
    fail_writes: bool,
    /// Accept writes and drop them, failing the next flush, as a block device reports a
    /// write error: at completion, to whoever waits for the write (the next flush).
    lose_writes: bool,
    /// A write was dropped since the last flush.
    lost: bool,
}

/// A shared handle on an in-memory disk; clones see the same disk.
#[derive(Clone)]
pub struct MemDisk(Rc<RefCell<State>>);

impl MemDisk {
    /// `n` zero-filled disks of `size` bytes sharing one operation log.
    pub fn set(n: usize, size: u64) -> Vec<MemDisk> {
        let log: Log = Rc::default();
        let base = Rc::new(Vec::new());
        (0..n)
            .map(|id| Self::with(id, size, base.clone(), HashMap::new(), log.clone()))
            .collect()
    }

    /// A single zero-filled disk.
    pub fn new(size: u64) -> Self {
        Self::set(1, size).remove(0)
    }

    fn with(
        id: usize,
        size: u64,
        base: Rc<Vec<u8>>,
        durable: HashMap<u64, Vec<u8>>,
        log: Log,
    ) -> Self {
        Self(Rc::new(RefCell::new(State {
            id,
            size,
            base,
            durable,
            pending: Vec::new(),
            log,
            fail_after: None,
            fail_writes: false,
            lose_writes: false,
            lost: false,
        })))
    }

    /// The shared operation log.
    pub fn log(&self) -> Log {
        self.0.borrow().log.clone()
    }

    /// Makes the current contents (pending writes included) the base of crash images and
    /// clears the shared log.
    pub fn freeze(disks: &[MemDisk]) {
        for d in disks {
            let img = d.image();
            let mut s = d.0.borrow_mut();
            s.base = Rc::new(img);
            s.durable.clear();
            s.pending.clear();
        }
        if let Some(d) = disks.first() {
            d.0.borrow().log.borrow_mut().clear();
        }
    }

    /// The contents a clean shutdown would leave (pending writes applied).
    pub fn image(&self) -> Vec<u8> {
        let s = self.0.borrow();
        let mut img = vec![0u8; s.size as usize];
        let n = s.base.len().min(img.len());
        img[..n].copy_from_slice(&s.base[..n]);
        for (idx, data) in &s.durable {
            let off = *idx as usize * BLOCK;
            img[off..off + BLOCK].copy_from_slice(data);
        }
        for (off, data) in &s.pending {
            img[*off as usize..*off as usize + data.len()].copy_from_slice(data);
        }
        img
    }

    /// Makes every write and flush fail while `on` (reads go on working).
    pub fn fail_writes(&self, on: bool) {
        self.0.borrow_mut().fail_writes = on;
    }

    /// While `on`, writes succeed but are dropped, and the next flush (whenever it comes)
    /// fails: a write error as the kernel reports it, after the write was accepted. The
    /// flush still makes the writes that were kept durable.
    pub fn lose_writes(&self, on: bool) {
        self.0.borrow_mut().lose_writes = on;
    }

    /// Makes every I/O fail once the shared log holds `n` operations (`None`: never).
    pub fn fail_after(&self, n: Option<usize>) {
        self.0.borrow_mut().fail_after = n;
    }

    /// Flips the bits of `mask` in the byte at `offset` (durable contents).
    pub fn corrupt(&self, offset: u64, mask: u8) {
        let mut s = self.0.borrow_mut();
        let idx = offset / BLOCK as u64;
        let mut block = read_block(&s, idx);
        block[(offset % BLOCK as u64) as usize] ^= mask;
        s.durable.insert(idx, block);
    }

    /// Reads `len` bytes at `offset` (pending writes included).
    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.dev()
            .read(offset, &mut buf)
            .expect("aligned read inside the disk");
        buf
    }

    /// Overwrites whole blocks at `offset` durably (to plant damage).
    pub fn write_at(&self, offset: u64, data: &[u8]) {
        write_durable(&mut self.0.borrow_mut(), offset, data);
    }

    /// A device on this disk.
    pub fn dev(&self) -> MemDev {
        MemDev(self.clone())
    }
}

fn read_block(s: &State, idx: u64) -> Vec<u8> {
    if let Some(b) = s.durable.get(&idx) {
        return b.clone();
    }
    let off = idx as usize * BLOCK;
    match s.base.get(off..off + BLOCK) {
        Some(b) => b.to_vec(),
        None => vec![0u8; BLOCK],
    }
}

fn write_durable(s: &mut State, offset: u64, data: &[u8]) {
    for (i, chunk) in data.chunks(BLOCK).enumerate() {
        s.durable
            .insert(offset / BLOCK as u64 + i as u64, chunk.to_vec());
    }
}

/// The disks as they could be after a power cut following the first `cut` operations of
/// their shared log (recorded since [`MemDisk::freeze`]): every flushed or FUA write is
/// there; of the writes pending at the cut, those with `keep(i)` (i counts all pending
/// writes of all disks in issue order) are applied, in reverse order if `reverse`.
pub fn crash_disks(
    disks: &[MemDisk],
    cut: usize,
    keep: &dyn Fn(usize) -> bool,
    reverse: bool,
) -> Vec<MemDisk> {
    let log = disks[0].log();
    let log = log.borrow();
    let fresh_log: Log = Rc::default();
    let out: Vec<MemDisk> = disks
        .iter()
        .map(|d| {
            let s = d.0.borrow();
            MemDisk::with(
                s.id,
                s.size,
                s.base.clone(),
                HashMap::new(),
                fresh_log.clone(),
            )
        })
        .collect();
    let mut pending: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); disks.len()];
    for (id, op) in log.iter().take(cut) {
        let mut s = out[*id].0.borrow_mut();
        match op {
            Op::Write { offset, data } => pending[*id].push((*offset, data.clone())),
            Op::WriteFua { offset, data } => {
                pending[*id].retain(|(o, d)| !(*o == *offset && d.len() == data.len()));
                write_durable(&mut s, *offset, data);
            }
            Op::Flush => {
                for (off, data) in pending[*id].drain(..) {
                    write_durable(&mut s, off, &data);
                }
            }
        }
    }
    let mut survivors: Vec<(usize, u64, Vec<u8>)> = Vec::new();
    let mut i = 0usize;
    for (id, writes) in pending.into_iter().enumerate() {
        for (off, data) in writes {
            if keep(i) {
                survivors.push((id, off, data));
            }
            i += 1;
        }
    }
    if reverse {
        survivors.reverse();
    }
    for (id, off, data) in survivors {
        write_durable(&mut out[id].0.borrow_mut(), off, &data);
    }
    out
}

/// A device view of a [`MemDisk`].
pub struct MemDev(MemDisk);

impl MemDev {
    fn check(&self, offset: u64, len: usize) -> EngineResult<()> {
        let s = self.0 .0.borrow();
        if let Some(n) = s.fail_after {
            if s.log.borrow().len() >= n {
                return Err(EngineError::Io);
            }
        }
        let aligned = offset % BLOCK as u64 == 0 && len % BLOCK == 0;
        if !aligned || offset.saturating_add(len as u64) > s.size {
            return Err(EngineError::Io);
        }
        Ok(())
    }

    fn check_writable(&self) -> EngineResult<()> {
        if self.0 .0.borrow().fail_writes {
            return Err(EngineError::Io);
        }
        Ok(())
    }

    fn record(&self, op: Op) {
        let s = self.0 .0.borrow();
        s.log.borrow_mut().push((s.id, op));
    }
}

impl BlockDev for MemDev {
    fn size(&self) -> u64 {
        self.0 .0.borrow().size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> EngineResult<()> {
        self.check(offset, buf.len())?;
        let s = self.0 .0.borrow();
        for (i, chunk) in buf.chunks_mut(BLOCK).enumerate() {
            chunk.copy_from_slice(&read_block(&s, offset / BLOCK as u64 + i as u64));
        }
        // Pending writes are visible to reads, newest last.
        for (off, data) in &s.pending {
            let (ws, we) = (*off as usize, *off as usize + data.len());
            let (rs, re) = (offset as usize, offset as usize + buf.len());
            let (lo, hi) = (ws.max(rs), we.min(re));
            if lo < hi {
                buf[lo - rs..hi - rs].copy_from_slice(&data[lo - ws..hi - ws]);
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.check(offset, buf.len())?;
        self.check_writable()?;
        {
            let mut s = self.0 .0.borrow_mut();
            if s.lose_writes {
                s.lost = true;
                return Ok(());
            }
        }
        self.0 .0.borrow_mut().pending.push((offset, buf.to_vec()));
        // A block at a time in the log: a volatile cache may keep any of the blocks of a
        // write and lose the others, so a crash may cut between them.
        for (i, block) in buf.chunks(BLOCK).enumerate() {
            self.record(Op::Write {
                offset: offset + (i * BLOCK) as u64,
                data: block.to_vec(),
            });
        }
        Ok(())
    }

    fn flush(&mut self) -> EngineResult<()> {
        self.check(0, 0)?;
        self.check_writable()?;
        let lost = {
            let mut s = self.0 .0.borrow_mut();
            let pending = std::mem::take(&mut s.pending);
            for (off, data) in pending {
                write_durable(&mut s, off, &data);
            }
            std::mem::take(&mut s.lost)
        };
        self.record(Op::Flush);
        if lost {
            return Err(EngineError::Io);
        }
        Ok(())
    }

    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.check(offset, buf.len())?;
        self.check_writable()?;
        {
            let mut s = self.0 .0.borrow_mut();
            // The FUA write supersedes cached writes to the same place.
            s.pending
                .retain(|(o, d)| !(*o == offset && d.len() == buf.len()));
            write_durable(&mut s, offset, buf);
        }
        self.record(Op::WriteFua {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }
}

/// Devices on `disks`, in order.
pub fn devs(disks: &[MemDisk]) -> ferrofs_engine::mem::FVec<MemDev> {
    let mut v = ferrofs_engine::mem::FVec::new();
    for d in disks {
        // Cannot fail in userspace short of the process running out of memory.
        v.try_push(d.dev()).expect("allocation");
    }
    v
}

/// Id of a tree that tests and benchmarks fill with arbitrary items (the fs tree only
/// takes well-formed files and directories, which fsck checks).
pub const TEST_TREE: ferrofs_engine::volume::Tree = ferrofs_engine::volume::Tree::with_id(100);

/// Makes a filesystem on in-memory disks with fixed UUIDs and an empty [`TEST_TREE`] (for
/// tests and benchmarks).
pub fn mkfs(
    disks: &[MemDisk],
    data: ferrofs_engine::chunk::Profile,
    metadata: ferrofs_engine::chunk::Profile,
    label: &[u8],
) -> EngineResult<ferrofs_engine::volume::Volume<MemDev>> {
    let uuids: Vec<[u8; 16]> = (0..disks.len()).map(|i| [i as u8 + 1; 16]).collect();
    let opts = ferrofs_engine::volume::MkfsOptions {
        data,
        metadata,
        label,
        fsid: *b"FERROFS-TEST-ID!",
        dev_uuids: &uuids,
    };
    let mut vol = ferrofs_engine::volume::Volume::mkfs(devs(disks), &opts)?;
    vol.create_tree(TEST_TREE.id())?;
    vol.commit()?;
    Ok(vol)
}

/// Makes a filesystem with a root directory on in-memory disks, fixed UUIDs and time 0.
pub fn mkfs_fs(
    disks: &[MemDisk],
    profile: ferrofs_engine::chunk::Profile,
) -> EngineResult<ferrofs_engine::fs::Fs<MemDev>> {
    let uuids: Vec<[u8; 16]> = (0..disks.len()).map(|i| [i as u8 + 1; 16]).collect();
    let opts = ferrofs_engine::volume::MkfsOptions {
        data: profile,
        metadata: profile,
        label: b"",
        fsid: *b"FERROFS-TEST-FS!",
        dev_uuids: &uuids,
    };
    ferrofs_engine::fs::Fs::mkfs(
        devs(disks),
        &opts,
        ferrofs_engine::inode::Timespec::default(),
    )
}
