// SPDX-License-Identifier: GPL-2.0

//! The inode operations a filesystem provides (`inode_operations`), and the requests they
//! get: attribute changes, inode flags, extent maps.

use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::error::{from_result, to_result, VTABLE_DEFAULT_ERROR};
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStr;

use super::acl::{Acl, AclKind, OwnedAcl};
use super::bindings;
use super::dentry::Dentry;
use super::file::TmpFile;
use super::fs_type::FileSystem;
use super::inode::{self, Idmap, Inode, InodeRef};
use crate::engine::inode::Timespec;

/// A FIEMAP extent flag: the last extent of the file.
pub(crate) const FIEMAP_EXTENT_LAST: u32 = 0x1;
/// A FIEMAP extent flag: data not yet given a place on disk (the kernel adds
/// `FIEMAP_EXTENT_UNKNOWN`).
pub(crate) const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
/// A FIEMAP extent flag: allocated but not written (reads as zeros).
pub(crate) const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;

/// An attribute change (`chmod`, `chown`, `truncate`, `utimes`) not checked yet.
///
/// # Invariants
///
/// Made only by `setattr`'s entry point: `dentry` is the live dentry of the call, its inode
/// locked, and `attr` the request, valid for the call.
pub(crate) struct AttrRequest<'a, T: FileSystem> {
    idmap: Idmap,
    dentry: &'a Dentry<T>,
    attr: NonNull<bindings::iattr>,
}

impl<'a, T: FileSystem> AttrRequest<'a, T> {
    /// Checks the caller may make the change (`setattr_prepare`).
    pub(crate) fn prepare(self) -> Result<AttrChange<'a, T>> {
        // SAFETY: the dentry is live and its inode locked, `attr` the request of the
        // running `setattr` (invariants of the values `setattr` builds).
        let ret = unsafe {
            bindings::setattr_prepare(
                self.idmap.as_ptr(),
                self.dentry.as_ptr(),
                self.attr.as_ptr(),
            )
        };
        to_result(ret)?;
        Ok(AttrChange { request: self })
    }

    /// The file whose attributes change.
    pub(crate) fn dentry(&self) -> &'a Dentry<T> {
        self.dentry
    }
}

/// An attribute change the caller may make.
pub(crate) struct AttrChange<'a, T: FileSystem> {
    request: AttrRequest<'a, T>,
}

impl<T: FileSystem> AttrChange<'_, T> {
    /// The new size, if the size changes (negative sizes are refused).
    pub(crate) fn new_size(&self) -> Result<Option<u64>> {
        // SAFETY: the request is valid for the call (invariant).
        let (valid, size) = unsafe {
            let attr = self.request.attr.as_ptr();
            ((*attr).ia_valid, (*attr).ia_size)
        };
        if valid & bindings::ATTR_SIZE == 0 {
            return Ok(None);
        }
        u64::try_from(size).map(Some).map_err(|_| EINVAL)
    }

    /// After the change is stored: if it set the mode, the access ACL follows it
    /// (`posix_acl_chmod`, through the filesystem's `set_acl`). Symbolic links have no
    /// ACLs.
    pub(crate) fn update_acl(&self) -> Result {
        // `S_IFMT` and `S_IFLNK` (include/uapi/linux/stat.h).
        const S_IFMT: u32 = 0o170_000;
        const S_IFLNK: u32 = 0o120_000;
        let request = &self.request;
        // SAFETY: the request is valid for the call (invariant).
        let valid = unsafe { (*request.attr.as_ptr()).ia_valid };
        let inode = request.dentry.inode().ok_or(ENOENT)?;
        if valid & bindings::ATTR_MODE == 0 || inode.mode() & S_IFMT == S_IFLNK {
            return Ok(());
        }
        super::acl::chmod(request.idmap, request.dentry, inode.mode())
    }

    /// Copies the change into the dentry's inode (`setattr_copy`): mode, owner, times.
    pub(crate) fn copy_to_inode(&self) -> Result {
        let request = &self.request;
        let inode = request.dentry.inode().ok_or(ENOENT)?;
        // SAFETY: the change passed `setattr_prepare`; the inode is the dentry's, locked
        // by the VFS around `setattr`.
        unsafe {
            bindings::setattr_copy(
                request.idmap.as_ptr(),
                inode.as_ptr(),
                request.attr.as_ptr(),
            )
        };
        Ok(())
    }
}

/// The answer of `FS_IOC_GETFLAGS` (`fileattr_get`), or the request of `FS_IOC_SETFLAGS`.
///
/// # Invariants
///
/// Made only by the `fileattr_*` entry points, from the VFS's `fileattr` of the call.
pub(crate) struct FileAttr(NonNull<bindings::fileattr>);

impl FileAttr {
    /// Answers with the inode flags `flags` (`FS_*_FL`).
    pub(crate) fn fill_flags(&mut self, flags: u32) {
        // SAFETY: the answer is the caller's, ours to fill during the call (invariant).
        unsafe { bindings::fileattr_fill_flags(self.0.as_ptr(), flags) };
    }

    /// The inode flags asked for.
    pub(crate) fn flags(&self) -> u32 {
        // SAFETY: the request is valid for the call; `flags` is a plain field.
        unsafe { (*self.0.as_ptr()).flags }
    }

    /// Whether the request, through the fsxattr interface (`FS_IOC_FSSETXATTR`), asks for
    /// what the inode flags cannot say: an fsxattr-only flag, an extent size hint or a
    /// project id (the kernel's `fileattr_has_fsx`).
    pub(crate) fn has_fsx_only(&self) -> bool {
        // SAFETY: the request is valid for the call (invariant); the helper only reads it.
        unsafe { bindings::ferrofs_fileattr_has_fsx(self.0.as_ptr()) }
    }
}

/// The answer of `getattr` (`stat`, `statx`), filled by the VFS from the inode first.
///
/// # Invariants
///
/// Made only by the `getattr` entry point, from the VFS's answer of the call.
pub(crate) struct Kstat(NonNull<bindings::kstat>);

impl Kstat {
    /// Reports the statx attributes (`STATX_ATTR_*`) `supported` by the filesystem for
    /// this inode, and of them those in `attributes` as set.
    pub(crate) fn set_attributes(&mut self, attributes: u64, supported: u64) {
        // SAFETY: the answer is live and ours for the call (invariant).
        unsafe { bindings::ferrofs_stat_set_attributes(self.0.as_ptr(), attributes, supported) };
    }

    /// Reports the creation time (`STATX_BTIME`).
    pub(crate) fn set_btime(&mut self, btime: &Timespec) {
        // SAFETY: the answer is live and ours for the call (invariant).
        unsafe {
            let stat = &mut *self.0.as_ptr();
            stat.btime = inode::from_ts(btime);
            stat.result_mask |= bindings::STATX_BTIME;
        }
    }

    /// Reports `bytes` of space in use (`st_blocks`, in 512-byte units).
    pub(crate) fn set_bytes(&mut self, bytes: u64) {
        // SAFETY: the answer is live and ours for the call (invariant).
        unsafe { (*self.0.as_ptr()).blocks = bytes / 512 };
    }
}

/// A FIEMAP request being answered.
///
/// # Invariants
///
/// Made only by the `fiemap` entry point, from the VFS's request of the call.
pub(crate) struct FiemapInfo(NonNull<bindings::fiemap_extent_info>);

impl FiemapInfo {
    /// Checks the request's flags for `inode` and writes back its dirty data
    /// (`fiemap_prep`); returns the length to map, clamped to the largest file.
    pub(crate) fn prepare<T: FileSystem>(
        &mut self,
        inode: &Inode<T>,
        start: u64,
        len: u64,
    ) -> Result<u64> {
        let mut len = len;
        // SAFETY: the request is live for the call (invariant); `inode` is the live inode
        // it is about.
        to_result(unsafe {
            bindings::fiemap_prep(inode.as_ptr(), self.0.as_ptr(), start, &mut len, 0)
        })?;
        Ok(len)
    }

    /// Adds an extent (`FIEMAP_EXTENT_*` flags); `false` when the user's buffer is full.
    pub(crate) fn fill_next(
        &mut self,
        logical: u64,
        physical: u64,
        len: u64,
        flags: u32,
    ) -> Result<bool> {
        // SAFETY: the request is live; the helper copies to user memory safely.
        let ret = unsafe {
            bindings::fiemap_fill_next_extent(self.0.as_ptr(), logical, physical, len, flags)
        };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(ret == 0)
    }
}

/// The operations on inodes of one kind (`inode_operations`). Each method the
/// implementation leaves out is absent from the table.
#[vtable]
pub(crate) trait InodeOperations {
    /// The filesystem whose inodes these are.
    type FileSystem: FileSystem;

    /// `lookup`: the inode `dentry` names in `dir`, or `None` for a negative dentry.
    fn lookup(
        _dir: &Inode<Self::FileSystem>,
        _dentry: &Dentry<Self::FileSystem>,
    ) -> Result<Option<InodeRef<Self::FileSystem>>> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `create`: a regular file.
    fn create(
        _idmap: Idmap,
        _dir: &Inode<Self::FileSystem>,
        _dentry: &Dentry<Self::FileSystem>,
        _mode: u32,
        _excl: bool,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `mknod`: a device node, FIFO, socket or regular file; `rdev` in the 32-bit
    /// `new_encode_dev` form.
    fn mknod(
        _idmap: Idmap,
        _dir: &Inode<Self::FileSystem>,
        _dentry: &Dentry<Self::FileSystem>,
        _mode: u32,
        _rdev: u32,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `mkdir`.
    fn mkdir(
        _idmap: Idmap,
        _dir: &Inode<Self::FileSystem>,
        _dentry: &Dentry<Self::FileSystem>,
        _mode: u32,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `symlink` to `target`.
    fn symlink(
        _idmap: Idmap,
        _dir: &Inode<Self::FileSystem>,
        _dentry: &Dentry<Self::FileSystem>,
        _target: &CStr,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `tmpfile`: an unnamed file for the `O_TMPFILE` open of `file`, which
    /// [`TmpFile::finish`] completes.
    fn tmpfile(
        _idmap: Idmap,
        _dir: &Inode<Self::FileSystem>,
        _file: TmpFile<'_, Self::FileSystem>,
        _mode: u32,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `link`: `dentry` in `dir` becomes a new name of the inode of `old`.
    fn link(
        _old: &Dentry<Self::FileSystem>,
        _dir: &Inode<Self::FileSystem>,
        _dentry: &Dentry<Self::FileSystem>,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `unlink`.
    fn unlink(_dir: &Inode<Self::FileSystem>, _dentry: &Dentry<Self::FileSystem>) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `rmdir`.
    fn rmdir(_dir: &Inode<Self::FileSystem>, _dentry: &Dentry<Self::FileSystem>) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `rename` with `RENAME_*` flags; the VFS holds both parents locked. `idmap` is the
    /// mount's, for the owner of a whiteout.
    fn rename(
        _idmap: Idmap,
        _old_dir: &Inode<Self::FileSystem>,
        _old: &Dentry<Self::FileSystem>,
        _new_dir: &Inode<Self::FileSystem>,
        _new: &Dentry<Self::FileSystem>,
        _flags: u32,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `setattr`, with the inode locked.
    fn setattr(_request: AttrRequest<'_, Self::FileSystem>) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `listxattr`: the names, NUL-separated, into `buf`, or their length for an empty
    /// `buf`.
    fn listxattr(_dentry: &Dentry<Self::FileSystem>, _buf: &mut [u8]) -> Result<usize> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `get_link`: a symbolic link's target, NUL-terminated.
    fn get_link(_inode: &Inode<Self::FileSystem>) -> Result<KVec<u8>> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `fiemap` of `[start, start + len)`.
    fn fiemap(
        _inode: &Inode<Self::FileSystem>,
        _info: &mut FiemapInfo,
        _start: u64,
        _len: u64,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `getattr`: what `stat` and `statx` report beyond what the VFS filled in from the
    /// inode (`generic_fillattr`).
    fn getattr(_inode: &Inode<Self::FileSystem>, _stat: &mut Kstat) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `fileattr_get` (`FS_IOC_GETFLAGS`).
    fn fileattr_get(_inode: &Inode<Self::FileSystem>, _attr: &mut FileAttr) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `fileattr_set` (`FS_IOC_SETFLAGS`); the VFS checked permission and capabilities and
    /// holds the inode lock.
    fn fileattr_set(_inode: &Inode<Self::FileSystem>, _attr: &FileAttr) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `get_inode_acl`: the inode's ACL of `kind`, read from disk (the VFS caches it);
    /// never called in RCU walk mode (the entry point answers `ECHILD` there).
    fn get_inode_acl(_inode: &Inode<Self::FileSystem>, _kind: AclKind) -> Result<Option<OwnedAcl>> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `set_acl`: stores (or with `None`, removes) the ACL of `kind`; the VFS checked the
    /// caller may and holds the inode lock.
    fn set_acl(
        _idmap: Idmap,
        _dentry: &Dentry<Self::FileSystem>,
        _acl: Option<&Acl>,
        _kind: AclKind,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }
}

fn errno(err: Error) -> ffi::c_int {
    err.to_errno()
}

pub(crate) fn err_ptr<T>(err: Error) -> *mut T {
    // SAFETY: builds an error pointer from a negative errno; no memory is touched.
    unsafe { bindings::ferrofs_err_ptr(err.to_errno() as ffi::c_long) }.cast()
}

/// The `inode_operations` table of `T`, and its C entry points.
///
/// Each entry point is called by the VFS, as the table promises it, with a live inode of
/// the table's kind, referenced or locked for the call (`inode`, `dir`), live dentries
/// whose names are stable (the parent locked), and requests valid for the call; that is
/// the `# Safety` contract of each below. The inodes, and the dentries, files and
/// super blocks of the call, are of filesystem `T::FileSystem`: only
/// [`super::inode::InitInode`] of that filesystem installs the table.
pub(crate) struct InodeTable<T>(PhantomData<T>);

impl<T: InodeOperations> InodeTable<T> {
    /// The table, for `i_op`.
    pub(crate) const OPS: bindings::inode_operations = bindings::inode_operations {
        lookup: optional!(T::HAS_LOOKUP, Self::lookup),
        create: optional!(T::HAS_CREATE, Self::create),
        mknod: optional!(T::HAS_MKNOD, Self::mknod),
        mkdir: optional!(T::HAS_MKDIR, Self::mkdir),
        symlink: optional!(T::HAS_SYMLINK, Self::symlink),
        tmpfile: optional!(T::HAS_TMPFILE, Self::tmpfile),
        link: optional!(T::HAS_LINK, Self::link),
        unlink: optional!(T::HAS_UNLINK, Self::unlink),
        rmdir: optional!(T::HAS_RMDIR, Self::rmdir),
        rename: optional!(T::HAS_RENAME, Self::rename),
        setattr: optional!(T::HAS_SETATTR, Self::setattr),
        listxattr: optional!(T::HAS_LISTXATTR, Self::listxattr),
        get_link: optional!(T::HAS_GET_LINK, Self::get_link),
        getattr: optional!(T::HAS_GETATTR, Self::getattr),
        fiemap: optional!(T::HAS_FIEMAP, Self::fiemap),
        fileattr_get: optional!(T::HAS_FILEATTR_GET, Self::fileattr_get),
        fileattr_set: optional!(T::HAS_FILEATTR_SET, Self::fileattr_set),
        get_inode_acl: optional!(T::HAS_GET_INODE_ACL, Self::get_inode_acl),
        set_acl: optional!(T::HAS_SET_ACL, Self::set_acl),
        // SAFETY: an all-zero `inode_operations` is valid: every other callback is absent.
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// See [`InodeTable`].
    unsafe extern "C" fn lookup(
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        _flags: ffi::c_uint,
    ) -> *mut bindings::dentry {
        // SAFETY: see [`InodeTable`].
        let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
        match T::lookup(dir, dentry) {
            Ok(inode) => dentry.splice(inode),
            Err(err) => err_ptr(err),
        }
    }

    /// # Safety
    ///
    /// See [`InodeTable`].
    unsafe extern "C" fn create(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
        excl: bool,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`].
        let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
        let idmap = Idmap::from_raw(idmap);
        T::create(idmap, dir, dentry, u32::from(mode), excl).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`].
    unsafe extern "C" fn mknod(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
        rdev: bindings::dev_t,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`].
        let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
        // SAFETY: pure arithmetic on the value.
        let rdev = unsafe { bindings::ferrofs_encode_dev(rdev) };
        let idmap = Idmap::from_raw(idmap);
        T::mknod(idmap, dir, dentry, u32::from(mode), rdev).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`].
    unsafe extern "C" fn mkdir(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`].
        let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
        let idmap = Idmap::from_raw(idmap);
        T::mkdir(idmap, dir, dentry, u32::from(mode)).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `target` is NUL-terminated and alive for the call.
    unsafe extern "C" fn symlink(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        target: *const ffi::c_char,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`] and above.
        let (dir, dentry, target) = unsafe {
            (
                Inode::from_raw(dir),
                Dentry::from_raw(dentry),
                CStr::from_char_ptr(target),
            )
        };
        let idmap = Idmap::from_raw(idmap);
        T::symlink(idmap, dir, dentry, target).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `file` is being opened with `O_TMPFILE` in `dir`.
    unsafe extern "C" fn tmpfile(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        file: *mut bindings::file,
        mode: bindings::umode_t,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`] and above.
        let (dir, file) = unsafe { (Inode::from_raw(dir), TmpFile::from_raw(file)) };
        let Some(file) = file else {
            return EINVAL.to_errno();
        };
        let idmap = Idmap::from_raw(idmap);
        T::tmpfile(idmap, dir, file, u32::from(mode)).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`].
    unsafe extern "C" fn link(
        old: *mut bindings::dentry,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`].
        let (old, dir, dentry) = unsafe {
            (
                Dentry::from_raw(old),
                Inode::from_raw(dir),
                Dentry::from_raw(dentry),
            )
        };
        T::link(old, dir, dentry).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`].
    unsafe extern "C" fn unlink(
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`].
        let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
        T::unlink(dir, dentry).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`].
    unsafe extern "C" fn rmdir(
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`].
        let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
        T::rmdir(dir, dentry).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`] (the VFS locks both parents).
    unsafe extern "C" fn rename(
        idmap: *mut bindings::mnt_idmap,
        old_dir: *mut bindings::inode,
        old: *mut bindings::dentry,
        new_dir: *mut bindings::inode,
        new: *mut bindings::dentry,
        flags: ffi::c_uint,
    ) -> ffi::c_int {
        // SAFETY: see [`InodeTable`].
        let (old_dir, old, new_dir, new) = unsafe {
            (
                Inode::from_raw(old_dir),
                Dentry::from_raw(old),
                Inode::from_raw(new_dir),
                Dentry::from_raw(new),
            )
        };
        let idmap = Idmap::from_raw(idmap);
        T::rename(idmap, old_dir, old, new_dir, new, flags).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; the dentry's inode is locked and `attr` is the request.
    unsafe extern "C" fn setattr(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        attr: *mut bindings::iattr,
    ) -> ffi::c_int {
        let Some(attr) = NonNull::new(attr) else {
            return EINVAL.to_errno();
        };
        let request = AttrRequest {
            idmap: Idmap::from_raw(idmap),
            // SAFETY: see [`InodeTable`].
            dentry: unsafe { Dentry::from_raw(dentry) },
            attr,
        };
        T::setattr(request).map_or_else(errno, |()| 0)
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `buf` is NULL or a kernel buffer of `size` bytes.
    unsafe extern "C" fn listxattr(
        dentry: *mut bindings::dentry,
        buf: *mut ffi::c_char,
        size: usize,
    ) -> isize {
        // SAFETY: see [`InodeTable`].
        let dentry = unsafe { Dentry::from_raw(dentry) };
        let buf: &mut [u8] = if buf.is_null() || size == 0 {
            &mut []
        } else {
            // SAFETY: the VFS passes a kernel buffer of `size` bytes, ours during the call.
            unsafe { core::slice::from_raw_parts_mut(buf.cast(), size) }
        };
        match T::listxattr(dentry, buf) {
            Ok(len) => isize::try_from(len).unwrap_or(isize::MAX),
            Err(err) => err.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `dentry` is NULL in an RCU walk; `done` is the caller's.
    unsafe extern "C" fn get_link(
        dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        done: *mut bindings::delayed_call,
    ) -> *const ffi::c_char {
        if dentry.is_null() {
            // RCU walk: the filesystem may sleep, so ask for the slow path.
            return err_ptr(ECHILD);
        }
        // SAFETY: see [`InodeTable`].
        let inode = unsafe { Inode::from_raw(inode) };
        match T::get_link(inode) {
            Ok(target) if target.last() == Some(&0) => {
                let (buf, _, _) = target.into_raw_parts();
                // SAFETY: `buf` is a kmalloc'd, NUL-terminated string now owned by `done`,
                // which frees it with `kfree_link` when the VFS is done with it.
                unsafe { bindings::ferrofs_set_delayed_kfree(done, buf.cast()) };
                buf.cast_const().cast()
            }
            Ok(_) => err_ptr(EIO),
            Err(err) => err_ptr(err),
        }
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `info` is the request being filled.
    unsafe extern "C" fn fiemap(
        inode: *mut bindings::inode,
        info: *mut bindings::fiemap_extent_info,
        start: u64,
        len: u64,
    ) -> ffi::c_int {
        from_result(|| {
            let mut info = FiemapInfo(NonNull::new(info).ok_or(EINVAL)?);
            // SAFETY: see [`InodeTable`].
            let inode = unsafe { Inode::from_raw(inode) };
            T::fiemap(inode, &mut info, start, len)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `path` is the file's, `stat` the answer to fill.
    unsafe extern "C" fn getattr(
        idmap: *mut bindings::mnt_idmap,
        path: *const bindings::path,
        stat: *mut bindings::kstat,
        request_mask: u32,
        _query_flags: ffi::c_uint,
    ) -> ffi::c_int {
        from_result(|| {
            let mut answer = Kstat(NonNull::new(stat).ok_or(EINVAL)?);
            // SAFETY: `path` is live for the call (caller) and its dentry positive.
            let inode = unsafe { bindings::ferrofs_path_inode(path) };
            let inode = NonNull::new(inode).ok_or(ENOENT)?;
            // SAFETY: the inode, the idmap of the mount and the answer are live for the
            // call; `generic_fillattr` only reads the first two and writes the third.
            unsafe {
                bindings::generic_fillattr(idmap, request_mask, inode.as_ptr(), answer.0.as_ptr())
            };
            // SAFETY: see [`InodeTable`].
            let inode = unsafe { Inode::from_raw(inode.as_ptr()) };
            T::getattr(inode, &mut answer)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `fa` is the answer to fill.
    unsafe extern "C" fn fileattr_get(
        dentry: *mut bindings::dentry,
        fa: *mut kernel::bindings::fileattr,
    ) -> ffi::c_int {
        from_result(|| {
            // `kernel::bindings` declares `fileattr` opaquely; the module's bindings have
            // its fields.
            let mut attr = FileAttr(NonNull::new(fa.cast()).ok_or(EINVAL)?);
            // SAFETY: see [`InodeTable`].
            let dentry = unsafe { Dentry::<T::FileSystem>::from_raw(dentry) };
            let inode = dentry.inode().ok_or(ENOENT)?;
            T::fileattr_get(inode, &mut attr)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `fa` is the request.
    unsafe extern "C" fn fileattr_set(
        _idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        fa: *mut kernel::bindings::fileattr,
    ) -> ffi::c_int {
        from_result(|| {
            // As in `fileattr_get`.
            let attr = FileAttr(NonNull::new(fa.cast()).ok_or(EINVAL)?);
            // SAFETY: see [`InodeTable`].
            let dentry = unsafe { Dentry::<T::FileSystem>::from_raw(dentry) };
            let inode = dentry.inode().ok_or(ENOENT)?;
            T::fileattr_set(inode, &attr)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`InodeTable`].
    unsafe extern "C" fn get_inode_acl(
        inode: *mut bindings::inode,
        kind: ffi::c_int,
        rcu: bool,
    ) -> *mut bindings::posix_acl {
        // Reading from disk may sleep: the VFS retries out of RCU walk mode.
        if rcu {
            return err_ptr(ECHILD);
        }
        let Some(kind) = AclKind::from_raw(kind) else {
            return err_ptr(EINVAL);
        };
        // SAFETY: see [`InodeTable`].
        let inode = unsafe { Inode::from_raw(inode) };
        match T::get_inode_acl(inode, kind) {
            Ok(Some(acl)) => acl.into_raw(),
            Ok(None) => core::ptr::null_mut(),
            Err(err) => err_ptr(err),
        }
    }

    /// # Safety
    ///
    /// See [`InodeTable`]; `acl` is NULL or an ACL the VFS holds for the call.
    unsafe extern "C" fn set_acl(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        acl: *mut bindings::posix_acl,
        kind: ffi::c_int,
    ) -> ffi::c_int {
        let Some(kind) = AclKind::from_raw(kind) else {
            return EINVAL.to_errno();
        };
        // SAFETY: see [`InodeTable`]; a non-NULL `acl` is live for the call.
        let (dentry, acl) = unsafe {
            (
                Dentry::from_raw(dentry),
                (!acl.is_null()).then(|| Acl::from_raw(acl)),
            )
        };
        T::set_acl(Idmap::from_raw(idmap), dentry, acl, kind).map_or_else(errno, |()| 0)
    }
}
