// SPDX-License-Identifier: GPL-2.0

//! Super blocks: the one `fill_super` sets up, and live ones the operations are called on.

use core::ops::Deref;
use core::pin::Pin;
use core::ptr::NonNull;

use kernel::error::{code::*, Result};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::{ForeignOwnable, Opaque};

use super::bindings;
use super::buffer::BufferHead;
use super::inode::InodeRef;
use crate::fsops::FsInfo;

/// `SB_RDONLY` (`BIT(0)` in C, which bindgen cannot evaluate).
const SB_RDONLY: usize = 1;

/// A live ferrofs super block.
///
/// Only handed out by the VFS callbacks of this crate, for super blocks of the ferrofs
/// type, while the VFS keeps them alive.
#[repr(transparent)]
pub(crate) struct SuperBlock(Opaque<bindings::super_block>);

impl SuperBlock {
    /// Wraps a super block pointer passed by the VFS.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a live ferrofs super block for `'a`, whose `s_fs_info` (if set)
    /// was stored by [`NewSuperBlock::set_info`].
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `SuperBlock` is a transparent wrapper; validity is the caller's duty.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// The device name the kernel uses in its messages (`s_id`, e.g. "vda").
    pub(crate) fn id(&self) -> &CStr {
        // SAFETY: `s_id` is a NUL-terminated array inside the live super block; the helper
        // only returns its address.
        let ptr = unsafe { bindings::ferrofs_sb_id(self.as_ptr()) };
        // SAFETY: `s_id` is always NUL-terminated and lives as long as the super block.
        unsafe { CStr::from_char_ptr(ptr) }
    }

    /// Whether the super block is read-only now.
    pub(crate) fn is_read_only(&self) -> bool {
        // SAFETY: reading `s_flags` of a live super block; a racing remount changes it
        // under `s_umount`, which callers that care hold.
        let flags = unsafe { (*self.as_ptr()).s_flags };
        flags & SB_RDONLY != 0
    }

    /// The filesystem's state, set up by `fill_super`.
    pub(crate) fn info(&self) -> Result<Pin<&FsInfo>> {
        // SAFETY: reading a field of a live super block; `s_fs_info` is set once in
        // `fill_super` before any operation can run, and cleared only in `kill_sb`.
        let ptr = unsafe { (*self.as_ptr()).s_fs_info };
        if ptr.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: a non-NULL `s_fs_info` came from `into_foreign` in `set_info` and is only
        // given back in `take_info`, after the VFS stopped calling operations.
        Ok(unsafe { <Pin<KBox<FsInfo>> as ForeignOwnable>::borrow(ptr) })
    }

    /// Writes back every dirty inode and commits (`sync_filesystem`); the caller holds
    /// `s_umount`.
    pub(crate) fn sync(&self) -> Result {
        // SAFETY: the super block is live and the caller holds `s_umount`.
        let ret = unsafe { bindings::sync_filesystem(self.as_ptr()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Takes back the filesystem's state, at the end of `kill_sb`.
    ///
    /// # Safety
    ///
    /// No operation of the super block may run any more, and no borrow from
    /// [`Self::info`] may be alive.
    pub(crate) unsafe fn take_info(&self) -> Option<Pin<KBox<FsInfo>>> {
        let sb = self.as_ptr();
        // SAFETY: exclusive by the caller's promise.
        let ptr = unsafe { core::mem::replace(&mut (*sb).s_fs_info, core::ptr::null_mut()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: `ptr` came from `into_foreign` (see `info`) and is given back once.
        Some(unsafe { <Pin<KBox<FsInfo>> as ForeignOwnable>::from_foreign(ptr) })
    }
}

/// A super block of a block device that `fill_super` is initialising.
///
/// Only handed out by [`super::fs_type`] while the VFS holds `s_umount` for the new super
/// block and nothing else can see it yet.
pub(crate) struct NewSuperBlock<'a> {
    sb: &'a SuperBlock,
}

impl Deref for NewSuperBlock<'_> {
    type Target = SuperBlock;

    fn deref(&self) -> &SuperBlock {
        self.sb
    }
}

impl<'a> NewSuperBlock<'a> {
    /// Wraps the super block passed to `fill_super`.
    ///
    /// # Safety
    ///
    /// `sb` must be a new, block-device backed ferrofs super block that is exclusively the
    /// caller's for the lifetime `'a` (the VFS guarantees this inside `fill_super`).
    pub(crate) unsafe fn from_raw(sb: NonNull<bindings::super_block>) -> Self {
        // SAFETY: validity for `'a` is the caller's obligation; `s_fs_info` is NULL.
        let sb = unsafe { SuperBlock::from_raw(sb.as_ptr()) };
        Self { sb }
    }

    /// Sets the block size used for [`Self::read_block`]; fails if the device cannot do it.
    pub(crate) fn set_block_size(&mut self, size: u32) -> Result {
        let size = i32::try_from(size).map_err(|_| EINVAL)?;
        // SAFETY: the super block is a valid block-device super block owned by us.
        let got = unsafe { bindings::sb_set_blocksize(self.as_ptr(), size) };
        if got == size {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// Reads block `nr` (in units of the block size) of the device.
    pub(crate) fn read_block(&self, nr: u64) -> Result<BufferHead> {
        // SAFETY: the super block is valid; `sb_bread` returns NULL on I/O error or a
        // block past the end of the device.
        let bh = unsafe { bindings::ferrofs_sb_bread(self.as_ptr(), nr) };
        let bh = NonNull::new(bh).ok_or(EIO)?;
        // SAFETY: a non-NULL `sb_bread` result is an up-to-date buffer head with one
        // reference that is now ours.
        Ok(unsafe { BufferHead::from_raw(bh) })
    }

    /// Fills in the fields every ferrofs super block has: magic, operations, limits,
    /// time granularity, UUID.
    pub(crate) fn set_params(&mut self, magic: u64, max_bytes: u64, uuid: &[u8; 16]) {
        let sb = self.as_ptr();
        // SAFETY: the new super block is ours alone (type invariant); the operation tables
        // are statics that outlive every super block.
        unsafe {
            (*sb).s_magic = magic as usize;
            (*sb).s_op = &super::tables::SUPER_OPS.0;
            (*sb).s_xattr = super::tables::XATTR_HANDLERS.0.as_ptr().cast();
            (*sb).s_maxbytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
            (*sb).s_time_gran = 1;
            (*sb).s_time_min = i64::MIN;
            (*sb).s_time_max = i64::MAX;
            (*sb).s_uuid.b = *uuid;
            (*sb).s_uuid_len = 16;
        }
    }

    /// Hands the filesystem's state to the super block (freed in `kill_sb`).
    pub(crate) fn set_info(&mut self, info: Pin<KBox<FsInfo>>) {
        // SAFETY: the new super block is ours alone; `s_fs_info` is NULL until here.
        unsafe { (*self.as_ptr()).s_fs_info = info.into_foreign().cast_mut() };
    }

    /// Makes `root` the root directory.
    pub(crate) fn set_root(&mut self, root: InodeRef) -> Result {
        // SAFETY: `d_make_root` consumes the inode reference (also on failure).
        let dentry = unsafe { bindings::d_make_root(root.into_raw()) };
        if dentry.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: the new super block is ours alone.
        unsafe { (*self.as_ptr()).s_root = dentry };
        Ok(())
    }
}
