// SPDX-License-Identifier: GPL-2.0

//! Buffer heads: blocks of a block device read through its page cache.

use core::ptr::NonNull;

use super::bindings;

/// A referenced, up-to-date buffer head; the reference is dropped with the value.
pub(crate) struct BufferHead {
    ptr: NonNull<bindings::buffer_head>,
}

impl BufferHead {
    /// Takes ownership of one reference to an up-to-date buffer head.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a buffer head with an elevated reference count that the caller
    /// gives up, whose `b_data` covers `b_size` readable bytes while the reference is held.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::buffer_head>) -> Self {
        Self { ptr }
    }

    /// The block's contents.
    pub(crate) fn data(&self) -> &[u8] {
        // SAFETY: `self` holds a reference (type invariant), so the buffer head is live and
        // its fields are stable; `b_data` points to `b_size` bytes of an up-to-date page
        // that stays mapped while the reference is held, and nothing writes to it through
        // this crate while the shared borrow of `self` exists.
        unsafe {
            let bh = self.ptr.as_ptr();
            core::slice::from_raw_parts((*bh).b_data.cast::<u8>(), (*bh).b_size)
        }
    }
}

impl Drop for BufferHead {
    fn drop(&mut self) {
        // SAFETY: `self` owns one reference (type invariant), given back exactly once here.
        unsafe { bindings::ferrofs_brelse(self.ptr.as_ptr()) };
    }
}
