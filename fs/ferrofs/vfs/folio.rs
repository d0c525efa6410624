// SPDX-License-Identifier: GPL-2.0

//! Folios of a file's page cache, locked by the caller.

use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::ffi;
use kernel::prelude::*;

use super::address_space::Mapping;
use super::bindings;
use super::fs_type::FileSystem;
use super::inode::Inode;

/// A locked folio of the page cache of a file of filesystem type `T`.
///
/// # Invariants
///
/// A locked page-cache folio of an inode of a super block of filesystem type `T`, kept
/// locked and alive while the value is used.
pub(crate) struct LockedFolio<T: FileSystem>(NonNull<bindings::folio>, PhantomData<T>);

impl<T: FileSystem> LockedFolio<T> {
    /// Wraps a folio passed by the VFS locked.
    ///
    /// # Safety
    ///
    /// `ptr` must be a locked page-cache folio of a file of filesystem type `T`, kept
    /// locked and alive by the caller while the value is used.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::folio) -> Option<Self> {
        // INVARIANT: the caller's promise.
        NonNull::new(ptr).map(|ptr| Self(ptr, PhantomData))
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::folio {
        self.0.as_ptr()
    }

    /// Byte position in the file.
    pub(crate) fn pos(&self) -> u64 {
        // SAFETY: the folio is live (invariant).
        u64::try_from(unsafe { bindings::ferrofs_folio_pos(self.as_ptr()) }).unwrap_or(0)
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        // SAFETY: the folio is live (invariant).
        unsafe { bindings::ferrofs_folio_size(self.as_ptr()) }
    }

    /// The file the folio belongs to.
    pub(crate) fn inode(&self) -> &Inode<T> {
        // SAFETY: a locked page-cache folio keeps its mapping, whose host is the live
        // inode of a `T` super block (invariant).
        unsafe { Inode::from_raw(bindings::ferrofs_folio_inode(self.as_ptr())) }
    }

    /// Whether it holds the file's current contents.
    pub(crate) fn is_uptodate(&self) -> bool {
        // SAFETY: the folio is live (invariant).
        unsafe { bindings::ferrofs_folio_test_uptodate(self.as_ptr()) }
    }

    /// Marks it as holding the file's current contents.
    pub(crate) fn mark_uptodate(&self) {
        // SAFETY: the folio is locked (invariant), as marking it up to date requires.
        unsafe { bindings::ferrofs_folio_mark_uptodate(self.as_ptr()) }
    }

    /// Copies `src` into the folio at `offset` (clamped to the folio).
    pub(crate) fn write_at(&self, offset: usize, src: &[u8]) {
        let size = self.size();
        let len = src.len().min(size.saturating_sub(offset));
        if len == 0 {
            return;
        }
        // SAFETY: the folio is locked; `[offset, offset + len)` lies inside it and `src`
        // is readable for `len` bytes.
        unsafe { bindings::ferrofs_folio_copy_in(self.as_ptr(), offset, src.as_ptr().cast(), len) }
    }

    /// Copies the folio's bytes at `offset` into `dst` (clamped to the folio).
    pub(crate) fn read_at(&self, offset: usize, dst: &mut [u8]) {
        let size = self.size();
        let len = dst.len().min(size.saturating_sub(offset));
        if len == 0 {
            return;
        }
        // SAFETY: the folio is locked; `[offset, offset + len)` lies inside it and `dst`
        // is writable for `len` bytes.
        unsafe {
            bindings::ferrofs_folio_copy_out(dst.as_mut_ptr().cast(), self.as_ptr(), offset, len)
        }
    }

    /// Zeroes `[offset, offset + len)` (clamped to the folio).
    pub(crate) fn zero(&self, offset: usize, len: usize) {
        let size = self.size();
        let len = len.min(size.saturating_sub(offset));
        if len == 0 {
            return;
        }
        // SAFETY: the folio is locked and the range lies inside it.
        unsafe { bindings::ferrofs_folio_zero(self.as_ptr(), offset, len) }
    }

    /// Unlocks the folio (consumes the value: the folio may go at once).
    pub(crate) fn unlock(self) {
        // SAFETY: we hold the lock (invariant) and give it up once.
        unsafe { bindings::folio_unlock(self.as_ptr()) }
    }

    /// Marks the folio dirty (after a write into it).
    pub(crate) fn mark_dirty(&self) {
        // SAFETY: the folio is locked and in its mapping (invariant).
        unsafe { bindings::folio_mark_dirty(self.as_ptr()) };
    }

    /// Puts the folio under writeback (it is locked and was cleaned for I/O) and unlocks
    /// it; the writeback state keeps it in its mapping until [`WritebackFolio::end_writeback`].
    pub(crate) fn start_writeback(self) -> WritebackFolio<T> {
        let ptr = self.0;
        // SAFETY: the folio is locked and not under writeback (writeback_iter's contract).
        unsafe { bindings::ferrofs_folio_start_writeback(ptr.as_ptr()) };
        self.unlock();
        // INVARIANT: under writeback now, and `T`'s (invariant of `self`).
        WritebackFolio(ptr, PhantomData)
    }
}

/// A folio under writeback, unlocked.
///
/// # Invariants
///
/// A page-cache folio under writeback started by us, of a file of filesystem type `T`.
pub(crate) struct WritebackFolio<T: FileSystem>(NonNull<bindings::folio>, PhantomData<T>);

impl<T: FileSystem> WritebackFolio<T> {
    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::folio {
        self.0.as_ptr()
    }

    /// Records a failed write in the file's mapping, for `fsync` to report.
    pub(crate) fn set_error(&self, err: Error) {
        // SAFETY: a folio under writeback stays alive and in its mapping (truncation waits
        // for the writeback to end).
        unsafe { bindings::ferrofs_folio_set_error(self.0.as_ptr(), err.to_errno()) };
    }

    /// Ends the writeback.
    pub(crate) fn end_writeback(self) {
        // SAFETY: the folio is under writeback, started by `start_writeback`.
        unsafe { bindings::folio_end_writeback(self.0.as_ptr()) };
    }
}

/// A readahead request: a window of locked folios of one file, handed out in order.
///
/// # Invariants
///
/// The request of a running `readahead` call, for a file of filesystem type `T`.
pub(crate) struct Readahead<T: FileSystem>(NonNull<bindings::readahead_control>, PhantomData<T>);

impl<T: FileSystem> Readahead<T> {
    /// Wraps the VFS's readahead request.
    ///
    /// # Safety
    ///
    /// `ptr` must be the `readahead_control` the VFS passed to `readahead` for a file of
    /// filesystem type `T`, used only during that call.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::readahead_control) -> Option<Self> {
        // INVARIANT: the caller's promise.
        NonNull::new(ptr).map(|ptr| Self(ptr, PhantomData))
    }

    /// Byte position of the window in the file.
    pub(crate) fn pos(&self) -> u64 {
        // SAFETY: the request is live during the call (invariant).
        u64::try_from(unsafe { bindings::ferrofs_readahead_pos(self.0.as_ptr()) }).unwrap_or(0)
    }

    /// Length of the window in bytes (of the folios not handed out yet).
    pub(crate) fn len(&self) -> usize {
        // SAFETY: as above.
        unsafe { bindings::ferrofs_readahead_length(self.0.as_ptr()) }
    }

    /// The file read.
    pub(crate) fn inode(&self) -> &Inode<T> {
        // SAFETY: the request's mapping is the page cache of a live inode of a `T` super
        // block, which outlives the call (invariant).
        unsafe { Inode::from_raw(bindings::ferrofs_readahead_inode(self.0.as_ptr())) }
    }

    /// The next folio of the window, locked; the caller unlocks it once filled (or, on
    /// failure, leaves it not up to date for `read_folio` to try again).
    pub(crate) fn next_folio(&mut self) -> Option<LockedFolio<T>> {
        // SAFETY: the request is live (invariant); the folio returned is locked and stays
        // in the page cache, which holds a reference, until we unlock it.
        let folio = unsafe { bindings::ferrofs_readahead_folio(self.0.as_ptr()) };
        // SAFETY: as just said; a folio of the request's file, a `T` one.
        unsafe { LockedFolio::from_raw(folio) }
    }
}

/// The writeback request `writepages` serves.
pub(crate) struct WritebackControl(NonNull<bindings::writeback_control>);

impl WritebackControl {
    /// Wraps the VFS's writeback request.
    ///
    /// # Safety
    ///
    /// `ptr` must be the `writeback_control` the VFS passed to `writepages`, used only
    /// during that call.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::writeback_control) -> Option<Self> {
        NonNull::new(ptr).map(Self)
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::writeback_control {
        self.0.as_ptr()
    }

    /// Hands `write` each dirty folio of `mapping` the request covers, locked and cleaned
    /// for I/O (`writeback_iter`); `write` unlocks it (after starting its writeback, or
    /// giving it back with [`Self::redirty`]). Returns the first error.
    pub(crate) fn for_each_folio<T: FileSystem>(
        &self,
        mapping: &Mapping<T>,
        mut write: impl FnMut(LockedFolio<T>) -> Result,
    ) -> Result {
        let mut folio = core::ptr::null_mut();
        let mut error: ffi::c_int = 0;
        let mut first_error: ffi::c_int = 0;
        loop {
            // `writeback_iter` takes back the previous folio and hands out the next, locked.
            // SAFETY: request and mapping are live (invariants), both `writepages`'s.
            folio = unsafe {
                bindings::writeback_iter(mapping.as_ptr(), self.as_ptr(), folio, &mut error)
            };
            // SAFETY: as just said: a locked page-cache folio of `mapping`, a `T` one.
            let Some(locked) = (unsafe { LockedFolio::from_raw(folio) }) else {
                break;
            };
            error = write(locked).map_or_else(|e| e.to_errno(), |()| 0);
            if first_error == 0 {
                first_error = error;
            }
        }
        match if first_error != 0 { first_error } else { error } {
            0 => Ok(()),
            err => Err(Error::from_errno(err)),
        }
    }

    /// Reports to cgroup writeback that this request writes `folio`, so that a file
    /// dirtied mostly by another cgroup moves to that cgroup's writeback.
    pub(crate) fn account<T: FileSystem>(&self, folio: &WritebackFolio<T>) {
        // SAFETY: the request is live (invariant); the folio is under writeback by it,
        // so alive and in its mapping.
        unsafe { bindings::ferrofs_wbc_account_folio(self.as_ptr(), folio.as_ptr()) };
    }

    /// Gives back a folio `writeback_iter` handed out but that could not be written: dirty
    /// again for a later writeback, and unlocked.
    pub(crate) fn redirty<T: FileSystem>(&self, folio: LockedFolio<T>) {
        // SAFETY: the request is live (invariant); the folio is locked, was cleaned for
        // I/O by this writeback and is not under writeback.
        unsafe { bindings::ferrofs_folio_redirty(self.as_ptr(), folio.as_ptr()) };
        folio.unlock();
    }
}
