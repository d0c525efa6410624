// SPDX-License-Identifier: GPL-2.0

//! The operation tables the VFS calls, and their C entry points.
//!
//! Each entry point turns the kernel's raw arguments into the safe wrappers of this module
//! (arguing, once, why the pointers are valid) and calls the filesystem logic in
//! [`crate::fsops`].

use core::ptr;

use kernel::c_str;
use kernel::error::from_result;
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStr;

use super::bindings;
use super::dentry::{Dentry, DirContext, SeqFile};
use super::folio::{LockedFolio, Readahead, WritebackControl};
use super::inode::{Idmap, Inode};
use super::super_block::SuperBlock;
use crate::engine::inode as ei;
use crate::fsops::{self, AttrChange, NewKind};

/// An operation table in static memory.
#[repr(transparent)]
pub(crate) struct Table<T>(pub(crate) T);

// SAFETY: the tables are constants: never written after initialisation, and holding only
// function pointers and the addresses of other statics.
unsafe impl<T> Sync for Table<T> {}

const SEEK_DATA: ffi::c_int = 3;
const SEEK_HOLE: ffi::c_int = 4;
const CAP_SYS_ADMIN: ffi::c_int = 21;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;

fn errno(err: Error) -> ffi::c_int {
    err.to_errno()
}

fn err_ptr<T>(err: Error) -> *mut T {
    // SAFETY: builds an error pointer from a negative errno; no memory is touched.
    unsafe { bindings::ferrofs_err_ptr(err.to_errno() as ffi::c_long) }.cast()
}

// ---- super block ----

pub(crate) static SUPER_OPS: Table<bindings::super_operations> =
    Table(bindings::super_operations {
        evict_inode: Some(evict_inode),
        write_inode: Some(write_inode),
        put_super: Some(put_super),
        sync_fs: Some(sync_fs),
        freeze_fs: Some(freeze_fs),
        unfreeze_fs: Some(unfreeze_fs),
        statfs: Some(statfs),
        show_options: Some(show_options),
        // SAFETY: an all-zero `super_operations` is valid: every other callback is absent.
        ..unsafe { core::mem::zeroed() }
    });

/// # Safety
///
/// Called by the VFS with a ferrofs super block it keeps alive for the call; the same holds
/// for every `sb` argument below.
unsafe extern "C" fn put_super(sb: *mut bindings::super_block) {
    // SAFETY: see above.
    fsops::put_super(unsafe { SuperBlock::from_raw(sb) });
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn sync_fs(sb: *mut bindings::super_block, wait: ffi::c_int) -> ffi::c_int {
    // SAFETY: live ferrofs super block (VFS contract).
    let sb = unsafe { SuperBlock::from_raw(sb) };
    fsops::sync_fs(sb, wait != 0).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn freeze_fs(sb: *mut bindings::super_block) -> ffi::c_int {
    // SAFETY: live ferrofs super block (VFS contract).
    let sb = unsafe { SuperBlock::from_raw(sb) };
    fsops::freeze_fs(sb).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn unfreeze_fs(_sb: *mut bindings::super_block) -> ffi::c_int {
    0
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn statfs(
    dentry: *mut bindings::dentry,
    buf: *mut kernel::bindings::kstatfs,
) -> ffi::c_int {
    // `kernel::bindings` declares `kstatfs` opaquely; the module's bindings have its fields.
    let buf = buf.cast::<bindings::kstatfs>();
    from_result(|| {
        // SAFETY: the VFS passes a live dentry of a mounted ferrofs, whose `d_sb` is live.
        let sb = unsafe { SuperBlock::from_raw((*dentry).d_sb) };
        let reply = fsops::statfs(sb)?;
        // SAFETY: `buf` is the caller's `kstatfs`, ours to fill during the call.
        unsafe {
            (*buf).f_type = fsops::FERROFS_SUPER_MAGIC as _;
            (*buf).f_bsize = crate::engine::format::BLOCK_SIZE as _;
            (*buf).f_frsize = crate::engine::format::BLOCK_SIZE as _;
            (*buf).f_blocks = reply.blocks;
            (*buf).f_bfree = reply.free;
            (*buf).f_bavail = reply.free;
            (*buf).f_files = 0;
            (*buf).f_ffree = 0;
            (*buf).f_namelen = ei::NAME_MAX as _;
            (*buf).f_fsid.val = [reply.fsid[0] as i32, reply.fsid[1] as i32];
        }
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn show_options(
    seq: *mut bindings::seq_file,
    root: *mut bindings::dentry,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: the VFS passes the live root dentry of a mounted ferrofs.
        let sb = unsafe { SuperBlock::from_raw((*root).d_sb) };
        // SAFETY: `seq` is the live seq_file of this call.
        let mut seq = unsafe { SeqFile::from_raw(seq) }.ok_or(EINVAL)?;
        fsops::show_options(sb, &mut seq)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS with a live inode of a ferrofs super block, referenced or locked for
/// the call; the same holds for every `inode` and `dir` argument below.
unsafe extern "C" fn write_inode(
    inode: *mut bindings::inode,
    _wbc: *mut bindings::writeback_control,
) -> ffi::c_int {
    // SAFETY: see above.
    fsops::write_inode(unsafe { Inode::from_raw(inode) }).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn evict_inode(inode: *mut bindings::inode) {
    // SAFETY: the inode is being evicted: live, and ours alone.
    unsafe { bindings::truncate_inode_pages_final(&mut (*inode).i_data) };
    // SAFETY: as above.
    if !unsafe { bindings::is_bad_inode(inode) } {
        // SAFETY: as above.
        fsops::evict_inode(unsafe { Inode::from_raw(inode) });
    }
    // SAFETY: as above; the page cache is empty now.
    unsafe { bindings::clear_inode(inode) };
}

// ---- directories ----

pub(crate) static DIR_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        lookup: Some(lookup),
        create: Some(create),
        link: Some(link),
        unlink: Some(unlink),
        symlink: Some(symlink),
        mkdir: Some(mkdir),
        rmdir: Some(rmdir),
        mknod: Some(mknod),
        rename: Some(rename),
        setattr: Some(setattr),
        listxattr: Some(listxattr),
        tmpfile: Some(tmpfile),
        fileattr_get: Some(fileattr_get),
        fileattr_set: Some(fileattr_set),
        // SAFETY: an all-zero `inode_operations` is valid: every other callback is absent.
        ..unsafe { core::mem::zeroed() }
    });

pub(crate) static DIR_OPS: Table<bindings::file_operations> = Table(bindings::file_operations {
    llseek: Some(bindings::generic_file_llseek),
    read: Some(bindings::generic_read_dir),
    iterate_shared: Some(iterate_shared),
    fsync: Some(fsync),
    // SAFETY: an all-zero `file_operations` is valid: every other callback is absent.
    ..unsafe { core::mem::zeroed() }
});

/// # Safety
///
/// Called by the VFS with a live dentry, referenced for the call, whose name is stable
/// (the parent is locked); the same holds for every dentry argument below.
unsafe extern "C" fn lookup(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    _flags: ffi::c_uint,
) -> *mut bindings::dentry {
    // SAFETY: see the `# Safety` sections above.
    let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
    match fsops::lookup(dir, dentry) {
        Ok(inode) => dentry.splice(inode),
        Err(err) => err_ptr(err),
    }
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn create(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
    _excl: bool,
) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above.
    let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
    let mode = u32::from(mode);
    fsops::create(Idmap::from_raw(idmap), dir, dentry, mode, NewKind::Node(0))
        .map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn mknod(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
    rdev: bindings::dev_t,
) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above.
    let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
    // SAFETY: pure arithmetic on the value.
    let rdev = u64::from(unsafe { bindings::ferrofs_encode_dev(rdev) });
    let mode = u32::from(mode);
    fsops::create(
        Idmap::from_raw(idmap),
        dir,
        dentry,
        mode,
        NewKind::Node(rdev),
    )
    .map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn mkdir(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above.
    let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
    let mode = u32::from(mode) | ei::S_IFDIR;
    fsops::create(Idmap::from_raw(idmap), dir, dentry, mode, NewKind::Dir)
        .map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn symlink(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    target: *const ffi::c_char,
) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above.
    let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
    // SAFETY: the VFS passes the target as a NUL-terminated string alive for the call.
    let target = unsafe { CStr::from_char_ptr(target) };
    let mode = ei::S_IFLNK | 0o777;
    fsops::create(
        Idmap::from_raw(idmap),
        dir,
        dentry,
        mode,
        NewKind::Symlink(target.as_bytes()),
    )
    .map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn tmpfile(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    file: *mut bindings::file,
    mode: bindings::umode_t,
) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above.
    let dir = unsafe { Inode::from_raw(dir) };
    let inode = match fsops::tmpfile(Idmap::from_raw(idmap), dir, u32::from(mode) | ei::S_IFREG) {
        Ok(inode) => inode.into_raw(),
        Err(err) => return errno(err),
    };
    // SAFETY: `file` is being opened with O_TMPFILE and has its dentry; `d_tmpfile` takes
    // over our reference to the new (still locked) inode.
    unsafe { bindings::d_tmpfile(file, inode) };
    // SAFETY: the inode is new and locked, and now bound to the file's dentry, which keeps
    // it alive; this makes it visible, as the VFS's tmpfile protocol asks.
    unsafe { bindings::unlock_new_inode(inode) };
    // SAFETY: `file` is being opened and its dentry is positive now.
    unsafe { bindings::ferrofs_finish_open_simple(file) }
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn link(
    old: *mut bindings::dentry,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above.
    let (old, dir, dentry) = unsafe {
        (
            Dentry::from_raw(old),
            Inode::from_raw(dir),
            Dentry::from_raw(dentry),
        )
    };
    fsops::link(old, dir, dentry).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn unlink(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above.
    let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
    fsops::unlink(dir, dentry).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn rmdir(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above.
    let (dir, dentry) = unsafe { (Inode::from_raw(dir), Dentry::from_raw(dentry)) };
    fsops::rmdir(dir, dentry).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn rename(
    _idmap: *mut bindings::mnt_idmap,
    old_dir: *mut bindings::inode,
    old: *mut bindings::dentry,
    new_dir: *mut bindings::inode,
    new: *mut bindings::dentry,
    flags: ffi::c_uint,
) -> ffi::c_int {
    // SAFETY: see the `# Safety` sections above (the VFS locks both parents).
    let (old_dir, old, new_dir, new) = unsafe {
        (
            Inode::from_raw(old_dir),
            Dentry::from_raw(old),
            Inode::from_raw(new_dir),
            Dentry::from_raw(new),
        )
    };
    fsops::rename(old_dir, old, new_dir, new, flags).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn iterate_shared(
    file: *mut bindings::file,
    ctx: *mut bindings::dir_context,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: the VFS passes an open directory and its live iteration context.
        if !unsafe { bindings::ferrofs_dir_emit_dots(file, ctx) } {
            return Ok(0);
        }
        // SAFETY: as above; the open file keeps its inode alive.
        let dir = unsafe { Inode::from_raw(bindings::ferrofs_file_inode(file)) };
        // SAFETY: as above.
        let mut ctx = unsafe { DirContext::from_raw(ctx) }.ok_or(EINVAL)?;
        fsops::readdir(dir, &mut ctx)?;
        Ok(0)
    })
}

// ---- attributes, for every kind of inode ----

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn setattr(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: the VFS passes a live dentry (its inode locked) and the change.
        let ret = unsafe { bindings::setattr_prepare(idmap, dentry, attr) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // SAFETY: as above.
        let dentry = unsafe { Dentry::from_raw(dentry) };
        let inode = dentry.inode().ok_or(ENOENT)?;
        // SAFETY: `attr` is valid for the call.
        let (valid, size) = unsafe { ((*attr).ia_valid, (*attr).ia_size) };
        let change = AttrChange {
            size: if valid & bindings::ATTR_SIZE != 0 {
                Some(u64::try_from(size).map_err(|_| EINVAL)?)
            } else {
                None
            },
        };
        fsops::setattr(inode, &change, || {
            // SAFETY: the change passed `setattr_prepare`; the inode is locked.
            unsafe { bindings::setattr_copy(idmap, inode.as_ptr(), attr) }
        })?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn listxattr(
    dentry: *mut bindings::dentry,
    buf: *mut ffi::c_char,
    size: usize,
) -> isize {
    // SAFETY: see the `# Safety` sections above.
    let dentry = unsafe { Dentry::from_raw(dentry) };
    let Some(inode) = dentry.inode() else {
        return ENOENT.to_errno() as isize;
    };
    let buf: &mut [u8] = if buf.is_null() || size == 0 {
        &mut []
    } else {
        // SAFETY: the VFS passes a kernel buffer of `size` bytes, ours during the call.
        unsafe { core::slice::from_raw_parts_mut(buf.cast(), size) }
    };
    // SAFETY: checks the calling task's capability.
    let trusted = unsafe { bindings::capable(CAP_SYS_ADMIN) };
    match fsops::xattr_list(inode, buf, trusted) {
        Ok(len) => isize::try_from(len).unwrap_or(isize::MAX),
        Err(err) => err.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by the VFS for `FS_IOC_GETFLAGS` with a live dentry and the answer to fill.
unsafe extern "C" fn fileattr_get(
    dentry: *mut bindings::dentry,
    fa: *mut kernel::bindings::fileattr,
) -> ffi::c_int {
    // `kernel::bindings` declares `fileattr` opaquely; the module's bindings have its fields.
    let fa = fa.cast::<bindings::fileattr>();
    from_result(|| {
        // SAFETY: see above.
        let inode = unsafe { Dentry::from_raw(dentry) }.inode().ok_or(ENOENT)?;
        let flags = fsops::get_flags(inode)?;
        // SAFETY: `fa` is the caller's answer, ours to fill during the call.
        unsafe { bindings::fileattr_fill_flags(fa, flags) };
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS for `FS_IOC_SETFLAGS` (permission and capability checked, the inode
/// locked) with a live dentry and the new attributes.
unsafe extern "C" fn fileattr_set(
    _idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    fa: *mut kernel::bindings::fileattr,
) -> ffi::c_int {
    // As in `fileattr_get`.
    let fa = fa.cast::<bindings::fileattr>();
    from_result(|| {
        // SAFETY: see above.
        let inode = unsafe { Dentry::from_raw(dentry) }.inode().ok_or(ENOENT)?;
        // SAFETY: `fa` is valid for the call; `flags` is its first, plain field.
        let (flags, fsx) = unsafe { ((*fa).flags, (*fa).fsx_valid()) };
        if fsx {
            // The fsxattr interface (extent sizes, project ids) is not supported.
            return Err(crate::vfs::error::eopnotsupp());
        }
        fsops::set_flags(inode, flags)?;
        Ok(0)
    })
}

// ---- regular files ----

pub(crate) static FILE_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        setattr: Some(setattr),
        listxattr: Some(listxattr),
        fiemap: Some(fiemap),
        fileattr_get: Some(fileattr_get),
        fileattr_set: Some(fileattr_set),
        // SAFETY: an all-zero `inode_operations` is valid: every other callback is absent.
        ..unsafe { core::mem::zeroed() }
    });

pub(crate) static FILE_OPS: Table<bindings::file_operations> = Table(bindings::file_operations {
    llseek: Some(llseek),
    read_iter: Some(bindings::generic_file_read_iter),
    write_iter: Some(bindings::generic_file_write_iter),
    mmap: Some(bindings::generic_file_mmap),
    open: Some(bindings::generic_file_open),
    fsync: Some(fsync),
    splice_read: Some(bindings::filemap_splice_read),
    splice_write: Some(bindings::iter_file_splice_write),
    fallocate: Some(fallocate),
    // SAFETY: an all-zero `file_operations` is valid: every other callback is absent.
    ..unsafe { core::mem::zeroed() }
});

pub(crate) static ADDRESS_SPACE_OPS: Table<bindings::address_space_operations> =
    Table(bindings::address_space_operations {
        read_folio: Some(read_folio),
        readahead: Some(readahead),
        writepages: Some(writepages),
        dirty_folio: Some(bindings::filemap_dirty_folio),
        write_begin: Some(write_begin),
        write_end: Some(write_end),
        error_remove_folio: Some(bindings::generic_error_remove_folio),
        // SAFETY: an all-zero `address_space_operations` is valid: every other callback
        // is absent.
        ..unsafe { core::mem::zeroed() }
    });

/// # Safety
///
/// Called by the VFS with an open ferrofs file, alive for the call; the same holds for
/// every `file` argument below.
unsafe extern "C" fn llseek(
    file: *mut bindings::file,
    offset: bindings::loff_t,
    whence: ffi::c_int,
) -> bindings::loff_t {
    if whence != SEEK_DATA && whence != SEEK_HOLE {
        // SAFETY: see above.
        return unsafe { bindings::generic_file_llseek(file, offset, whence) };
    }
    let Ok(start) = u64::try_from(offset) else {
        return bindings::loff_t::from(ENXIO.to_errno());
    };
    // SAFETY: see above; the open file keeps its inode alive.
    let raw = unsafe { bindings::ferrofs_file_inode(file) };
    // SAFETY: as above.
    let inode = unsafe { Inode::from_raw(raw) };
    // SAFETY: the inode is live; the lock keeps its size and extents still meanwhile.
    unsafe { bindings::ferrofs_inode_lock(raw) };
    let found = fsops::seek_data_hole(inode, start, whence == SEEK_DATA);
    // SAFETY: taken above.
    unsafe { bindings::ferrofs_inode_unlock(raw) };
    match found {
        Ok(pos) => {
            let pos = bindings::loff_t::try_from(pos).unwrap_or(bindings::loff_t::MAX);
            // SAFETY: as above; `vfs_setpos` checks `pos` against the limit.
            unsafe { bindings::vfs_setpos(file, pos, (*(*raw).i_sb).s_maxbytes) }
        }
        Err(err) => bindings::loff_t::from(err.to_errno()),
    }
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn fsync(
    file: *mut bindings::file,
    start: bindings::loff_t,
    end: bindings::loff_t,
    _datasync: ffi::c_int,
) -> ffi::c_int {
    // SAFETY: see above; also reports earlier write-back errors of this file.
    let ret = unsafe { bindings::file_write_and_wait_range(file, start, end) };
    if ret != 0 {
        return ret;
    }
    // SAFETY: see above; the open file keeps its inode alive.
    let inode = unsafe { Inode::from_raw(bindings::ferrofs_file_inode(file)) };
    fsops::fsync(inode).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn fallocate(
    file: *mut bindings::file,
    mode: ffi::c_int,
    offset: bindings::loff_t,
    len: bindings::loff_t,
) -> ffi::c_long {
    let (Ok(mode), Ok(offset), Ok(len)) = (
        u32::try_from(mode),
        u64::try_from(offset),
        u64::try_from(len),
    ) else {
        return EINVAL.to_errno() as ffi::c_long;
    };
    // SAFETY: see above; the open file keeps its inode alive.
    let raw = unsafe { bindings::ferrofs_file_inode(file) };
    // SAFETY: as above.
    let inode = unsafe { Inode::from_raw(raw) };
    // SAFETY: the inode is live; size and extents change under its lock.
    unsafe { bindings::ferrofs_inode_lock(raw) };
    // SAFETY: the file is open for writing (checked by the VFS); updates its times and
    // drops set-id bits, under the inode lock as required.
    let ret = unsafe { bindings::file_modified(file) };
    let result = if ret != 0 {
        Err(Error::from_errno(ret))
    } else {
        fsops::fallocate(inode, mode, offset, len)
    };
    // SAFETY: taken above.
    unsafe { bindings::ferrofs_inode_unlock(raw) };
    result.map_or_else(|e| e.to_errno() as ffi::c_long, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn fiemap(
    inode: *mut bindings::inode,
    info: *mut bindings::fiemap_extent_info,
    start: u64,
    len: u64,
) -> ffi::c_int {
    from_result(|| {
        let mut len = len;
        // SAFETY: the VFS passes a live inode and the request being filled.
        let ret = unsafe { bindings::fiemap_prep(inode, info, start, &mut len, 0) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // SAFETY: as above.
        let inode = unsafe { Inode::from_raw(inode) };
        fsops::fiemap(inode, start, len, |(off, disk, bytes, prealloc), last| {
            let mut flags = 0;
            if prealloc {
                flags |= FIEMAP_EXTENT_UNWRITTEN;
            }
            if last {
                flags |= FIEMAP_EXTENT_LAST;
            }
            // SAFETY: `info` is the live request; the helper copies to user memory safely.
            let ret = unsafe { bindings::fiemap_fill_next_extent(info, off, disk, bytes, flags) };
            if ret < 0 {
                return Err(Error::from_errno(ret));
            }
            Ok(ret == 0)
        })?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS with a locked page-cache folio of a ferrofs file; the same holds for
/// every `folio` argument below unless said otherwise.
unsafe extern "C" fn read_folio(
    _file: *mut bindings::file,
    folio: *mut bindings::folio,
) -> ffi::c_int {
    // SAFETY: see above.
    let Some(folio) = (unsafe { LockedFolio::from_raw(folio) }) else {
        return EINVAL.to_errno();
    };
    fsops::read_folio(folio).map_or_else(errno, |()| 0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn writepages(
    mapping: *mut bindings::address_space,
    wbc: *mut bindings::writeback_control,
) -> ffi::c_int {
    // SAFETY: the VFS passes its writeback request, live for the call.
    let Some(wbc) = (unsafe { WritebackControl::from_raw(wbc) }) else {
        return EINVAL.to_errno();
    };
    let _plug = super::bio::Plug::start();
    let mut run = fsops::WriteRun::new();
    let mut folio = ptr::null_mut();
    let mut error: ffi::c_int = 0;
    let mut first_error: ffi::c_int = 0;
    loop {
        // SAFETY: the VFS passes a ferrofs file's mapping and its writeback control;
        // `writeback_iter` hands out locked folios, cleaned for I/O, one at a time.
        folio = unsafe { bindings::writeback_iter(mapping, wbc.as_ptr(), folio, &mut error) };
        // SAFETY: as above.
        let Some(locked) = (unsafe { LockedFolio::from_raw(folio) }) else {
            break;
        };
        error = run.add(&wbc, locked).map_or_else(errno, |()| 0);
        if first_error == 0 {
            first_error = error;
        }
    }
    let flushed = run.flush().map_or_else(errno, |()| 0);
    [first_error, error, flushed]
        .into_iter()
        .find(|&e| e != 0)
        .unwrap_or(0)
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn readahead(rac: *mut bindings::readahead_control) {
    // SAFETY: the VFS passes its readahead request for a ferrofs file, live for the call.
    if let Some(rac) = unsafe { Readahead::from_raw(rac) } {
        fsops::readahead(rac);
    }
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn write_begin(
    _file: *mut bindings::file,
    mapping: *mut bindings::address_space,
    pos: bindings::loff_t,
    len: ffi::c_uint,
    foliop: *mut *mut bindings::folio,
    _fsdata: *mut *mut ffi::c_void,
) -> ffi::c_int {
    // SAFETY: the VFS passes a ferrofs file's mapping; the helper returns a locked,
    // referenced folio or an error pointer.
    let folio = unsafe { bindings::ferrofs_grab_write_folio(mapping, pos) };
    // SAFETY: only inspects the pointer value.
    if unsafe { bindings::ferrofs_is_err(folio.cast()) } {
        // SAFETY: as above.
        return unsafe { bindings::ferrofs_ptr_err(folio.cast()) } as ffi::c_int;
    }
    // SAFETY: the folio is locked and ours (above).
    let Some(locked) = (unsafe { LockedFolio::from_raw(folio) }) else {
        return ENOMEM.to_errno();
    };
    let (Ok(pos), Ok(len)) = (u64::try_from(pos), usize::try_from(len)) else {
        locked.unlock();
        // SAFETY: drops the reference the helper took.
        unsafe { bindings::ferrofs_folio_put(folio) };
        return EINVAL.to_errno();
    };
    if let Err(err) = fsops::prepare_write(&locked, pos, len) {
        locked.unlock();
        // SAFETY: drops the reference the helper took.
        unsafe { bindings::ferrofs_folio_put(folio) };
        return err.to_errno();
    }
    // SAFETY: `foliop` is the caller's out-parameter; the folio stays locked and
    // referenced until `write_end`.
    unsafe { *foliop = folio };
    0
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn write_end(
    _file: *mut bindings::file,
    _mapping: *mut bindings::address_space,
    pos: bindings::loff_t,
    len: ffi::c_uint,
    copied: ffi::c_uint,
    folio: *mut bindings::folio,
    _fsdata: *mut ffi::c_void,
) -> ffi::c_int {
    // SAFETY: the folio `write_begin` returned, still locked and referenced.
    let Some(locked) = (unsafe { LockedFolio::from_raw(folio) }) else {
        return EINVAL.to_errno();
    };
    let pos = u64::try_from(pos).unwrap_or(0);
    let copied = fsops::finish_write(&locked, pos, len as usize, copied as usize);
    locked.unlock();
    // SAFETY: drops the reference `write_begin` took.
    unsafe { bindings::ferrofs_folio_put(folio) };
    ffi::c_int::try_from(copied).unwrap_or(0)
}

// ---- symlinks and special files ----

pub(crate) static SYMLINK_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        get_link: Some(get_link),
        setattr: Some(setattr),
        listxattr: Some(listxattr),
        // SAFETY: an all-zero `inode_operations` is valid: every other callback is absent.
        ..unsafe { core::mem::zeroed() }
    });

pub(crate) static SPECIAL_INODE_OPS: Table<bindings::inode_operations> =
    Table(bindings::inode_operations {
        setattr: Some(setattr),
        listxattr: Some(listxattr),
        // SAFETY: an all-zero `inode_operations` is valid: every other callback is absent.
        ..unsafe { core::mem::zeroed() }
    });

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn get_link(
    dentry: *mut bindings::dentry,
    inode: *mut bindings::inode,
    done: *mut bindings::delayed_call,
) -> *const ffi::c_char {
    if dentry.is_null() {
        // RCU walk: reading the engine may sleep, so ask for the slow path.
        return err_ptr(ECHILD);
    }
    // SAFETY: see the `# Safety` sections above.
    let inode = unsafe { Inode::from_raw(inode) };
    match fsops::get_link(inode) {
        Ok(target) => {
            let (buf, _, _) = target.into_raw_parts();
            // SAFETY: `buf` is a kmalloc'd, NUL-terminated string now owned by `done`,
            // which frees it with `kfree_link` when the VFS is done with it.
            unsafe { bindings::ferrofs_set_delayed_kfree(done, buf.cast()) };
            buf.cast_const().cast()
        }
        Err(err) => err_ptr(err),
    }
}

// ---- extended attributes ----

/// A handler for the attributes under `prefix`, all kept by the engine alike.
const fn xattr_handler(prefix: &'static CStr) -> Table<bindings::xattr_handler> {
    Table(bindings::xattr_handler {
        name: ptr::null(),
        prefix: prefix.as_char_ptr(),
        flags: 0,
        list: None,
        get: Some(xattr_get),
        set: Some(xattr_set),
    })
}

static XATTR_USER: Table<bindings::xattr_handler> = xattr_handler(c_str!("user."));
static XATTR_TRUSTED: Table<bindings::xattr_handler> = xattr_handler(c_str!("trusted."));
static XATTR_SECURITY: Table<bindings::xattr_handler> = xattr_handler(c_str!("security."));

/// The handlers, NULL-terminated, for `s_xattr`.
pub(crate) static XATTR_HANDLERS: Table<[*const bindings::xattr_handler; 4]> = Table([
    &XATTR_USER.0,
    &XATTR_TRUSTED.0,
    &XATTR_SECURITY.0,
    ptr::null(),
]);

/// The prefix of a handler of ours.
///
/// # Safety
///
/// `handler` must be one of the handlers above.
unsafe fn prefix_of<'a>(handler: *const bindings::xattr_handler) -> &'a [u8] {
    // SAFETY: our handlers are statics whose prefixes are NUL-terminated literals.
    unsafe { CStr::from_char_ptr((*handler).prefix) }.as_bytes()
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
unsafe extern "C" fn xattr_get(
    handler: *const bindings::xattr_handler,
    _dentry: *mut bindings::dentry,
    inode: *mut bindings::inode,
    name: *const ffi::c_char,
    buffer: *mut ffi::c_void,
    size: usize,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: the VFS calls our handlers with a live inode and a NUL-terminated name
        // (the part after the prefix).
        let (inode, name, prefix) = unsafe {
            (
                Inode::from_raw(inode),
                CStr::from_char_ptr(name),
                prefix_of(handler),
            )
        };
        let buf: &mut [u8] = if buffer.is_null() || size == 0 {
            &mut []
        } else {
            // SAFETY: the VFS passes a kernel buffer of `size` bytes, ours for the call.
            unsafe { core::slice::from_raw_parts_mut(buffer.cast(), size) }
        };
        let len = fsops::xattr_get(inode, prefix, name.as_bytes(), buf)?;
        ffi::c_int::try_from(len).map_err(|_| ERANGE)
    })
}

/// # Safety
///
/// Called by the VFS as the operation tables above promise, with the arguments
/// described at the first entry point of the same argument kind.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn xattr_set(
    handler: *const bindings::xattr_handler,
    _idmap: *mut bindings::mnt_idmap,
    _dentry: *mut bindings::dentry,
    inode: *mut bindings::inode,
    name: *const ffi::c_char,
    value: *const ffi::c_void,
    size: usize,
    flags: ffi::c_int,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: as in `xattr_get`; the inode is locked by the VFS.
        let (inode, name, prefix) = unsafe {
            (
                Inode::from_raw(inode),
                CStr::from_char_ptr(name),
                prefix_of(handler),
            )
        };
        let value = if value.is_null() {
            None
        } else if size == 0 {
            Some(&[][..])
        } else {
            // SAFETY: the VFS passes a kernel copy of the value, `size` bytes.
            Some(unsafe { core::slice::from_raw_parts(value.cast::<u8>(), size) })
        };
        fsops::xattr_set(inode, prefix, name.as_bytes(), value, flags)?;
        Ok(0)
    })
}
