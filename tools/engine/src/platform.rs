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
}
