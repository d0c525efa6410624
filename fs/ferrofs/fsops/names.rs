// SPDX-License-Identifier: GPL-2.0

//! Names: lookup, creating inodes (files, device nodes, directories, symbolic links,
//! unnamed files), links, unlink, rmdir, rename, symlink targets, and reading directories.

use kernel::prelude::*;

use crate::engine::error::EngineError;
use crate::engine::fs::{self as efs, Owner};
use crate::engine::inode as ei;
use crate::vfs::dentry::{Dentry, DirContext};
use crate::vfs::file::{File, TmpFile};
use crate::vfs::inode::{Idmap, Inode, InodeRef, NewInode, Refresh};

use super::attrs::InheritedXattrs;
use super::{get_inode, init_inode, Ferrofs};

/// `lookup`.
pub(super) fn lookup(
    dir: &Inode<Ferrofs>,
    dentry: &Dentry<Ferrofs>,
) -> Result<Option<InodeRef<Ferrofs>>> {
    let name = dentry.name();
    if name.len() > ei::NAME_MAX {
        return Err(crate::vfs::error::enametoolong());
    }
    let sb = dir.super_block();
    let dino = dir.ino();
    match sb.info()?.with_fs(|fs| fs.lookup(dino, name))? {
        Some(ino) => Ok(Some(get_inode(sb, ino)?)),
        None => Ok(None),
    }
}

/// What a new inode is.
pub(super) enum NewKind<'a> {
    /// A regular file, device node, FIFO or socket (`rdev` for device nodes).
    Node(u64),
    /// A directory.
    Dir,
    /// A symbolic link to the target.
    Symlink(&'a [u8]),
}

fn owner_of(new: &NewInode<Ferrofs>) -> Owner {
    let (uid, gid) = new.owner();
    Owner { uid, gid }
}

/// `create`, `mknod`, `mkdir`, `symlink`.
pub(super) fn create(
    idmap: Idmap,
    dir: &Inode<Ferrofs>,
    dentry: &Dentry<Ferrofs>,
    mode: u32,
    what: NewKind<'_>,
) -> Result {
    let new = NewInode::new(idmap, dir, mode)?;
    let acls = InheritedXattrs::of(&new.inherit_acls(dir)?)?;
    let xattrs = acls.list()?;
    let owner = owner_of(&new);
    let mode = new.mode();
    let name = dentry.name();
    let now = dir.now();
    let dino = dir.ino();
    let (e, parent) = dir.super_block().info()?.with_fs(|fs| {
        let e = fs.create_with_xattrs(&xattrs, now, |fs| match what {
            NewKind::Node(rdev) => fs.create(dino, name, mode, rdev, owner, now),
            NewKind::Dir => fs.mkdir(dino, name, mode & 0o7777, owner, now),
            NewKind::Symlink(target) => fs.symlink(dino, name, target, owner, now),
        })?;
        Ok((e, fs.getattr(dino)?))
    })?;
    dir.refresh(&parent, Refresh::All);
    let inode = new.finish(e.ino, |inode| init_inode(inode, &e))?;
    dentry.instantiate_new(inode);
    Ok(())
}

/// `tmpfile`: an unnamed file, an orphan until linked, bound to the file being opened.
pub(super) fn tmpfile(
    idmap: Idmap,
    dir: &Inode<Ferrofs>,
    file: TmpFile<'_, Ferrofs>,
    mode: u32,
) -> Result {
    let new = NewInode::new(idmap, dir, mode)?;
    let acls = InheritedXattrs::of(&new.inherit_acls(dir)?)?;
    let xattrs = acls.list()?;
    let owner = owner_of(&new);
    let mode = new.mode();
    let now = dir.now();
    let dino = dir.ino();
    let e = dir.super_block().info()?.with_fs(|fs| {
        fs.create_with_xattrs(&xattrs, now, |fs| fs.tmpfile(dino, mode, owner, now))
    })?;
    let inode = new.finish(e.ino, |inode| init_inode(inode, &e))?;
    // `d_tmpfile` drops the one link the VFS expects a new inode to have.
    inode.set_nlink(1);
    file.finish(inode)
}

/// `link`.
pub(super) fn link(
    old: &Dentry<Ferrofs>,
    dir: &Inode<Ferrofs>,
    dentry: &Dentry<Ferrofs>,
) -> Result {
    let inode = old.inode().ok_or(ENOENT)?;
    let (ino, dino) = (inode.ino(), dir.ino());
    let name = dentry.name();
    let now = dir.now();
    let (e, parent) = dir.super_block().info()?.with_fs(|fs| {
        let e = fs.link(ino, dino, name, now)?;
        Ok((e, fs.getattr(dino)?))
    })?;
    inode.refresh(&e, Refresh::Meta);
    dir.refresh(&parent, Refresh::All);
    dentry.instantiate(inode.hold());
    Ok(())
}

/// `unlink`.
pub(super) fn unlink(dir: &Inode<Ferrofs>, dentry: &Dentry<Ferrofs>) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let dino = dir.ino();
    let name = dentry.name();
    let now = dir.now();
    let (e, parent) = dir.super_block().info()?.with_fs(|fs| {
        let e = fs.unlink(dino, name, now)?;
        Ok((e, fs.getattr(dino)?))
    })?;
    inode.refresh(&e, Refresh::Meta);
    dir.refresh(&parent, Refresh::All);
    Ok(())
}

/// `rmdir`.
pub(super) fn rmdir(dir: &Inode<Ferrofs>, dentry: &Dentry<Ferrofs>) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let dino = dir.ino();
    let name = dentry.name();
    let now = dir.now();
    let parent = dir.super_block().info()?.with_fs(|fs| {
        fs.rmdir(dino, name, now)?;
        fs.getattr(dino)
    })?;
    inode.clear_nlink();
    dir.refresh(&parent, Refresh::All);
    Ok(())
}

/// `rename` (plain, `RENAME_NOREPLACE`, `RENAME_EXCHANGE`, `RENAME_WHITEOUT`).
pub(super) fn rename(
    idmap: Idmap,
    old_dir: &Inode<Ferrofs>,
    old: &Dentry<Ferrofs>,
    new_dir: &Inode<Ferrofs>,
    new: &Dentry<Ferrofs>,
    flags: u32,
) -> Result {
    if flags & !(efs::RENAME_NOREPLACE | efs::RENAME_EXCHANGE | efs::RENAME_WHITEOUT) != 0 {
        return Err(EINVAL);
    }
    // The whiteout's VFS inode first, for the owner the VFS rules give it (as for mknod).
    let whiteout = if flags & efs::RENAME_WHITEOUT != 0 {
        Some(NewInode::new(idmap, old_dir, ei::S_IFCHR)?)
    } else {
        None
    };
    let whiteout_owner = whiteout.as_ref().map(owner_of);
    let moved = old.inode().ok_or(ENOENT)?;
    let target = new.inode();
    let (sdir, ddir) = (old_dir.ino(), new_dir.ino());
    let (sname, dname) = (old.name(), new.name());
    let now = old_dir.now();
    let (mi, ti) = (moved.ino(), target.map(|t| t.ino()));
    let (s, d, m, t, w) = old_dir.super_block().info()?.with_fs(|fs| {
        let w = match whiteout_owner {
            Some(owner) => fs.rename_whiteout(sdir, sname, ddir, dname, flags, owner, now)?,
            None => {
                fs.rename(sdir, sname, ddir, dname, flags, now)?;
                None
            }
        };
        let t = match ti.map(|ino| fs.getattr(ino)) {
            Some(Err(EngineError::NotFound)) | None => None,
            Some(other) => Some(other?),
        };
        Ok((fs.getattr(sdir)?, fs.getattr(ddir)?, fs.getattr(mi)?, t, w))
    })?;
    // The whiteout needs no dentry (the VFS moves `old` to the new name); its inode is
    // set up and put, so a lookup finds it like any other.
    if let (Some(new_inode), Some(w)) = (whiteout, w) {
        drop(new_inode.finish(w.ino, |inode| init_inode(inode, &w))?);
    }
    old_dir.refresh(&s, Refresh::All);
    new_dir.refresh(&d, Refresh::All);
    moved.refresh(&m, Refresh::Meta);
    if let Some(target) = target {
        match t {
            Some(t) => target.refresh(&t, Refresh::Meta),
            // A directory replaced by the rename is gone.
            None => target.clear_nlink(),
        }
    }
    Ok(())
}

/// `get_link`: the target, NUL-terminated.
pub(super) fn get_link(inode: &Inode<Ferrofs>) -> Result<KVec<u8>> {
    let ino = inode.ino();
    let target = inode.super_block().info()?.with_fs(|fs| fs.readlink(ino))?;
    let mut out = KVec::with_capacity(target.len().saturating_add(1), GFP_KERNEL)?;
    out.extend_from_slice(&target, GFP_KERNEL)?;
    out.push(0, GFP_KERNEL)?;
    Ok(out)
}

/// `iterate_shared`: entries from the context's position; positions are the engine's
/// stable directory indexes (0 and 1 are `.` and `..`).
///
/// A stream ends where the directory ended when it started (read from position 0, as
/// after `opendir` or `rewinddir`; the end is kept with the open file): a renamed entry
/// takes a new position past the others, so a reader that renames each entry it reads
/// would otherwise read them again without end. POSIX leaves open whether entries added
/// since the stream began are seen.
pub(super) fn readdir(file: &File<Ferrofs>, ctx: &mut DirContext) -> Result {
    let dir = file.inode();
    let info = dir.super_block().info()?;
    let dino = dir.ino();
    let mut end = u64::try_from(file.cookie()).unwrap_or(u64::MAX);
    if ctx.pos() == 0 || end == 0 {
        // Positions start at 2, so a kept end is never 0.
        end = info.with_fs(|fs| fs.dir_end(dino))?;
        file.set_cookie(usize::try_from(end).unwrap_or(0));
    }
    if !ctx.emit_dots(file) {
        return Ok(());
    }
    loop {
        let pos = u64::try_from(ctx.pos()).map_err(|_| EINVAL)?.max(2);
        let entries = info.with_fs(|fs| fs.readdir_before(dino, pos, end, 64))?;
        if entries.is_empty() {
            return Ok(());
        }
        for e in entries.iter() {
            ctx.set_pos(i64::try_from(e.index).map_err(|_| EINVAL)?);
            if !ctx.emit(&e.name, e.ino, e.file_type) {
                return Ok(());
            }
            ctx.set_pos(i64::try_from(e.index.saturating_add(1)).map_err(|_| EINVAL)?);
        }
    }
}
