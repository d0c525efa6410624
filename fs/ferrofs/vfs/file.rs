// SPDX-License-Identifier: GPL-2.0

//! Open files, and the file operations a filesystem provides for them.

use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::error::{from_result, to_result, VTABLE_DEFAULT_ERROR};
use kernel::ffi;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::bindings;
use super::dentry::DirContext;
use super::fs_type::FileSystem;
use super::inode::{CreatedInode, Inode};

/// `lseek` whence: the next data at or after the offset.
pub(crate) const SEEK_DATA: i32 = 3;
/// `lseek` whence: the next hole at or after the offset.
pub(crate) const SEEK_HOLE: i32 = 4;

/// An open file the VFS passes to an operation.
///
/// # Invariants
///
/// A file open on an inode of a super block of filesystem type `T`, open while the value
/// is borrowed.
#[repr(transparent)]
pub(crate) struct File<T: FileSystem>(Opaque<bindings::file>, PhantomData<T>);

impl<T: FileSystem> File<T> {
    /// Wraps a file pointer passed by the VFS.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a file open on an inode of a super block of filesystem type
    /// `T` that stays open for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::file) -> &'a Self {
        // SAFETY: transparent wrapper (the marker takes no room); validity for `'a`, and
        // the type, are the caller's duty.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::file {
        self.0.get()
    }

    /// The inode the file is open on.
    pub(crate) fn inode(&self) -> &Inode<T> {
        // SAFETY: an open file holds its inode alive, one of a `T` super block (type
        // invariant).
        unsafe { Inode::from_raw(bindings::ferrofs_file_inode(self.as_ptr())) }
    }

    /// Writes back and waits for the dirty page cache of `[start, end]`, and reports a
    /// write-back error this file has not seen yet.
    pub(crate) fn write_and_wait_range(&self, start: i64, end: i64) -> Result {
        // SAFETY: the file is open (invariant).
        to_result(unsafe { bindings::file_write_and_wait_range(self.as_ptr(), start, end) })
    }

    /// Write access to the file's mount for a change that is not a write to the file (an
    /// ioctl that changes the filesystem): `EROFS` on a read-only mount or one being
    /// remounted so; held until the guard goes.
    pub(crate) fn want_write(&self) -> Result<WriteAccess<'_, T>> {
        // SAFETY: the file is open for the call (type invariant).
        to_result(unsafe { bindings::mnt_want_write_file(self.as_ptr()) })?;
        Ok(WriteAccess(self))
    }

    /// Updates the times of a file about to be changed and drops its set-id bits
    /// (`file_modified`); the caller holds the inode lock.
    pub(crate) fn modified(&self) -> Result {
        // SAFETY: the file is open (invariant), for writing: the VFS checked it before
        // the operations that change contents.
        to_result(unsafe { bindings::file_modified(self.as_ptr()) })
    }

    /// A word the filesystem keeps with this open file (its `private_data`, which
    /// nothing else uses on a file of `T`): 0 until [`Self::set_cookie`].
    pub(crate) fn cookie(&self) -> usize {
        // SAFETY: the file is open (invariant); the helper reads the word once, so a
        // concurrent `set_cookie` is no data race.
        let cookie = unsafe { bindings::ferrofs_file_cookie(self.as_ptr()) };
        // `unsigned long` is pointer-sized on every Linux target.
        cookie as usize
    }

    /// Sets the word [`Self::cookie`] returns.
    pub(crate) fn set_cookie(&self, cookie: usize) {
        // Nothing reads `private_data` of a file of `T` as a pointer: any value is sound.
        // SAFETY: the file is open (invariant); the helper writes the word once.
        unsafe { bindings::ferrofs_file_set_cookie(self.as_ptr(), cookie as _) }
    }

    /// The VFS's own `llseek` (`SEEK_SET`, `SEEK_CUR`, `SEEK_END`).
    pub(crate) fn generic_llseek(&self, offset: i64, whence: i32) -> Result<i64> {
        // SAFETY: the file is open (invariant).
        let pos = unsafe { bindings::generic_file_llseek(self.as_ptr(), offset, whence) };
        if pos < 0 {
            return Err(Error::from_errno(
                i32::try_from(pos).unwrap_or(EINVAL.to_errno()),
            ));
        }
        Ok(pos)
    }

    /// Moves the file position to `pos` (checked against the size limit).
    pub(crate) fn set_pos(&self, pos: u64) -> Result<i64> {
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let file = self.as_ptr();
        // SAFETY: the file is open (invariant), so its inode and super block are live.
        let max = unsafe { (*(*bindings::ferrofs_file_inode(file)).i_sb).s_maxbytes };
        // SAFETY: as above; `vfs_setpos` takes the file's position lock itself.
        let got = unsafe { bindings::vfs_setpos(file, pos, max) };
        if got < 0 {
            return Err(Error::from_errno(
                i32::try_from(got).unwrap_or(EINVAL.to_errno()),
            ));
        }
        Ok(got)
    }
}

/// The file of an `O_TMPFILE` open, handed to `tmpfile`: not open yet (it has no inode
/// until [`Self::finish`] gives it one), so none of [`File`]'s methods apply to it.
///
/// # Invariants
///
/// The file of the running `tmpfile` call, being opened in a directory of a super block
/// of filesystem type `T`, with its dentry, negative until `finish` (which consumes the
/// value, so it runs at most once).
pub(crate) struct TmpFile<'a, T: FileSystem> {
    file: NonNull<bindings::file>,
    _call: PhantomData<(&'a bindings::file, T)>,
}

impl<T: FileSystem> TmpFile<'_, T> {
    /// Wraps the file passed to `tmpfile`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the file `tmpfile` got, being opened with `O_TMPFILE` in a directory
    /// of a super block of filesystem type `T`, used only during that call.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::file) -> Option<Self> {
        // INVARIANT: the caller's promise.
        NonNull::new(ptr).map(|file| Self {
            file,
            _call: PhantomData,
        })
    }

    /// Binds the new inode to the file's dentry and finishes the open.
    pub(crate) fn finish(self, inode: CreatedInode<T>) -> Result {
        let (file, inode) = (self.file.as_ptr(), inode.into_raw());
        // SAFETY: the file is being opened with O_TMPFILE and has its dentry, negative
        // until now (invariant); `d_tmpfile` takes our reference to the new, locked inode,
        // an inode of the dentry's super block (both `T`'s).
        unsafe { bindings::d_tmpfile(file, inode) };
        // SAFETY: the inode is new and locked, bound to the file's dentry, which keeps it
        // alive; this makes it visible, as the VFS's tmpfile protocol asks.
        unsafe { bindings::unlock_new_inode(inode) };
        // SAFETY: the file is being opened and its dentry is positive now.
        to_result(unsafe { bindings::ferrofs_finish_open_simple(file) })
    }
}

/// Write access to a file's mount ([`File::want_write`]).
pub(crate) struct WriteAccess<'a, T: FileSystem>(&'a File<T>);

impl<T: FileSystem> Drop for WriteAccess<'_, T> {
    fn drop(&mut self) {
        // SAFETY: taken by `want_write` on this open file, and dropped once.
        unsafe { bindings::mnt_drop_write_file(self.0.as_ptr()) };
    }
}

/// Where an ioctl comes from: a 64-bit process, or a 32-bit one through `compat_ioctl`
/// (whose pointers are zero-extended already; commands whose argument is laid out
/// differently in 32-bit processes must be refused for it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoctlCaller {
    /// A process of the kernel's own width.
    Native,
    /// A 32-bit process on a 64-bit kernel.
    Compat,
}

/// What a file holds, which decides the VFS helpers its table uses.
pub(crate) enum Contents {
    /// Directory entries: read with `getdents` only.
    Directory,
    /// Regular file data in the page cache: read, written, mapped and spliced by the VFS's
    /// generic page-cache helpers, over the inode's address-space operations.
    PageCache,
}

/// The operations on open files of one kind (`file_operations`). Each method the
/// implementation leaves out is absent from the table, so the VFS applies its default.
#[vtable]
pub(crate) trait FileOperations {
    /// The filesystem whose files these are.
    type FileSystem: FileSystem;

    /// What the files hold.
    const CONTENTS: Contents;

    /// `llseek`; without it, the VFS's `generic_file_llseek`.
    fn llseek(_file: &File<Self::FileSystem>, _offset: i64, _whence: i32) -> Result<i64> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `iterate_shared`: emits directory entries from the context's position.
    fn read_dir(_file: &File<Self::FileSystem>, _ctx: &mut DirContext) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `fsync` of `[start, end]`, or of the data only (`datasync`).
    fn fsync(_file: &File<Self::FileSystem>, _start: i64, _end: i64, _datasync: bool) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `fallocate` with `mode` (the `FALLOC_FL_*` flags).
    fn fallocate(_file: &File<Self::FileSystem>, _mode: i32, _offset: i64, _len: i64) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `unlocked_ioctl` and `compat_ioctl`: command `cmd` with the caller's argument
    /// `arg`, a user address for commands that take one (read and written only through
    /// `kernel::uaccess`). Unknown commands are `ENOTTY`.
    fn ioctl(
        _file: &File<Self::FileSystem>,
        _cmd: u32,
        _arg: usize,
        _caller: IoctlCaller,
    ) -> Result<i64> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The `file_operations` table of `T`, and its C entry points.
///
/// Only [`super::inode::InitInode`] of filesystem `T::FileSystem` installs the table, so
/// every file its entry points get is open on an inode of that filesystem.
pub(crate) struct FileTable<T>(PhantomData<T>);

impl<T: FileOperations> FileTable<T> {
    /// The table, for `i_fop`.
    pub(crate) const OPS: bindings::file_operations = {
        let page_cache = matches!(T::CONTENTS, Contents::PageCache);
        bindings::file_operations {
            llseek: if T::HAS_LLSEEK {
                Some(Self::llseek)
            } else {
                Some(bindings::generic_file_llseek)
            },
            read: optional!(!page_cache, bindings::generic_read_dir),
            read_iter: optional!(page_cache, bindings::generic_file_read_iter),
            write_iter: optional!(page_cache, bindings::generic_file_write_iter),
            mmap: optional!(page_cache, bindings::generic_file_mmap),
            open: optional!(page_cache, bindings::generic_file_open),
            splice_read: optional!(page_cache, bindings::filemap_splice_read),
            splice_write: optional!(page_cache, bindings::iter_file_splice_write),
            iterate_shared: optional!(T::HAS_READ_DIR, Self::iterate_shared),
            fsync: optional!(T::HAS_FSYNC, Self::fsync),
            fallocate: optional!(T::HAS_FALLOCATE, Self::fallocate),
            unlocked_ioctl: optional!(T::HAS_IOCTL, Self::unlocked_ioctl),
            compat_ioctl: optional!(T::HAS_IOCTL, Self::compat_ioctl),
            // SAFETY: an all-zero `file_operations` is valid: every other callback is
            // absent.
            ..unsafe { core::mem::zeroed() }
        }
    };

    /// # Safety
    ///
    /// Called by the VFS with a file of this table, open for the call; the same holds for
    /// every `file` argument below.
    unsafe extern "C" fn llseek(
        file: *mut bindings::file,
        offset: bindings::loff_t,
        whence: ffi::c_int,
    ) -> bindings::loff_t {
        // SAFETY: see above.
        let file = unsafe { File::from_raw(file) };
        T::llseek(file, offset, whence).unwrap_or_else(|e| bindings::loff_t::from(e.to_errno()))
    }

    /// # Safety
    ///
    /// As for `llseek`, with the live iteration context of the call.
    unsafe extern "C" fn iterate_shared(
        file: *mut bindings::file,
        ctx: *mut bindings::dir_context,
    ) -> ffi::c_int {
        from_result(|| {
            // SAFETY: see above.
            let file = unsafe { File::from_raw(file) };
            // SAFETY: as above.
            let mut ctx = unsafe { DirContext::from_raw(ctx) }.ok_or(EINVAL)?;
            T::read_dir(file, &mut ctx)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// As for `llseek`.
    unsafe extern "C" fn fsync(
        file: *mut bindings::file,
        start: bindings::loff_t,
        end: bindings::loff_t,
        datasync: ffi::c_int,
    ) -> ffi::c_int {
        // SAFETY: see above.
        let file = unsafe { File::from_raw(file) };
        T::fsync(file, start, end, datasync != 0).map_or_else(|e| e.to_errno(), |()| 0)
    }

    /// # Safety
    ///
    /// As for `llseek`.
    unsafe extern "C" fn fallocate(
        file: *mut bindings::file,
        mode: ffi::c_int,
        offset: bindings::loff_t,
        len: bindings::loff_t,
    ) -> ffi::c_long {
        // SAFETY: see above.
        let file = unsafe { File::from_raw(file) };
        T::fallocate(file, mode, offset, len).map_or_else(|e| e.to_errno() as ffi::c_long, |()| 0)
    }

    /// # Safety
    ///
    /// As for `llseek`.
    unsafe extern "C" fn unlocked_ioctl(
        file: *mut bindings::file,
        cmd: ffi::c_uint,
        arg: ffi::c_ulong,
    ) -> ffi::c_long {
        // SAFETY: see above.
        let file = unsafe { File::from_raw(file) };
        Self::ioctl_result(T::ioctl(file, cmd, arg, IoctlCaller::Native))
    }

    /// # Safety
    ///
    /// As for `llseek`.
    unsafe extern "C" fn compat_ioctl(
        file: *mut bindings::file,
        cmd: ffi::c_uint,
        arg: ffi::c_ulong,
    ) -> ffi::c_long {
        // SAFETY: see above.
        let file = unsafe { File::from_raw(file) };
        // A 32-bit process's pointer, zero-extended (what `compat_ptr` does).
        let arg = arg & 0xffff_ffff;
        Self::ioctl_result(T::ioctl(file, cmd, arg, IoctlCaller::Compat))
    }

    fn ioctl_result(result: Result<i64>) -> ffi::c_long {
        match result {
            Ok(value) => value as ffi::c_long,
            Err(e) => e.to_errno() as ffi::c_long,
        }
    }
}
