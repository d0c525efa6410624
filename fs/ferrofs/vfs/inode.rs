// SPDX-License-Identifier: GPL-2.0

//! Inodes: borrowed ones the VFS passes in, counted references, and new inodes being
//! created.

use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::address_space::{AddressSpaceOperations, AddressSpaceTable, Mapping};
use super::bindings;
use super::file::{FileOperations, FileTable};
use super::fs_type::FileSystem;
use super::inode_ops::{InodeOperations, InodeTable};
use super::super_block::SuperBlock;
use crate::engine::inode::{self as ei, Timespec};

fn to_ts(t: &bindings::timespec64) -> Timespec {
    Timespec {
        sec: t.tv_sec,
        nsec: u32::try_from(t.tv_nsec).unwrap_or(0),
    }
}

pub(crate) fn from_ts(t: &Timespec) -> bindings::timespec64 {
    bindings::timespec64 {
        tv_sec: t.sec,
        tv_nsec: t.nsec as isize,
    }
}

/// The mount's id mapping passed to an operation (only the initial mapping is supported:
/// ferrofs does not allow id-mapped mounts).
#[derive(Clone, Copy)]
pub(crate) struct Idmap(*mut bindings::mnt_idmap);

impl Idmap {
    /// Wraps the idmap argument of an operation.
    pub(crate) fn from_raw(ptr: *mut bindings::mnt_idmap) -> Self {
        Self(ptr)
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(self) -> *mut bindings::mnt_idmap {
        self.0
    }
}

/// How much of a VFS inode to refresh from the engine's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Everything, size and times included (new inodes, directories).
    All,
    /// Owner, mode, links, change time and blocks: for files whose size and data times
    /// the page cache may be ahead on.
    Meta,
}

/// A VFS inode of a super block of filesystem type `T`.
///
/// # Invariants
///
/// An inode of a super block of filesystem type `T`, alive (referenced or locked) while
/// the value is borrowed.
#[repr(transparent)]
pub(crate) struct Inode<T: FileSystem>(Opaque<bindings::inode>, PhantomData<T>);

impl<T: FileSystem> Inode<T> {
    /// Wraps an inode pointer passed by the VFS.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an inode of a super block of filesystem type `T` that stays
    /// alive (referenced or locked by the caller) for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::inode) -> &'a Self {
        // SAFETY: transparent wrapper (the marker takes no room); validity for `'a`, and
        // the type, are the caller's duty.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// The inode number (the engine's), 0 for an inode not yet created in the engine.
    pub(crate) fn ino(&self) -> u64 {
        // SAFETY: `i_ino` of a live inode; set once before the inode is hashed.
        unsafe { (*self.as_ptr()).i_ino as u64 }
    }

    /// The generation (`i_generation`): which inode of this number it is.
    pub(crate) fn generation(&self) -> u32 {
        // SAFETY: the inode is live (invariant); the field is set when the inode is filled.
        unsafe { (*self.as_ptr()).i_generation }
    }

    /// Type and permission bits.
    pub(crate) fn mode(&self) -> u32 {
        // SAFETY: reading a field of a live inode.
        u32::from(unsafe { (*self.as_ptr()).i_mode })
    }

    /// Link count.
    pub(crate) fn nlink(&self) -> u32 {
        // SAFETY: reading a field of a live inode.
        unsafe { (*self.as_ptr()).__bindgen_anon_1.i_nlink }
    }

    /// The file's page cache.
    pub(crate) fn mapping(&self) -> &Mapping<T> {
        // SAFETY: `i_mapping` of a live inode is set when the inode is made and points to
        // its page cache, which lives as long as the inode; both are of a `T` super block.
        unsafe { Mapping::from_raw((*self.as_ptr()).i_mapping) }
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: `i_size_read` reads the size of a live inode consistently.
        let size = unsafe { bindings::ferrofs_i_size_read(self.as_ptr()) };
        u64::try_from(size).unwrap_or(0)
    }

    /// Sets the size (the caller holds the inode lock, as for every size change).
    pub(crate) fn set_size(&self, size: u64) {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        // SAFETY: the inode is live; writers are serialised by the inode lock.
        unsafe { bindings::ferrofs_i_size_write(self.as_ptr(), size) };
    }

    /// Access, modification and change times.
    pub(crate) fn times(&self) -> (Timespec, Timespec, Timespec) {
        let mut a = bindings::timespec64::default();
        let mut m = bindings::timespec64::default();
        let mut c = bindings::timespec64::default();
        // SAFETY: the inode is live; the helper writes the three out-parameters.
        unsafe { bindings::ferrofs_inode_get_times(self.as_ptr(), &mut a, &mut m, &mut c) };
        (to_ts(&a), to_ts(&m), to_ts(&c))
    }

    /// The current time, truncated to the filesystem's granularity.
    pub(crate) fn now(&self) -> Timespec {
        // SAFETY: `current_time` only reads the inode's super block.
        let t = unsafe { bindings::current_time(self.as_ptr()) };
        to_ts(&t)
    }

    /// The super block the inode belongs to.
    pub(crate) fn super_block(&self) -> &SuperBlock<T> {
        // SAFETY: `i_sb` of a live inode is its super block, alive while the inode is, and
        // of filesystem type `T` (invariant).
        unsafe { SuperBlock::from_raw((*self.as_ptr()).i_sb) }
    }

    /// Copies the engine's view of the inode into the VFS inode.
    pub(crate) fn refresh(&self, e: &ei::Inode, what: Refresh) {
        let inode = self.as_ptr();
        let blocks = e.bytes / 512;
        // SAFETY: the inode is live and the caller holds what serialises its attribute
        // changes (the inode lock, or the inode is new and not visible yet).
        unsafe {
            (*inode).i_mode = (e.mode & 0xffff) as u16;
            bindings::ferrofs_i_uid_write(inode, e.uid);
            bindings::ferrofs_i_gid_write(inode, e.gid);
            bindings::set_nlink(inode, e.nlink);
            (*inode).i_blocks = blocks;
            (*inode).i_generation = e.generation as u32;
        }
        let (atime, mtime, _) = self.times();
        let (atime, mtime) = if what == Refresh::All {
            self.set_size(e.size);
            (e.atime, e.mtime)
        } else {
            (atime, mtime)
        };
        // SAFETY: as above; the helper only stores the three times.
        unsafe {
            bindings::ferrofs_inode_set_times(
                inode,
                &from_ts(&atime),
                &from_ts(&mtime),
                &from_ts(&e.ctime),
            )
        };
    }

    /// Applies the inode flags (`FS_IOC_SETFLAGS` bits) the VFS enforces itself:
    /// synchronous writes, no access times, append-only, immutable.
    pub(crate) fn apply_flags(&self, flags: u64) {
        const FS_SYNC_FL: u64 = 0x8;
        const FS_IMMUTABLE_FL: u64 = 0x10;
        const FS_APPEND_FL: u64 = 0x20;
        const FS_NOATIME_FL: u64 = 0x80;
        const S_SYNC: u32 = 1 << 0;
        const S_NOATIME: u32 = 1 << 1;
        const S_APPEND: u32 = 1 << 2;
        const S_IMMUTABLE: u32 = 1 << 3;
        let mut set = 0;
        for (fs_flag, s_flag) in [
            (FS_SYNC_FL, S_SYNC),
            (FS_NOATIME_FL, S_NOATIME),
            (FS_APPEND_FL, S_APPEND),
            (FS_IMMUTABLE_FL, S_IMMUTABLE),
        ] {
            if flags & fs_flag != 0 {
                set |= s_flag;
            }
        }
        let mask = S_SYNC | S_NOATIME | S_APPEND | S_IMMUTABLE;
        // SAFETY: the inode is live; `inode_set_flags` updates `i_flags` atomically.
        unsafe { bindings::inode_set_flags(self.as_ptr(), set, mask) };
    }

    /// Takes the inode lock (`i_rwsem`, exclusive) until the guard goes.
    pub(crate) fn lock(&self) -> InodeLockGuard<'_, T> {
        // SAFETY: the inode is live; the guard releases the lock it takes here.
        unsafe { bindings::ferrofs_inode_lock(self.as_ptr()) };
        InodeLockGuard(self)
    }

    /// Whether the file may grow to `size` bytes (`inode_newsize_ok`): `EFBIG` past the
    /// caller's `RLIMIT_FSIZE` (which also sends it `SIGXFSZ`) or the largest file size.
    pub(crate) fn newsize_ok(&self, size: u64) -> Result {
        let size = i64::try_from(size).map_err(|_| EFBIG)?;
        // SAFETY: the inode is live; the function only reads it and the current task's
        // limits.
        to_result(unsafe { bindings::inode_newsize_ok(self.as_ptr(), size) })
    }

    /// Drops the page cache past `size` and sets the size (`truncate_setsize`).
    pub(crate) fn truncate_page_cache(&self, size: u64) {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        // SAFETY: the caller holds the inode lock, as `truncate_setsize` requires.
        unsafe { bindings::truncate_setsize(self.as_ptr(), size) };
    }

    /// Writes back and waits for the dirty page cache of `[start, end]`.
    pub(crate) fn write_and_wait(&self, start: u64, end: u64) -> Result {
        let start = i64::try_from(start).unwrap_or(i64::MAX);
        let end = i64::try_from(end).unwrap_or(i64::MAX);
        // SAFETY: the inode is live, so is its mapping.
        let ret = unsafe {
            bindings::filemap_write_and_wait_range((*self.as_ptr()).i_mapping, start, end)
        };
        to_result(ret)
    }

    /// Writes the inode's dirty metadata (`write_inode`) and waits.
    pub(crate) fn sync_metadata(&self) -> Result {
        // SAFETY: the inode is live.
        to_result(unsafe { bindings::sync_inode_metadata(self.as_ptr(), 1) })
    }

    /// Takes one more reference (`ihold`), for a new name of the inode.
    pub(crate) fn hold(&self) -> InodeRef<T> {
        // SAFETY: the inode is live and referenced by the caller, so `ihold` is allowed.
        unsafe { bindings::ihold(self.as_ptr()) };
        // INVARIANT: the reference just taken, to an inode of `T`'s (invariant of `self`).
        InodeRef(NonNull::from(&self.0).cast(), PhantomData)
    }

    /// Sets the link count.
    pub(crate) fn set_nlink(&self, nlink: u32) {
        // SAFETY: the inode is live; the caller holds its lock or it is new.
        unsafe { bindings::set_nlink(self.as_ptr(), nlink) };
    }

    /// Owner: (uid, gid).
    pub(crate) fn owner(&self) -> (u32, u32) {
        let inode = self.as_ptr();
        // SAFETY: reading the ids of a live inode.
        unsafe {
            (
                bindings::ferrofs_i_uid_read(inode),
                bindings::ferrofs_i_gid_read(inode),
            )
        }
    }

    /// Sets the block count from the bytes the engine says the inode references.
    pub(crate) fn set_blocks(&self, bytes: u64) {
        // SAFETY: the inode is live; a racing `stat` reads either value (a plain store of
        // an aligned 64-bit field).
        unsafe { (*self.as_ptr()).i_blocks = bytes / 512 };
    }

    /// Sets mtime and ctime (a change of contents).
    pub(crate) fn touch_mtime(&self, now: Timespec) {
        let (atime, _, _) = self.times();
        // SAFETY: the inode is live and the caller holds its lock.
        unsafe {
            bindings::ferrofs_inode_set_times(
                self.as_ptr(),
                &from_ts(&atime),
                &from_ts(&now),
                &from_ts(&now),
            )
        };
    }

    /// Drops the page cache of `[start, end]` (bytes, inclusive end).
    pub(crate) fn truncate_page_cache_range(&self, start: u64, end: u64) {
        let start = i64::try_from(start).unwrap_or(i64::MAX);
        let end = i64::try_from(end).unwrap_or(i64::MAX);
        // SAFETY: the caller holds the inode lock, as `truncate_pagecache_range` requires.
        unsafe { bindings::truncate_pagecache_range(self.as_ptr(), start, end) };
    }

    /// Sets the link count to zero (a directory removed, a file whose last name went).
    pub(crate) fn clear_nlink(&self) {
        // SAFETY: the inode is live; the caller holds its lock.
        unsafe { bindings::clear_nlink(self.as_ptr()) };
    }
}

/// The inode lock, held (see [`Inode::lock`]).
pub(crate) struct InodeLockGuard<'a, T: FileSystem>(&'a Inode<T>);

impl<T: FileSystem> Drop for InodeLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: taken in `Inode::lock`, released once.
        unsafe { bindings::ferrofs_inode_unlock(self.0.as_ptr()) };
    }
}

/// An inode being set up: new (locked `I_NEW`, or not hashed yet), so not visible to
/// other threads. Only this state may choose the inode's operations, those of its
/// filesystem `T`.
///
/// # Invariants
///
/// A new inode of a super block of filesystem type `T`, ours alone.
pub(crate) struct InitInode<'a, T: FileSystem>(&'a Inode<T>);

impl<T: FileSystem> Deref for InitInode<'_, T> {
    type Target = Inode<T>;

    fn deref(&self) -> &Inode<T> {
        self.0
    }
}

impl<T: FileSystem> InitInode<'_, T> {
    /// A directory: inode operations `I`, file operations `F`.
    pub(crate) fn set_dir_ops<I, F>(&self)
    where
        I: InodeOperations<FileSystem = T>,
        F: FileOperations<FileSystem = T>,
    {
        let inode = self.as_ptr();
        // SAFETY: the inode is new and ours (type invariant); the tables are constants
        // promoted to static memory, which outlives every inode, and are `T`'s, as the
        // inode is.
        unsafe {
            (*inode).i_op = &InodeTable::<I>::OPS;
            (*inode).__bindgen_anon_3.i_fop = &FileTable::<F>::OPS;
        }
    }

    /// A regular file: inode operations `I`, file operations `F`, page-cache operations
    /// `A`.
    pub(crate) fn set_file_ops<I, F, A>(&self)
    where
        I: InodeOperations<FileSystem = T>,
        F: FileOperations<FileSystem = T>,
        A: AddressSpaceOperations<FileSystem = T>,
    {
        let inode = self.as_ptr();
        // SAFETY: as in `set_dir_ops`; a new inode's `i_mapping` is its own `i_data`.
        unsafe {
            (*inode).i_op = &InodeTable::<I>::OPS;
            (*inode).__bindgen_anon_3.i_fop = &FileTable::<F>::OPS;
            (*(*inode).i_mapping).a_ops = &AddressSpaceTable::<A>::OPS;
        }
    }

    /// A symbolic link: inode operations `I` (with `get_link`).
    pub(crate) fn set_symlink_ops<I: InodeOperations<FileSystem = T>>(&self) {
        // SAFETY: as in `set_dir_ops`.
        unsafe { (*self.as_ptr()).i_op = &InodeTable::<I>::OPS };
    }

    /// A device node, FIFO or socket (`mode`; `rdev` in the `new_encode_dev` form): inode
    /// operations `I`, and the VFS's file operations for the kind.
    pub(crate) fn set_special_ops<I: InodeOperations<FileSystem = T>>(&self, mode: u32, rdev: u32) {
        let inode = self.as_ptr();
        // SAFETY: as in `set_dir_ops`; `init_special_inode` sets the VFS's file
        // operations for the kind and the device number.
        unsafe {
            (*inode).i_op = &InodeTable::<I>::OPS;
            let dev = bindings::ferrofs_decode_dev(rdev);
            bindings::init_special_inode(inode, (mode & 0xffff) as u16, dev);
        }
    }
}

/// A new inode made by [`NewInode::finish`]: hashed, still locked as new until it is
/// bound to a name ([`super::dentry::Dentry::instantiate_new`]) or an open file
/// ([`super::file::TmpFile::finish`]). Dropped unbound, it is unlocked and put.
///
/// # Invariants
///
/// Holds a reference to a new inode, locked `I_NEW` by us, of a super block of
/// filesystem type `T`.
pub(crate) struct CreatedInode<T: FileSystem>(NonNull<bindings::inode>, PhantomData<T>);

impl<T: FileSystem> Deref for CreatedInode<T> {
    type Target = Inode<T>;

    fn deref(&self) -> &Inode<T> {
        // SAFETY: we hold a reference (type invariant), which keeps the inode alive; it is
        // of `T`'s.
        unsafe { Inode::from_raw(self.0.as_ptr()) }
    }
}

impl<T: FileSystem> CreatedInode<T> {
    /// Gives the reference, and the new-inode lock, to the caller.
    pub(crate) fn into_raw(self) -> *mut bindings::inode {
        let ptr = self.0.as_ptr();
        core::mem::forget(self);
        ptr
    }
}

impl<T: FileSystem> Drop for CreatedInode<T> {
    fn drop(&mut self) {
        // SAFETY: the inode is new and locked by us (type invariant): unlocking makes it
        // an ordinary inode, and then our reference goes.
        unsafe {
            bindings::unlock_new_inode(self.0.as_ptr());
            bindings::iput(self.0.as_ptr());
        }
    }
}

/// A counted reference to an inode, dropped with `iput`.
///
/// # Invariants
///
/// Holds one reference to an inode of a super block of filesystem type `T`.
pub(crate) struct InodeRef<T: FileSystem>(NonNull<bindings::inode>, PhantomData<T>);

impl<T: FileSystem> Deref for InodeRef<T> {
    type Target = Inode<T>;

    fn deref(&self) -> &Inode<T> {
        // SAFETY: the reference keeps the inode alive; it is of `T`'s (type invariant).
        unsafe { Inode::from_raw(self.0.as_ptr()) }
    }
}

impl<T: FileSystem> InodeRef<T> {
    /// Gives the reference to the caller (for functions that consume it).
    pub(crate) fn into_raw(self) -> *mut bindings::inode {
        let ptr = self.0.as_ptr();
        core::mem::forget(self);
        ptr
    }
}

impl<T: FileSystem> Drop for InodeRef<T> {
    fn drop(&mut self) {
        // SAFETY: we own one reference, given back once.
        unsafe { bindings::iput(self.0.as_ptr()) };
    }
}

/// Gets the VFS inode for engine inode `ino`, filling a new one with `fill`.
pub(crate) fn iget<T: FileSystem>(
    sb: &SuperBlock<T>,
    ino: u64,
    fill: impl FnOnce(&InitInode<'_, T>) -> Result,
) -> Result<InodeRef<T>> {
    let ino = usize::try_from(ino).map_err(|_| EINVAL)?;
    // SAFETY: `sb` is live; `iget_locked` returns a referenced inode or NULL.
    let ptr = unsafe { bindings::iget_locked(sb.as_ptr(), ino) };
    let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
    // SAFETY: reading the state of the inode we hold.
    if !unsafe { bindings::ferrofs_inode_is_new(ptr.as_ptr()) } {
        // INVARIANT: our reference, to an inode of `sb`, a super block of `T`'s.
        return Ok(InodeRef(ptr, PhantomData));
    }
    // INVARIANT: a new inode of `sb` is locked (I_NEW) and ours to fill.
    // SAFETY: as just said; we hold a reference, and `sb` is of `T`'s.
    let inode = InitInode(unsafe { Inode::from_raw(ptr.as_ptr()) });
    match fill(&inode) {
        Ok(()) => {
            // SAFETY: the new inode is filled; this makes it visible.
            unsafe { bindings::unlock_new_inode(ptr.as_ptr()) };
            // INVARIANT: as above.
            Ok(InodeRef(ptr, PhantomData))
        }
        Err(err) => {
            // SAFETY: `iget_failed` marks the new inode bad, unlocks and drops it.
            unsafe { bindings::iget_failed(ptr.as_ptr()) };
            Err(err)
        }
    }
}

/// A VFS inode for an object being created: owner and mode decided by the VFS rules
/// (`inode_init_owner`: set-group-ID directories and so on), engine inode not made yet.
///
/// # Invariants
///
/// The only reference to a new, unhashed inode of a super block of filesystem type `T`.
pub(crate) struct NewInode<T: FileSystem>(InodeRef<T>);

impl<T: FileSystem> NewInode<T> {
    /// Allocates it in the super block of `dir`, for `mode`.
    pub(crate) fn new(idmap: Idmap, dir: &Inode<T>, mode: u32) -> Result<Self> {
        let sb = dir.super_block();
        // SAFETY: `sb` is live; `new_inode` returns a referenced inode (number 0) or NULL.
        let ptr = unsafe { bindings::new_inode(sb.as_ptr()) };
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        // INVARIANT: the reference `new_inode` returned, to a new inode of `dir`'s super
        // block, a `T` one.
        let new = Self(InodeRef(ptr, PhantomData));
        // SAFETY: the inode is new and ours; `dir` is live.
        unsafe {
            bindings::inode_init_owner(
                idmap.as_ptr(),
                ptr.as_ptr(),
                dir.as_ptr(),
                (mode & 0xffff) as u16,
            )
        };
        Ok(new)
    }

    /// The mode the rules chose.
    pub(crate) fn mode(&self) -> u32 {
        self.0.mode()
    }

    /// The ACLs the new inode inherits from `dir` (its default ACL, `posix_acl_create`),
    /// which also narrow its mode (by the default ACL, or by the umask if there is none).
    pub(crate) fn inherit_acls(&self, dir: &Inode<T>) -> Result<super::acl::Inherited> {
        // SAFETY: the inode is new and ours alone until `finish` hashes it.
        unsafe { super::acl::inherit(dir, self.0.as_ptr()) }
    }

    /// The owner the rules chose: (uid, gid).
    pub(crate) fn owner(&self) -> (u32, u32) {
        let inode = self.0.as_ptr();
        // SAFETY: the inode is live and ours.
        unsafe {
            (
                bindings::ferrofs_i_uid_read(inode),
                bindings::ferrofs_i_gid_read(inode),
            )
        }
    }

    /// Binds the VFS inode to the engine inode `ino` just created, set up by `init`
    /// (operations, attributes), and hashes it.
    pub(crate) fn finish(
        self,
        ino: u64,
        init: impl FnOnce(&InitInode<'_, T>),
    ) -> Result<CreatedInode<T>> {
        let inode = self.0.as_ptr();
        let ino = usize::try_from(ino).map_err(|_| EINVAL)?;
        // SAFETY: the inode is new and ours; nothing else knows the number yet.
        unsafe { (*inode).i_ino = ino };
        // INVARIANT: new, not hashed yet, and `T`'s (invariant of `self`).
        init(&InitInode(&self.0));
        // SAFETY: the inode is set up; `insert_inode_locked` hashes it, locked (I_NEW).
        let ret = unsafe { bindings::insert_inode_locked(inode) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // The reference moves from `self` to the result.
        let ptr = self.0 .0;
        core::mem::forget(self);
        // INVARIANT: hashed and locked `I_NEW` by `insert_inode_locked`, and `T`'s.
        Ok(CreatedInode(ptr, PhantomData))
    }
}
