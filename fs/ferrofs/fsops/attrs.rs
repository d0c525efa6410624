// SPDX-License-Identifier: GPL-2.0

//! Attributes: `setattr`, POSIX ACLs (stored as extended attributes), the inode flags of
//! `FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`, and extended attributes.

use kernel::prelude::*;

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::fs::{self as efs, Fs, SetAttr};
use crate::engine::inode as ei;
use crate::engine::mem::FVec;
use crate::vfs::acl::{self, Acl, AclKind, OwnedAcl};
use crate::vfs::address_space::Mapping;
use crate::vfs::blockdev::KernelDev;
use crate::vfs::dentry::Dentry;
use crate::vfs::error::{eopnotsupp, from_engine};
use crate::vfs::inode::{Idmap, Inode, Refresh};
use crate::vfs::inode_ops::{AttrRequest, FileAttr, Kstat};
use crate::vfs::task::capable_sys_admin;

use super::data::BLOCK;
use super::Ferrofs;

// ---- attributes ----

/// `setattr`: the VFS checks the change and copies it into the VFS inode; the engine then
/// takes the inode's new values.
pub(super) fn setattr(request: AttrRequest<'_, Ferrofs>) -> Result {
    let inode = request.dentry().inode().ok_or(ENOENT)?;
    let change = request.prepare()?;
    let ino = inode.ino();
    let info = inode.super_block().info()?;
    let mut size = None;
    let mut trim = false;
    if let Some(new) = change.new_size()? {
        if inode.mode() & ei::S_IFMT != ei::S_IFREG {
            return Err(EINVAL);
        }
        if new > efs::MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        // A truncate that does not grow the file also releases the blocks preallocated
        // past its end (the engine's size may still lag behind the page cache's).
        trim = new <= inode.size();
        if new != inode.size() {
            // The page cache first (which sets the new size): a dirty page past the new
            // end must not be written back (and grow the file again) after the engine
            // cut it.
            inode.truncate_page_cache(new);
            // A size change is a change of contents, also for truncate(2), which asks
            // for no time update (times the caller set are applied next).
            inode.touch_mtime(inode.now());
        }
        size = Some(new);
    }
    change.copy_to_inode()?;
    let (atime, mtime, ctime) = inode.times();
    let (uid, gid) = inode.owner();
    let attr = SetAttr {
        mode: Some(inode.mode()),
        uid: Some(uid),
        gid: Some(gid),
        size,
        trim,
        atime: Some(atime),
        mtime: Some(mtime),
        ctime: Some(ctime),
        flags: None,
    };
    let e = info.with_fs(|fs| fs.setattr(ino, &attr, ctime))?;
    inode.refresh(&e, Refresh::Meta);
    change.update_acl()
}

// ---- POSIX ACLs ----

/// The ACLs a new inode inherits, in the xattr form they are stored in.
pub(super) struct InheritedXattrs {
    access: Option<KVec<u8>>,
    default: Option<KVec<u8>>,
}

impl InheritedXattrs {
    pub(super) fn of(acls: &acl::Inherited) -> Result<Self> {
        Ok(Self {
            access: acls.access.as_ref().map(|a| a.to_xattr()).transpose()?,
            default: acls.default.as_ref().map(|a| a.to_xattr()).transpose()?,
        })
    }

    /// (name, value) of each, for [`Fs::create_with_xattrs`].
    pub(super) fn list(&self) -> Result<FVec<(&'static [u8], &[u8])>> {
        let mut out = FVec::new();
        for (kind, value) in [
            (AclKind::Access, &self.access),
            (AclKind::Default, &self.default),
        ] {
            if let Some(v) = value {
                out.try_push((kind.xattr_name(), &v[..]))
                    .map_err(from_engine)?;
            }
        }
        Ok(out)
    }
}

/// `get_inode_acl`: the ACL stored in the inode's xattr of that name, if any.
pub(super) fn get_acl(inode: &Inode<Ferrofs>, kind: AclKind) -> Result<Option<OwnedAcl>> {
    let ino = inode.ino();
    let value =
        inode
            .super_block()
            .info()?
            .with_fs(|fs| match fs.get_xattr(ino, kind.xattr_name()) {
                Ok(v) => Ok(Some(v)),
                Err(EngineError::NoData) => Ok(None),
                Err(err) => Err(err),
            })?;
    match value {
        Some(v) => OwnedAcl::from_xattr(&v),
        None => Ok(None),
    }
}

/// `set_acl`: an access ACL also sets the mode (and is not stored when the mode says all
/// it says); only directories have a default ACL.
pub(super) fn set_acl(
    idmap: Idmap,
    dentry: &Dentry<Ferrofs>,
    acl: Option<&Acl>,
    kind: AclKind,
) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let mut store = acl;
    let mut mode = None;
    match kind {
        AclKind::Default if inode.mode() & ei::S_IFMT != ei::S_IFDIR => {
            return if acl.is_some() { Err(EACCES) } else { Ok(()) };
        }
        AclKind::Default => {}
        AclKind::Access => {
            if let Some(a) = acl {
                let (new_mode, keep) = acl::mode_for_access_acl(idmap, inode, a)?;
                mode = Some(new_mode);
                if !keep {
                    store = None;
                }
            }
        }
    }
    let value = store.map(|a| a.to_xattr()).transpose()?;
    let (ino, now, name) = (inode.ino(), inode.now(), kind.xattr_name());
    let e = inode.super_block().info()?.with_fs(|fs| {
        match &value {
            Some(v) => fs.set_xattr(ino, name, v, now)?,
            None => match fs.remove_xattr(ino, name, now) {
                Ok(()) | Err(EngineError::NoData) => {}
                Err(err) => return Err(err),
            },
        }
        match mode {
            Some(mode) => {
                let attr = SetAttr {
                    mode: Some(mode),
                    ..SetAttr::default()
                };
                fs.setattr(ino, &attr, now)
            }
            None => fs.getattr(ino),
        }
    })?;
    inode.refresh(&e, Refresh::Meta);
    acl::set_cached(inode, kind, store);
    Ok(())
}

// ---- inode flags (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS) ----

/// The flags ferrofs keeps: synchronous writes, immutable, append-only, no dump, no
/// access times.
const SUPPORTED_FLAGS: u64 = 0x8 | 0x10 | 0x20 | 0x40 | 0x80;

/// The inode flags `statx` reports, as `STATX_ATTR_*` (the same bits as the flags):
/// immutable, append-only, no dump.
const STATX_FLAGS: u64 = 0x10 | 0x20 | 0x40;

/// `getattr`: the VFS filled in the rest from the inode; the flags `statx` reports, and
/// the creation time, come from the engine, since the VFS inode keeps neither. The space
/// in use counts the blocks that dirty data over holes will take once written back (as
/// btrfs, XFS and ext4 count delayed allocations), so that it does not change at
/// writeback.
pub(super) fn getattr(inode: &Inode<Ferrofs>, stat: &mut Kstat) -> Result {
    let ino = inode.ino();
    let mapping = (inode.mode() & ei::S_IFMT == ei::S_IFREG).then(|| inode.mapping());
    let (e, delayed) = inode.super_block().info()?.with_fs(|fs| {
        let e = fs.getattr(ino)?;
        // Under the engine's lock, so no writeback places blocks meanwhile: a page under
        // writeback is either over a hole still, or counted in `bytes` already.
        let delayed = match mapping {
            Some(mapping) => delayed_blocks(fs, ino, mapping)?,
            None => 0,
        };
        Ok((e, delayed))
    })?;
    stat.set_attributes(e.flags & STATX_FLAGS, STATX_FLAGS);
    stat.set_btime(&e.btime);
    stat.set_bytes(e.bytes.saturating_add(delayed.saturating_mul(BLOCK)));
    Ok(())
}

/// The blocks of `ino` that its dirty pages, and those under writeback, cover where the
/// engine has none yet (one page per block).
fn delayed_blocks(
    fs: &mut Fs<KernelDev>,
    ino: u64,
    mapping: &Mapping<Ferrofs>,
) -> EngineResult<u64> {
    let mut delayed = 0u64;
    mapping.for_each_unwritten_run(0, |start, count| {
        let mapped = fs.mapped_blocks(ino, start, count)?;
        delayed = delayed.saturating_add(count.saturating_sub(mapped));
        Ok(true)
    })?;
    Ok(delayed)
}

/// `fileattr_get`: the inode's flags.
pub(super) fn get_flags(inode: &Inode<Ferrofs>, attr: &mut FileAttr) -> Result {
    let ino = inode.ino();
    let e = inode.super_block().info()?.with_fs(|fs| fs.getattr(ino))?;
    attr.fill_flags((e.flags & SUPPORTED_FLAGS) as u32);
    Ok(())
}

/// `fileattr_set`, from `FS_IOC_SETFLAGS` or `FS_IOC_FSSETXATTR` (the VFS checked the
/// caller may change them, and turned fsxattr flags into inode flags): other flags, and
/// what only fsxattr can say (extent size hints, project ids), are `EOPNOTSUPP`.
pub(super) fn set_flags(inode: &Inode<Ferrofs>, attr: &FileAttr) -> Result {
    if attr.has_fsx_only() {
        return Err(eopnotsupp());
    }
    let flags = u64::from(attr.flags());
    if flags & !SUPPORTED_FLAGS != 0 {
        return Err(eopnotsupp());
    }
    let ino = inode.ino();
    let now = inode.now();
    let attr = SetAttr {
        flags: Some(flags),
        ..SetAttr::default()
    };
    let e = inode
        .super_block()
        .info()?
        .with_fs(|fs| fs.setattr(ino, &attr, now))?;
    inode.refresh(&e, Refresh::Meta);
    inode.apply_flags(flags);
    Ok(())
}

// ---- extended attributes ----

/// Handler `get`: the value of `prefix` + `name` into `buf` (or its size, for an empty
/// buffer).
pub(super) fn xattr_get(
    inode: &Inode<Ferrofs>,
    prefix: &[u8],
    name: &[u8],
    buf: &mut [u8],
) -> Result<usize> {
    let full = xattr_name(prefix, name)?;
    let ino = inode.ino();
    let value = inode
        .super_block()
        .info()?
        .with_fs(|fs| fs.get_xattr(ino, &full))?;
    if buf.is_empty() {
        return Ok(value.len());
    }
    let dst = buf.get_mut(..value.len()).ok_or(ERANGE)?;
    dst.copy_from_slice(&value);
    Ok(value.len())
}

/// `setxattr` flag: fail if the attribute exists.
const XATTR_CREATE: i32 = 1;
/// `setxattr` flag: fail if the attribute does not exist.
const XATTR_REPLACE: i32 = 2;

/// Handler `set`: sets (or with `None`, removes) `prefix` + `name`.
pub(super) fn xattr_set(
    inode: &Inode<Ferrofs>,
    prefix: &[u8],
    name: &[u8],
    value: Option<&[u8]>,
    flags: i32,
) -> Result {
    let full = xattr_name(prefix, name)?;
    let ino = inode.ino();
    let now = inode.now();
    let e = inode.super_block().info()?.with_fs(|fs| {
        let exists = match fs.get_xattr(ino, &full) {
            Ok(_) => true,
            Err(EngineError::NoData) => false,
            Err(err) => return Err(err),
        };
        if flags & XATTR_CREATE != 0 && exists {
            return Err(EngineError::Exists);
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(EngineError::NoData);
        }
        match value {
            Some(v) => fs.set_xattr(ino, &full, v, now)?,
            None => fs.remove_xattr(ino, &full, now)?,
        }
        fs.getattr(ino)
    })?;
    inode.refresh(&e, Refresh::Meta);
    Ok(())
}

fn xattr_name(prefix: &[u8], name: &[u8]) -> Result<FVec<u8>> {
    let mut full = FVec::new();
    full.try_extend_from_slice(prefix).map_err(from_engine)?;
    full.try_extend_from_slice(name).map_err(from_engine)?;
    Ok(full)
}

/// `listxattr`: the names, NUL-separated; `trusted.` ones only for `CAP_SYS_ADMIN`.
pub(super) fn xattr_list(dentry: &Dentry<Ferrofs>, buf: &mut [u8]) -> Result<usize> {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let may_list_trusted = capable_sys_admin();
    let ino = inode.ino();
    let names = inode
        .super_block()
        .info()?
        .with_fs(|fs| fs.list_xattr(ino))?;
    let mut len = 0usize;
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.") && !may_list_trusted {
            continue;
        }
        let end = len.saturating_add(name.len()).saturating_add(1);
        if !buf.is_empty() {
            let dst = buf.get_mut(len..end).ok_or(ERANGE)?;
            let (text, nul) = dst.split_at_mut(name.len());
            text.copy_from_slice(name);
            nul.fill(0);
        }
        len = end;
    }
    Ok(len)
}
