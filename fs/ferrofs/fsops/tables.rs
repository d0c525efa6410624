// SPDX-License-Identifier: GPL-2.0

//! The operation tables: the implementations of the operation traits of `vfs` (super
//! block, file handles, one type for each kind of inode, open file and page cache, one
//! for each extended-attribute prefix), from which the VFS layer builds the kernel's
//! tables. Each forwards to the operation in its family's file.

use kernel::c_str;
use kernel::prelude::*;
use kernel::str::CStr;

use crate::engine::inode as ei;
use crate::vfs::acl::{Acl, AclKind, OwnedAcl};
use crate::vfs::address_space::{AddressSpaceOperations, Mapping, WriteFolio};
use crate::vfs::dentry::{Dentry, DirContext, SeqFile};
use crate::vfs::export::ExportOperations;
use crate::vfs::file::{Contents, File, FileOperations, IoctlCaller, TmpFile};
use crate::vfs::folio::{LockedFolio, Readahead, WritebackControl};
use crate::vfs::inode::{Idmap, Inode, InodeRef};
use crate::vfs::inode_ops::{AttrRequest, FiemapInfo, FileAttr, InodeOperations, Kstat};
use crate::vfs::iov::IovIter;
use crate::vfs::super_block::{StatFs, SuperBlock, SuperOperations};
use crate::vfs::xattr::{self, XattrHandler, XattrHandlers};

use super::attrs::{
    get_acl, get_flags, getattr, set_acl, set_flags, setattr, xattr_get, xattr_list, xattr_set,
};
use super::data::{
    direct_io, fallocate, fiemap, fsync, llseek, read_folio, readahead, write_begin, write_end,
    writepages,
};
use super::ioctl;
use super::names::{
    create, get_link, link, lookup, readdir, rename, rmdir, tmpfile, unlink, NewKind,
};
use super::super_ops::{
    evict_inode, freeze_fs, handle_inode, handle_parent, put_super, show_options, statfs, sync_fs,
    write_inode,
};
use super::Ferrofs;

#[vtable]
impl SuperOperations for Ferrofs {
    type FileSystem = Ferrofs;

    fn put_super(sb: &SuperBlock<Ferrofs>) {
        put_super(sb)
    }

    fn sync_fs(sb: &SuperBlock<Ferrofs>, wait: bool) -> Result {
        sync_fs(sb, wait)
    }

    fn freeze_fs(sb: &SuperBlock<Ferrofs>) -> Result {
        freeze_fs(sb)
    }

    fn statfs(sb: &SuperBlock<Ferrofs>) -> Result<StatFs> {
        statfs(sb)
    }

    fn show_options(sb: &SuperBlock<Ferrofs>, seq: &mut SeqFile) -> Result {
        show_options(sb, seq)
    }

    fn write_inode(inode: &Inode<Ferrofs>) -> Result {
        write_inode(inode)
    }

    fn evict_inode(inode: &Inode<Ferrofs>) {
        evict_inode(inode)
    }
}

impl ExportOperations for Ferrofs {
    type FileSystem = Ferrofs;

    fn inode(sb: &SuperBlock<Ferrofs>, ino: u64, generation: u32) -> Result<InodeRef<Ferrofs>> {
        handle_inode(sb, ino, generation)
    }

    fn parent(dir: &Inode<Ferrofs>) -> Result<InodeRef<Ferrofs>> {
        handle_parent(dir)
    }
}

/// Directories' inode operations.
pub(crate) struct DirInode;

#[vtable]
impl InodeOperations for DirInode {
    type FileSystem = Ferrofs;

    fn get_inode_acl(inode: &Inode<Ferrofs>, kind: AclKind) -> Result<Option<OwnedAcl>> {
        get_acl(inode, kind)
    }

    fn set_acl(idmap: Idmap, dentry: &Dentry<Ferrofs>, acl: Option<&Acl>, kind: AclKind) -> Result {
        set_acl(idmap, dentry, acl, kind)
    }

    fn lookup(dir: &Inode<Ferrofs>, dentry: &Dentry<Ferrofs>) -> Result<Option<InodeRef<Ferrofs>>> {
        lookup(dir, dentry)
    }

    fn create(
        idmap: Idmap,
        dir: &Inode<Ferrofs>,
        dentry: &Dentry<Ferrofs>,
        mode: u32,
        _excl: bool,
    ) -> Result {
        create(idmap, dir, dentry, mode, NewKind::Node(0))
    }

    fn mknod(
        idmap: Idmap,
        dir: &Inode<Ferrofs>,
        dentry: &Dentry<Ferrofs>,
        mode: u32,
        rdev: u32,
    ) -> Result {
        create(idmap, dir, dentry, mode, NewKind::Node(u64::from(rdev)))
    }

    fn mkdir(idmap: Idmap, dir: &Inode<Ferrofs>, dentry: &Dentry<Ferrofs>, mode: u32) -> Result {
        create(idmap, dir, dentry, mode | ei::S_IFDIR, NewKind::Dir)
    }

    fn symlink(
        idmap: Idmap,
        dir: &Inode<Ferrofs>,
        dentry: &Dentry<Ferrofs>,
        target: &CStr,
    ) -> Result {
        let mode = ei::S_IFLNK | 0o777;
        create(
            idmap,
            dir,
            dentry,
            mode,
            NewKind::Symlink(target.as_bytes()),
        )
    }

    fn tmpfile(
        idmap: Idmap,
        dir: &Inode<Ferrofs>,
        file: TmpFile<'_, Ferrofs>,
        mode: u32,
    ) -> Result {
        tmpfile(idmap, dir, file, mode | ei::S_IFREG)
    }

    fn link(old: &Dentry<Ferrofs>, dir: &Inode<Ferrofs>, dentry: &Dentry<Ferrofs>) -> Result {
        link(old, dir, dentry)
    }

    fn unlink(dir: &Inode<Ferrofs>, dentry: &Dentry<Ferrofs>) -> Result {
        unlink(dir, dentry)
    }

    fn rmdir(dir: &Inode<Ferrofs>, dentry: &Dentry<Ferrofs>) -> Result {
        rmdir(dir, dentry)
    }

    fn rename(
        idmap: Idmap,
        old_dir: &Inode<Ferrofs>,
        old: &Dentry<Ferrofs>,
        new_dir: &Inode<Ferrofs>,
        new: &Dentry<Ferrofs>,
        flags: u32,
    ) -> Result {
        rename(idmap, old_dir, old, new_dir, new, flags)
    }

    fn setattr(request: AttrRequest<'_, Ferrofs>) -> Result {
        setattr(request)
    }

    fn listxattr(dentry: &Dentry<Ferrofs>, buf: &mut [u8]) -> Result<usize> {
        xattr_list(dentry, buf)
    }

    fn getattr(inode: &Inode<Ferrofs>, stat: &mut Kstat) -> Result {
        getattr(inode, stat)
    }

    fn fileattr_get(inode: &Inode<Ferrofs>, attr: &mut FileAttr) -> Result {
        get_flags(inode, attr)
    }

    fn fileattr_set(inode: &Inode<Ferrofs>, attr: &FileAttr) -> Result {
        set_flags(inode, attr)
    }
}

/// Regular files' inode operations.
pub(crate) struct FileInode;

#[vtable]
impl InodeOperations for FileInode {
    type FileSystem = Ferrofs;

    fn get_inode_acl(inode: &Inode<Ferrofs>, kind: AclKind) -> Result<Option<OwnedAcl>> {
        get_acl(inode, kind)
    }

    fn set_acl(idmap: Idmap, dentry: &Dentry<Ferrofs>, acl: Option<&Acl>, kind: AclKind) -> Result {
        set_acl(idmap, dentry, acl, kind)
    }

    fn setattr(request: AttrRequest<'_, Ferrofs>) -> Result {
        setattr(request)
    }

    fn listxattr(dentry: &Dentry<Ferrofs>, buf: &mut [u8]) -> Result<usize> {
        xattr_list(dentry, buf)
    }

    fn fiemap(inode: &Inode<Ferrofs>, info: &mut FiemapInfo, start: u64, len: u64) -> Result {
        fiemap(inode, info, start, len)
    }

    fn getattr(inode: &Inode<Ferrofs>, stat: &mut Kstat) -> Result {
        getattr(inode, stat)
    }

    fn fileattr_get(inode: &Inode<Ferrofs>, attr: &mut FileAttr) -> Result {
        get_flags(inode, attr)
    }

    fn fileattr_set(inode: &Inode<Ferrofs>, attr: &FileAttr) -> Result {
        set_flags(inode, attr)
    }
}

/// Symbolic links' inode operations.
pub(crate) struct SymlinkInode;

#[vtable]
impl InodeOperations for SymlinkInode {
    type FileSystem = Ferrofs;

    fn get_link(inode: &Inode<Ferrofs>) -> Result<KVec<u8>> {
        get_link(inode)
    }

    fn setattr(request: AttrRequest<'_, Ferrofs>) -> Result {
        setattr(request)
    }

    fn listxattr(dentry: &Dentry<Ferrofs>, buf: &mut [u8]) -> Result<usize> {
        xattr_list(dentry, buf)
    }
}

/// Device nodes', FIFOs' and sockets' inode operations (their file operations are the
/// VFS's).
pub(crate) struct SpecialInode;

#[vtable]
impl InodeOperations for SpecialInode {
    type FileSystem = Ferrofs;

    fn get_inode_acl(inode: &Inode<Ferrofs>, kind: AclKind) -> Result<Option<OwnedAcl>> {
        get_acl(inode, kind)
    }

    fn set_acl(idmap: Idmap, dentry: &Dentry<Ferrofs>, acl: Option<&Acl>, kind: AclKind) -> Result {
        set_acl(idmap, dentry, acl, kind)
    }

    fn setattr(request: AttrRequest<'_, Ferrofs>) -> Result {
        setattr(request)
    }

    fn listxattr(dentry: &Dentry<Ferrofs>, buf: &mut [u8]) -> Result<usize> {
        xattr_list(dentry, buf)
    }
}

/// Open directories.
pub(crate) struct DirFile;

#[vtable]
impl FileOperations for DirFile {
    type FileSystem = Ferrofs;

    const CONTENTS: Contents = Contents::Directory;

    fn read_dir(file: &File<Ferrofs>, ctx: &mut DirContext) -> Result {
        readdir(file, ctx)
    }

    fn fsync(file: &File<Ferrofs>, start: i64, end: i64, _datasync: bool) -> Result {
        fsync(file, start, end)
    }

    fn ioctl(file: &File<Ferrofs>, cmd: u32, arg: usize, caller: IoctlCaller) -> Result<i64> {
        ioctl::ioctl(file, cmd, arg, caller)
    }
}

/// Open regular files.
pub(crate) struct RegularFile;

#[vtable]
impl FileOperations for RegularFile {
    type FileSystem = Ferrofs;

    const CONTENTS: Contents = Contents::PageCache;

    fn llseek(file: &File<Ferrofs>, offset: i64, whence: i32) -> Result<i64> {
        llseek(file, offset, whence)
    }

    fn fsync(file: &File<Ferrofs>, start: i64, end: i64, _datasync: bool) -> Result {
        fsync(file, start, end)
    }

    fn fallocate(file: &File<Ferrofs>, mode: i32, offset: i64, len: i64) -> Result {
        fallocate(file, mode, offset, len)
    }

    fn ioctl(file: &File<Ferrofs>, cmd: u32, arg: usize, caller: IoctlCaller) -> Result<i64> {
        ioctl::ioctl(file, cmd, arg, caller)
    }
}

/// Regular files' page cache.
pub(crate) struct FileData;

#[vtable]
impl AddressSpaceOperations for FileData {
    type FileSystem = Ferrofs;

    fn read_folio(folio: LockedFolio<Ferrofs>) -> Result {
        read_folio(folio)
    }

    fn readahead(rac: Readahead<Ferrofs>) {
        readahead(rac)
    }

    fn writepages(mapping: &Mapping<Ferrofs>, wbc: &WritebackControl) -> Result {
        writepages(mapping, wbc)
    }

    fn write_begin(
        mapping: &Mapping<Ferrofs>,
        pos: u64,
        len: usize,
    ) -> Result<WriteFolio<Ferrofs>> {
        write_begin(mapping, pos, len)
    }

    fn write_end(folio: &WriteFolio<Ferrofs>, pos: u64, len: usize, copied: usize) -> usize {
        write_end(folio, pos, len, copied)
    }

    fn direct_io(file: &File<Ferrofs>, pos: i64, iter: &mut IovIter<'_>) -> Result<usize> {
        direct_io(file, pos, iter)
    }
}

/// Extended attributes of one name prefix, all kept by the engine alike.
macro_rules! xattr_namespace {
    ($name:ident, $prefix:literal) => {
        #[doc = concat!("The `", $prefix, "` extended attributes.")]
        pub(crate) struct $name;

        #[vtable]
        impl XattrHandler for $name {
            type FileSystem = Ferrofs;

            const PREFIX: &'static CStr = c_str!($prefix);

            fn get(inode: &Inode<Ferrofs>, name: &CStr, buf: &mut [u8]) -> Result<usize> {
                xattr_get(inode, Self::PREFIX.as_bytes(), name.as_bytes(), buf)
            }

            fn set(
                inode: &Inode<Ferrofs>,
                name: &CStr,
                value: Option<&[u8]>,
                flags: i32,
            ) -> Result {
                xattr_set(
                    inode,
                    Self::PREFIX.as_bytes(),
                    name.as_bytes(),
                    value,
                    flags,
                )
            }
        }
    };
}

xattr_namespace!(UserXattrs, "user.");
xattr_namespace!(TrustedXattrs, "trusted.");
xattr_namespace!(SecurityXattrs, "security.");

/// The extended attribute handlers of every ferrofs super block.
pub(super) static XATTR_HANDLERS: XattrHandlers<Ferrofs, 3> = XattrHandlers::new([
    xattr::handler::<UserXattrs>(),
    xattr::handler::<TrustedXattrs>(),
    xattr::handler::<SecurityXattrs>(),
]);
