// SPDX-License-Identifier: GPL-2.0

//! File handles, for NFS export and `name_to_handle_at`/`open_by_handle_at`: the
//! `export_operations` table built from an [`ExportOperations`] implementation.
//!
//! A handle is the inode number and generation (`FILEID_INO64_GEN`, three 32-bit words),
//! and with the parent's too when the caller asks for it (`FILEID_INO64_GEN_PARENT`, six).
//! The generation tells an inode number used again after a remount from the one a handle
//! was made for.

use core::marker::PhantomData;

use kernel::ffi;
use kernel::prelude::*;

use super::bindings;
use super::dentry::Dentry;
use super::fs_type::FileSystem;
use super::inode::{Inode, InodeRef};
use super::super_block::SuperBlock;

/// `enum fid_type` values (include/linux/exportfs.h): 64-bit inode number and generation,
/// without and with the parent's.
const FILEID_INO64_GEN: ffi::c_int = 0x81;
const FILEID_INO64_GEN_PARENT: ffi::c_int = 0x82;
/// The type `encode_fh` returns when the caller's buffer is too small.
const FILEID_INVALID: ffi::c_int = 0xff;

/// Words of a handle without and with the parent.
const WORDS: usize = 3;
const WORDS_WITH_PARENT: usize = 6;

/// What a filesystem provides for its inodes to be found again from file handles.
pub(crate) trait ExportOperations {
    /// The filesystem whose inodes the handles name.
    type FileSystem: FileSystem;

    /// Inode `ino` of `sb`, if it still exists with generation `generation`; `ESTALE`
    /// if not.
    fn inode(
        sb: &SuperBlock<Self::FileSystem>,
        ino: u64,
        generation: u32,
    ) -> Result<InodeRef<Self::FileSystem>>;

    /// The parent directory of directory `dir`.
    fn parent(dir: &Inode<Self::FileSystem>) -> Result<InodeRef<Self::FileSystem>>;
}

/// The handle words of an inode: number (low word first) and generation.
fn encode<T: FileSystem>(inode: &Inode<T>, out: &mut [u32]) {
    let ino = inode.ino();
    for (slot, word) in out
        .iter_mut()
        .zip([ino as u32, (ino >> 32) as u32, inode.generation()])
    {
        *slot = word;
    }
}

/// (inode number, generation) from the three words at `at` of a handle, if it has them.
fn decode(words: &[u32], at: usize) -> Option<(u64, u32)> {
    let low = *words.get(at)?;
    let high = *words.get(at.checked_add(1)?)?;
    let generation = *words.get(at.checked_add(2)?)?;
    Some(((u64::from(high) << 32) | u64::from(low), generation))
}

/// The dentry of `inode` for the VFS: an existing alias or a new disconnected one.
fn obtain_alias<T: FileSystem>(inode: Result<InodeRef<T>>) -> *mut bindings::dentry {
    match inode {
        // SAFETY: `d_obtain_alias` takes over the inode reference (also on failure) and
        // returns a referenced dentry or an error pointer.
        Ok(inode) => unsafe { bindings::d_obtain_alias(inode.into_raw()) },
        Err(err) => super::inode_ops::err_ptr(err),
    }
}

/// The `export_operations` table of `T`, and its C entry points.
///
/// The exportfs code calls them with a live super block of filesystem `T::FileSystem`
/// ([`super::super_block::NewSuperBlock::set_export_ops`] installs the table only in
/// those), or a live inode or dentry of one, a handle buffer of `*max_len` words to
/// encode into, or a handle of `fh_len` words to decode; that is the `# Safety` contract
/// of each below.
pub(crate) struct ExportTable<T>(PhantomData<T>);

impl<T: ExportOperations> ExportTable<T> {
    /// The table, for `s_export_op`.
    pub(crate) const OPS: bindings::export_operations = bindings::export_operations {
        encode_fh: Some(Self::encode_fh),
        fh_to_dentry: Some(Self::fh_to_dentry),
        fh_to_parent: Some(Self::fh_to_parent),
        get_parent: Some(Self::get_parent),
        // SAFETY: an all-zero `export_operations` is valid: every other callback is
        // absent (exportfs's defaults apply) and no flag is set.
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// See [`ExportTable`]: `fh` holds `*max_len` words; `parent` is NULL or live.
    unsafe extern "C" fn encode_fh(
        inode: *mut bindings::inode,
        fh: *mut u32,
        max_len: *mut ffi::c_int,
        parent: *mut bindings::inode,
    ) -> ffi::c_int {
        let (words, kind) = if parent.is_null() {
            (WORDS, FILEID_INO64_GEN)
        } else {
            (WORDS_WITH_PARENT, FILEID_INO64_GEN_PARENT)
        };
        // SAFETY: `max_len` is valid for reads and writes (see [`ExportTable`]).
        let room = unsafe { *max_len };
        // `words` is 3 or 6: it fits any integer type.
        let need = words as ffi::c_int;
        // SAFETY: as above.
        unsafe { *max_len = need };
        if room < need {
            return FILEID_INVALID;
        }
        // SAFETY: `fh` holds at least `room >= words` words.
        let out = unsafe { core::slice::from_raw_parts_mut(fh, words) };
        // SAFETY: `inode` is live for the call, of a `T::FileSystem` super block (see
        // [`ExportTable`]).
        let inode = unsafe { Inode::<T::FileSystem>::from_raw(inode) };
        encode(inode, out);
        if !parent.is_null() {
            // SAFETY: a non-NULL `parent` is live for the call, of the same super block.
            let parent = unsafe { Inode::<T::FileSystem>::from_raw(parent) };
            if let Some(rest) = out.get_mut(WORDS..) {
                encode(parent, rest);
            }
        }
        kind
    }

    /// The dentry of the inode whose number and generation are the three words at `at` of
    /// a handle of `fh_len` words at `fid`; NULL (which exportfs reports as `ESTALE`) for a
    /// handle that is not ours or too short.
    ///
    /// # Safety
    ///
    /// `sb` is a live super block of filesystem `T::FileSystem` and `fid` holds `fh_len`
    /// words.
    unsafe fn find(
        sb: *mut bindings::super_block,
        fid: *mut bindings::fid,
        fh_len: ffi::c_int,
        fh_type: ffi::c_int,
        at: usize,
    ) -> *mut bindings::dentry {
        let len = match usize::try_from(fh_len) {
            Ok(len) if fh_type == FILEID_INO64_GEN || fh_type == FILEID_INO64_GEN_PARENT => len,
            _ => return core::ptr::null_mut(),
        };
        // SAFETY: the handle's words start at `fid` (its `raw` member, at offset 0) and
        // `fh_len` of them are there; `sb` is live and `T::FileSystem`'s (this function's
        // contract).
        let (sb, words) = unsafe {
            (
                SuperBlock::from_raw(sb),
                core::slice::from_raw_parts(fid.cast::<u32>(), len),
            )
        };
        match decode(words, at) {
            Some((ino, generation)) => obtain_alias(T::inode(sb, ino, generation)),
            None => core::ptr::null_mut(),
        }
    }

    /// # Safety
    ///
    /// See [`ExportTable`]: `sb` is live, `fid` holds `fh_len` words.
    unsafe extern "C" fn fh_to_dentry(
        sb: *mut bindings::super_block,
        fid: *mut bindings::fid,
        fh_len: ffi::c_int,
        fh_type: ffi::c_int,
    ) -> *mut bindings::dentry {
        // SAFETY: see [`ExportTable`].
        unsafe { Self::find(sb, fid, fh_len, fh_type, 0) }
    }

    /// # Safety
    ///
    /// See [`ExportTable`]: `sb` is live, `fid` holds `fh_len` words.
    unsafe extern "C" fn fh_to_parent(
        sb: *mut bindings::super_block,
        fid: *mut bindings::fid,
        fh_len: ffi::c_int,
        fh_type: ffi::c_int,
    ) -> *mut bindings::dentry {
        if fh_type != FILEID_INO64_GEN_PARENT {
            return core::ptr::null_mut();
        }
        // SAFETY: see [`ExportTable`].
        unsafe { Self::find(sb, fid, fh_len, fh_type, WORDS) }
    }

    /// # Safety
    ///
    /// See [`ExportTable`]: `child` is a live, positive dentry of a directory.
    unsafe extern "C" fn get_parent(child: *mut bindings::dentry) -> *mut bindings::dentry {
        // SAFETY: see [`ExportTable`].
        let child = unsafe { Dentry::<T::FileSystem>::from_raw(child) };
        match child.inode() {
            Some(dir) => obtain_alias(T::parent(dir)),
            None => super::inode_ops::err_ptr(ENOENT),
        }
    }
}
