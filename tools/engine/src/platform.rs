// SPDX-License-Identifier: GPL-2.0

//! The userspace platform shim of the engine: fallible vectors over `alloc::vec::Vec`.
//!
//! The kernel module has its own `platform` module with the same API over `KVec`
//! (`fs/ferrofs/platform.rs`). Only the primitives live here; everything else the engine
//! needs from a vector is built on them in `engine/mem.rs`, once for both hosts.

extern crate alloc;

use alloc::vec::Vec;

use crate::engine::error::{EngineError, EngineResult};

/// Gives other threads the CPU in the kernel's long engine loops; nothing to do here (the
/// host's scheduler preempts).
pub(crate) fn relax() {}

/// Continues a raw CRC-32C (no initial or final inversion) over `data`, with the CPU's
/// CRC instructions where it has them.
pub(crate) fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    // The crate's running value is the finished CRC of what came before.
    !crc32c::crc32c_append(!crc, data)
}

/// A growable array whose every allocation can fail without panicking.
pub struct FVec<T> {
    inner: Vec<T>,
}

impl<T> FVec<T> {
    /// An empty vector; allocates nothing.
    pub const fn new() -> Self {
        Self { inner: Vec::new() }
    }

    /// Makes room for `additional` more elements.
    pub fn try_reserve(&mut self, additional: usize) -> EngineResult<()> {
        self.inner
            .try_reserve(additional)
            .map_err(|_| EngineError::NoMemory)
    }

    /// Appends `value`, failing (and dropping nothing but `value`) if memory runs out.
    pub fn try_push(&mut self, value: T) -> EngineResult<()> {
        self.try_reserve(1)?;
        self.inner.push(value);
        Ok(())
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Option<T> {
        self.inner.pop()
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        &self.inner
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.inner
    }

    /// Shortens the vector to `len` elements, dropping the rest (no-op if not longer).
    pub fn truncate(&mut self, len: usize) {
        self.inner.truncate(len);
    }
}

impl<T: Clone> FVec<T> {
    /// Appends clones of `items`, in one allocation and one copy.
    pub fn try_extend_from_slice(&mut self, items: &[T]) -> EngineResult<()> {
        self.try_reserve(items.len())?;
        self.inner.extend_from_slice(items);
        Ok(())
    }

    /// Appends `n` clones of `value`, in one allocation and one fill.
    pub fn try_extend_with(&mut self, n: usize, value: T) -> EngineResult<()> {
        self.try_reserve(n)?;
        let len = self.inner.len().saturating_add(n);
        self.inner.resize(len, value);
        Ok(())
    }
}
