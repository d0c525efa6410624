// SPDX-License-Identifier: GPL-2.0

//! [`BlockDev`] in memory, with a volatile write cache for crash simulation.
//!
//! Writes land in a cache of pending writes until a flush makes them durable, as on a disk
//! with a write-back cache; a FUA write is durable at once. The device records every
//! operation, and [`MemDisk::crash_image`] builds what the disk could hold after a power
//! cut at any point of that history: everything flushed before it, plus any chosen subset
//! of the writes still pending then, in any order.

use std::cell::RefCell;
use std::rc::Rc;

use ferrofs_engine::dev::BlockDev;
use ferrofs_engine::error::{EngineError, EngineResult};

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

#[derive(Default)]
struct State {
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    log: Vec<Op>,
    /// Fail every I/O once this many operations are logged (to cut power mid-run).
    fail_after: Option<usize>,
}

/// A shared handle on an in-memory disk; clones see the same disk.
#[derive(Clone)]
pub struct MemDisk(Rc<RefCell<State>>);

impl MemDisk {
    /// A zero-filled disk of `size` bytes.
    pub fn new(size: u64) -> Self {
        Self(Rc::new(RefCell::new(State {
            durable: vec![0; size as usize],
            ..State::default()
        })))
    }

    /// A disk holding `image` as its durable contents.
    pub fn from_image(image: Vec<u8>) -> Self {
        Self(Rc::new(RefCell::new(State {
            durable: image,
            ..State::default()
        })))
    }

    /// The durable contents with pending writes applied (what a clean shutdown leaves).
    pub fn image(&self) -> Vec<u8> {
        let s = self.0.borrow();
        let mut img = s.durable.clone();
        for (off, data) in &s.pending {
            apply(&mut img, *off, data);
        }
        img
    }

    /// Operations logged so far.
    pub fn log(&self) -> Vec<Op> {
        self.0.borrow().log.clone()
    }

    /// Forgets the log (start of the part of a workload to cut into).
    pub fn clear_log(&self) {
        self.0.borrow_mut().log.clear();
    }

    /// Makes every operation after the first `n` logged ones fail with an I/O error.
    pub fn fail_after(&self, n: Option<usize>) {
        self.0.borrow_mut().fail_after = n;
    }

    /// Flips bits of the durable image at `offset` (to plant corruption).
    pub fn corrupt(&self, offset: u64, mask: u8) {
        let mut s = self.0.borrow_mut();
        if let Some(b) = s.durable.get_mut(offset as usize) {
            *b ^= mask;
        }
    }

    /// A device on this disk.
    pub fn dev(&self) -> MemDev {
        MemDev(self.clone())
    }
}

fn apply(img: &mut [u8], offset: u64, data: &[u8]) {
    let start = offset as usize;
    if let Some(dst) = img.get_mut(start..start + data.len()) {
        dst.copy_from_slice(data);
    }
}

/// What the disk could hold if power was cut after the first `cut` operations of `log`
/// (replayed onto `base`): flushed writes are all there; of the writes pending at the cut,
/// those for which `keep(i)` holds (i counts them in issue order) are applied, in the
/// order given by `reverse`.
pub fn crash_image(
    base: &[u8],
    log: &[Op],
    cut: usize,
    keep: &dyn Fn(usize) -> bool,
    reverse: bool,
) -> Vec<u8> {
    let mut img = base.to_vec();
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    for op in log.iter().take(cut) {
        match op {
            Op::Write { offset, data } => pending.push((*offset, data.clone())),
            Op::WriteFua { offset, data } => apply(&mut img, *offset, data),
            Op::Flush => {
                for (off, data) in pending.drain(..) {
                    apply(&mut img, off, &data);
                }
            }
        }
    }
    let mut survivors: Vec<(u64, Vec<u8>)> = pending
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, w)| w)
        .collect();
    if reverse {
        survivors.reverse();
    }
    for (off, data) in survivors {
        apply(&mut img, off, &data);
    }
    img
}

/// A device view of a [`MemDisk`].
pub struct MemDev(MemDisk);

impl MemDev {
    fn check(&self) -> EngineResult<()> {
        let s = self.0 .0.borrow();
        match s.fail_after {
            Some(n) if s.log.len() >= n => Err(EngineError::Io),
            _ => Ok(()),
        }
    }
}

impl BlockDev for MemDev {
    fn size(&self) -> u64 {
        self.0 .0.borrow().durable.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> EngineResult<()> {
        self.check()?;
        let s = self.0 .0.borrow();
        let start = usize::try_from(offset).map_err(|_| EngineError::Io)?;
        let src = s
            .durable
            .get(start..start + buf.len())
            .ok_or(EngineError::Io)?;
        buf.copy_from_slice(src);
        // Pending writes are visible to reads, newest last.
        for (off, data) in &s.pending {
            let (ws, we) = (*off as usize, *off as usize + data.len());
            let (rs, re) = (start, start + buf.len());
            let (s2, e2) = (ws.max(rs), we.min(re));
            if s2 < e2 {
                buf[s2 - rs..e2 - rs].copy_from_slice(&data[s2 - ws..e2 - ws]);
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.check()?;
        let mut s = self.0 .0.borrow_mut();
        if offset as usize + buf.len() > s.durable.len() {
            return Err(EngineError::Io);
        }
        s.pending.push((offset, buf.to_vec()));
        s.log.push(Op::Write {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn flush(&mut self) -> EngineResult<()> {
        self.check()?;
        let mut s = self.0 .0.borrow_mut();
        let pending = std::mem::take(&mut s.pending);
        for (off, data) in pending {
            apply(&mut s.durable, off, &data);
        }
        s.log.push(Op::Flush);
        Ok(())
    }

    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()> {
        self.check()?;
        let mut s = self.0 .0.borrow_mut();
        if offset as usize + buf.len() > s.durable.len() {
            return Err(EngineError::Io);
        }
        // Drop older pending writes to the same place: the FUA write supersedes them.
        s.pending
            .retain(|(o, d)| !(*o == offset && d.len() == buf.len()));
        apply(&mut s.durable, offset, buf);
        s.log.push(Op::WriteFua {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }
}
