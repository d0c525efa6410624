// SPDX-License-Identifier: GPL-2.0

//! The kernel platform shim of the engine: fallible vectors over `KVVec` (`kvmalloc`: small
//! ones from the slab, large ones, like the reference-count changes of a transaction that
//! preallocated gigabytes, from vmalloc instead of failing with a high-order warning).
//!
//! The userspace tools have the same API over `alloc::vec::Vec`
//! (`tools/engine/src/platform.rs`). Only the primitives live here; everything else the
//! engine needs from a vector is built on them in `engine/mem.rs`, once for both hosts.
//! Allocations use `GFP_KERNEL`; callers that must not recurse into the filesystem enter
//! a `memalloc_nofs_save()` scope first.

use kernel::prelude::*;

use crate::engine::error::{EngineError, EngineResult};

/// Lets the scheduler run others if this thread has used its share: the engine calls it in
/// loops over many blocks (a commit of a gigabyte preallocation changes the reference
/// counts of hundreds of thousands), which would otherwise hold a CPU long enough for a
/// soft lockup. The engine runs in process context under a sleeping lock, where that is
/// allowed.
pub(crate) fn relax() {
    crate::vfs::task::relax();
}

/// Continues a raw CRC-32C (no initial or final inversion) over `data`, with the kernel's
/// `crc32c()` (`lib/libcrc32c.c`: the crypto API's fastest "crc32c", the CPU's CRC
/// instructions where the kernel is built with them).
pub(crate) fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    // The kernel takes an `unsigned int` length: longer runs go in pieces.
    for piece in data.chunks(1 << 30) {
        let (ptr, len) = (piece.as_ptr().cast(), piece.len() as u32);
        // SAFETY: `ptr` points at `piece`, a live, initialised slice of `len` bytes (at most
        // 2^30, so the cast is exact), which `crc32c()` only reads during the call.
        crc = unsafe { crate::vfs::bindings::crc32c(crc, ptr, len) };
    }
    crc
}

/// A growable array whose every allocation can fail without panicking.
pub struct FVec<T> {
    inner: KVVec<T>,
}

impl<T> FVec<T> {
    /// An empty vector; allocates nothing.
    pub const fn new() -> Self {
        Self {
            inner: KVVec::new(),
        }
    }

    /// Makes room for `additional` more elements.
    pub fn try_reserve(&mut self, additional: usize) -> EngineResult<()> {
        self.inner
            .reserve(additional, GFP_KERNEL)
            .map_err(|_| EngineError::NoMemory)
    }

    /// Appends `value`, failing (and dropping nothing but `value`) if memory runs out.
    pub fn try_push(&mut self, value: T) -> EngineResult<()> {
        self.inner
            .push(value, GFP_KERNEL)
            .map_err(|_| EngineError::NoMemory)
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Option<T> {
        let new_len = self.inner.len().checked_sub(1)?;
        // SAFETY: `new_len < len`: the slot is initialised, inside the allocation, read once.
        let value = unsafe { core::ptr::read(self.inner.as_ptr().add(new_len)) };
        // SAFETY: the slot at `new_len` was just moved out, so it must not be dropped again.
        unsafe { self.inner.set_len(new_len) };
        Some(value)
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        self.inner.as_slice()
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.inner.as_mut_slice()
    }

    /// Shortens the vector to `len` elements, dropping the rest (no-op if not longer).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.inner.len() {
            return;
        }
        let Some(tail) = self.inner.as_mut_slice().get_mut(len..) else {
            return;
        };
        let tail: *mut [T] = tail;
        // SAFETY: `len` is below the length; it is lowered before the tail is dropped, so a
        // panicking destructor cannot make the vector drop those elements again.
        unsafe { self.inner.set_len(len) };
        // SAFETY: the tail's elements are initialised, no longer part of the vector, and
        // dropped exactly once here.
        unsafe { core::ptr::drop_in_place(tail) };
    }
}

impl<T: Clone> FVec<T> {
    /// Appends clones of `items`, in one allocation and one copy.
    pub fn try_extend_from_slice(&mut self, items: &[T]) -> EngineResult<()> {
        self.inner
            .extend_from_slice(items, GFP_KERNEL)
            .map_err(|_| EngineError::NoMemory)
    }

    /// Appends `n` clones of `value`, in one allocation and one fill.
    pub fn try_extend_with(&mut self, n: usize, value: T) -> EngineResult<()> {
        self.inner
            .extend_with(n, value, GFP_KERNEL)
            .map_err(|_| EngineError::NoMemory)
    }
}
