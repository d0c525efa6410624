// SPDX-License-Identifier: GPL-2.0

//! The caller's memory of a read or write (`iov_iter`), as direct I/O moves it.

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::bindings;

/// The memory of one read or write request, consumed as it is copied.
///
/// # Invariants
///
/// A live iterator that only this value uses for `'a`.
pub(crate) struct IovIter<'a>(NonNull<bindings::iov_iter>, PhantomData<&'a mut ()>);

impl IovIter<'_> {
    /// Wraps the iterator of a request the VFS passes.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live iterator that nothing else uses for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: NonNull<bindings::iov_iter>) -> IovIter<'a> {
        // INVARIANT: the caller's promise.
        IovIter(ptr, PhantomData)
    }

    pub(super) fn as_ptr(&self) -> *mut bindings::iov_iter {
        self.0.as_ptr()
    }

    /// Bytes still to move.
    pub(crate) fn count(&self) -> usize {
        // SAFETY: the iterator is live (invariant); the helper only reads it.
        unsafe { bindings::ferrofs_iov_iter_count(self.as_ptr()) }
    }

    /// Whether the memory is the source of the data (a write), not where it goes.
    pub(crate) fn is_source(&self) -> bool {
        // SAFETY: as in `count`.
        unsafe { bindings::ferrofs_iov_iter_is_source(self.as_ptr()) }
    }

    /// The OR of the addresses and lengths of its pieces: a multiple of N if every piece
    /// is N-aligned.
    pub(crate) fn alignment(&self) -> u64 {
        // SAFETY: as in `count`.
        let alignment = unsafe { bindings::ferrofs_iov_iter_alignment(self.as_ptr()) };
        alignment as u64
    }

    /// Copies `data` into the memory (a read); the bytes copied, fewer if it faulted.
    pub(crate) fn copy_to(&mut self, data: &[u8]) -> usize {
        // SAFETY: the iterator is ours (invariant); `data` is live and initialised for
        // its length, which the helper reads during the call only.
        unsafe { bindings::ferrofs_copy_to_iter(data.as_ptr().cast(), data.len(), self.as_ptr()) }
    }

    /// Zeroes the next `len` bytes of the memory (a read of a hole); the bytes zeroed,
    /// fewer if it faulted.
    pub(crate) fn zero(&mut self, len: usize) -> usize {
        // SAFETY: the iterator is ours (invariant); the helper writes only the memory it
        // describes.
        unsafe { bindings::ferrofs_iov_iter_zero(len, self.as_ptr()) }
    }

    /// Copies the next `buf.len()` bytes of the memory into `buf` (a write); the bytes
    /// copied, fewer if it faulted.
    pub(crate) fn copy_from(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: the iterator is ours (invariant); `buf` is live and writable for its
        // length, which the helper writes during the call only.
        unsafe {
            bindings::ferrofs_copy_from_iter(buf.as_mut_ptr().cast(), buf.len(), self.as_ptr())
        }
    }
}
