// SPDX-License-Identifier: GPL-2.0

//! Super blocks being set up by `fill_super`.

use core::ptr::NonNull;

use kernel::error::{code::*, Result};
use kernel::str::CStr;

use super::bindings;
use super::buffer::BufferHead;

/// A super block of a block device that `fill_super` is initialising.
///
/// Only handed out by [`super::fs_type`] while the VFS holds `s_umount` for the new super
/// block and nothing else can see it yet.
pub(crate) struct NewSuperBlock<'a> {
    sb: &'a mut bindings::super_block,
}

impl<'a> NewSuperBlock<'a> {
    /// Wraps the super block passed to `fill_super`.
    ///
    /// # Safety
    ///
    /// `sb` must be a new, block-device backed super block that is exclusively the caller's
    /// for the lifetime `'a` (the VFS guarantees this inside `fill_super`).
    pub(crate) unsafe fn from_raw(sb: NonNull<bindings::super_block>) -> Self {
        // SAFETY: exclusivity and validity for `'a` are the caller's obligations above.
        let sb = unsafe { &mut *sb.as_ptr() };
        Self { sb }
    }

    /// The device name the kernel uses in its messages (`s_id`, e.g. "vda").
    pub(crate) fn id(&self) -> &CStr {
        // SAFETY: `s_id` is a NUL-terminated array inside the live super block; the helper
        // only returns its address, which stays valid while `self` borrows the super block.
        let ptr = unsafe { bindings::ferrofs_sb_id(&*self.sb) };
        // SAFETY: `s_id` is always NUL-terminated (the VFS fills it with `snprintf`-style
        // helpers) and lives as long as the borrow of `self`.
        unsafe { CStr::from_char_ptr(ptr) }
    }

    /// Sets the block size used for [`Self::read_block`]; fails if the device cannot do it.
    pub(crate) fn set_block_size(&mut self, size: u32) -> Result {
        let size = i32::try_from(size).map_err(|_| EINVAL)?;
        // SAFETY: `self.sb` is a valid block-device super block owned by us (invariant).
        let got = unsafe { bindings::sb_set_blocksize(&mut *self.sb, size) };
        if got == size {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// Reads block `nr` (in units of the block size) of the device.
    pub(crate) fn read_block(&self, nr: u64) -> Result<BufferHead> {
        let sb: *const bindings::super_block = &*self.sb;
        // SAFETY: `sb` is valid (invariant); `sb_bread` only reads through the super block
        // and returns NULL on I/O error or a block past the end of the device.
        let bh = unsafe { bindings::ferrofs_sb_bread(sb.cast_mut(), nr) };
        let bh = NonNull::new(bh).ok_or(EIO)?;
        // SAFETY: a non-NULL `sb_bread` result is an up-to-date buffer head with one
        // reference that is now ours.
        Ok(unsafe { BufferHead::from_raw(bh) })
    }
}
