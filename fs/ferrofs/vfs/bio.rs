// SPDX-License-Identifier: GPL-2.0

//! Bios: block I/O requests straight to a block device, bypassing its page cache.
//!
//! A [`Bio`] owns the pages it moves: a write copies the caller's bytes in, so it can be
//! submitted without waiting ([`Bio::submit`]) and the caller's buffer reused at once; its
//! completion frees it. Writes submitted that way, and the reads into page-cache folios
//! of `blockdev::FolioRead`, are counted by the device's [`InFlight`], which a flush and
//! the device's release wait on.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::prelude::*;

use super::bindings;

/// Bytes in one bio page.
const PAGE: usize = 4096;
/// Pages in one bio (`BIO_MAX_VECS`): 1 MiB.
pub(crate) const MAX_BIO_PAGES: usize = 256;

fn check(ret: core::ffi::c_int) -> Result {
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::from_errno(ret))
    }
}

/// The I/O in flight on one device (writes submitted without waiting, reads straight into
/// page-cache folios) and the first write error among them.
pub(crate) struct InFlight(NonNull<bindings::ferrofs_inflight>);

// SAFETY: the tracker is a counter, a spinlock, a mutex and a wait queue, all made for use
// from any thread (bio completions run in interrupt context and only touch the atomics and
// the wait queue).
unsafe impl Send for InFlight {}
// SAFETY: as above; every operation on a shared tracker is internally synchronised.
unsafe impl Sync for InFlight {}

impl InFlight {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: no preconditions; returns NULL when out of memory.
        let ptr = unsafe { bindings::ferrofs_inflight_alloc() };
        NonNull::new(ptr).map(Self).ok_or(ENOMEM)
    }

    /// The tracker, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::ferrofs_inflight {
        self.0.as_ptr()
    }

    /// Whether any counted write has not completed yet.
    pub(crate) fn busy(&self) -> bool {
        // SAFETY: `self.0` is a live tracker (freed only in `drop`).
        unsafe { bindings::ferrofs_inflight_busy(self.0.as_ptr()) }
    }

    /// Waits for every write submitted before the call to complete. Returns the first
    /// error of the writes since the last `wait(true)`; with `take`, forgets it.
    pub(crate) fn wait(&self, take: bool) -> Result {
        // SAFETY: `self.0` is a live tracker; waiting may sleep, and callers run in process
        // context.
        check(unsafe { bindings::ferrofs_inflight_wait(self.0.as_ptr(), take) })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // SAFETY: the tracker came from `ferrofs_inflight_alloc` and is freed once, here;
        // the helper first waits for the writes still counted (their completions use it).
        unsafe { bindings::ferrofs_inflight_free(self.0.as_ptr()) };
    }
}

/// A bio being built, with pages of its own; freed (pages and all) when dropped unless
/// submitted with [`Bio::submit`].
pub(crate) struct Bio(NonNull<bindings::bio>);

impl Bio {
    fn alloc(
        bdev: NonNull<bindings::block_device>,
        sector: u64,
        pages: usize,
        write: bool,
        fua: bool,
    ) -> Result<Self> {
        if pages == 0 || pages > MAX_BIO_PAGES {
            return Err(EINVAL);
        }
        let (bdev, pages) = (bdev.as_ptr(), pages as u16);
        // SAFETY: the caller's `bdev` is an open block device (see `write`/`read`); `pages`
        // is within 1..=BIO_MAX_VECS, the helper's precondition.
        let bio = unsafe { bindings::ferrofs_bio_alloc(bdev, pages, write, fua, sector) };
        NonNull::new(bio).map(Self).ok_or(ENOMEM)
    }

    /// A write of `data` (whole 4096-byte pages, at most [`MAX_BIO_PAGES`]) at byte
    /// `offset` of `bdev`, with forced unit access if `fua`.
    ///
    /// # Safety
    ///
    /// `bdev` must be an open block device that stays open until the bio completes.
    pub(crate) unsafe fn write(
        bdev: NonNull<bindings::block_device>,
        offset: u64,
        data: &[u8],
        fua: bool,
    ) -> Result<Self> {
        if data.len() % PAGE != 0 {
            return Err(EINVAL);
        }
        let bio = Self::alloc(bdev, offset >> 9, data.len() / PAGE, true, fua)?;
        for page in data.chunks_exact(PAGE) {
            // SAFETY: `bio.0` is a bio we own with room for one page per chunk; `page`
            // holds the `PAGE` bytes the helper copies.
            check(unsafe {
                bindings::ferrofs_bio_add_page(bio.0.as_ptr(), page.as_ptr().cast(), PAGE as u32)
            })?;
        }
        Ok(bio)
    }

    /// Reads `buf.len()` bytes (whole pages, at most [`MAX_BIO_PAGES`]) at byte `offset`
    /// of `bdev` into `buf`, waiting for the I/O.
    ///
    /// # Safety
    ///
    /// `bdev` must be an open block device.
    pub(crate) unsafe fn read(
        bdev: NonNull<bindings::block_device>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result {
        if buf.len() % PAGE != 0 {
            return Err(EINVAL);
        }
        let bio = Self::alloc(bdev, offset >> 9, buf.len() / PAGE, false, false)?;
        for _ in 0..buf.len() / PAGE {
            // SAFETY: `bio.0` is a bio we own, with room for one page per iteration; a
            // NULL source leaves the page to the read.
            check(unsafe {
                bindings::ferrofs_bio_add_page(bio.0.as_ptr(), core::ptr::null(), PAGE as u32)
            })?;
        }
        bio.submit_wait()?;
        // SAFETY: the read completed into the bio's pages, which hold `buf.len()` bytes;
        // the helper copies at most that many into `buf`.
        unsafe {
            bindings::ferrofs_bio_copy_out(bio.0.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        };
        Ok(())
    }

    /// Submits the bio and waits for it; the bio (still ours) is freed when dropped.
    pub(crate) fn submit_wait(&self) -> Result {
        // SAFETY: `self.0` is a built, unsubmitted bio we own; `submit_bio_wait` keeps our
        // reference valid on return.
        check(unsafe { bindings::submit_bio_wait(self.0.as_ptr()) })
    }

    /// Submits the bio without waiting; `inflight` counts it until its completion, which
    /// frees it and records any error there.
    pub(crate) fn submit(self, inflight: &InFlight) {
        let bio = self.0.as_ptr();
        core::mem::forget(self);
        // Ownership of the bio passes to its completion (`self` is forgotten above).
        // SAFETY: `bio` is a built bio; `inflight` outlives it, as a tracker waits for its
        // writes before it is freed.
        unsafe { bindings::ferrofs_bio_submit_tracked(bio, inflight.0.as_ptr()) };
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        // SAFETY: we own the bio and its pages (not submitted, or submitted and waited
        // for); they are freed once, here.
        unsafe { bindings::ferrofs_bio_free(self.0.as_ptr()) };
    }
}

/// A block plug held by the current task: the bios it submits meanwhile are merged where
/// they touch and sent together when it is dropped.
pub(crate) struct Plug(*mut bindings::blk_plug);

impl Plug {
    pub(crate) fn start() -> Self {
        // A NULL plug (no memory) is fine: `ferrofs_plug_finish` accepts it.
        // SAFETY: the plug goes on the current task and comes off in `drop` on the same
        // task (`Plug` holds a raw pointer, so it is neither `Send` nor `Sync`).
        Self(unsafe { bindings::ferrofs_plug_start() })
    }
}

impl Drop for Plug {
    fn drop(&mut self) {
        // SAFETY: the plug was started by `start` on this task and is finished once.
        unsafe { bindings::ferrofs_plug_finish(self.0) };
    }
}

/// The bio set writeback's bios come from (see `blockdev::WriteGroup`) and the module's
/// workqueue (read checks, checksum shares), set up while the module is loaded.
pub(crate) struct WriteBioSet(());

/// Whether a [`WriteBioSet`] exists (the bio set is one static).
static WRITE_BIO_SET_UP: AtomicBool = AtomicBool::new(false);

impl WriteBioSet {
    /// Sets it up; the module holds the value until it unloads. `EBUSY` if it is set up.
    pub(crate) fn new() -> Result<Self> {
        if WRITE_BIO_SET_UP.swap(true, Ordering::AcqRel) {
            return Err(EBUSY);
        }
        // SAFETY: not set up (checked just above); `drop` tears it down.
        if let Err(err) = check(unsafe { bindings::ferrofs_shim_init() }) {
            WRITE_BIO_SET_UP.store(false, Ordering::Release);
            return Err(err);
        }
        Ok(Self(()))
    }
}

impl Drop for WriteBioSet {
    fn drop(&mut self) {
        // SAFETY: set up by `new`; no bio of it is left: the module unloads only with no
        // filesystem mounted, and every device waits for its bios before it closes.
        unsafe { bindings::ferrofs_shim_exit() };
        WRITE_BIO_SET_UP.store(false, Ordering::Release);
    }
}
