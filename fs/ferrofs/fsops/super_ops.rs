// SPDX-License-Identifier: GPL-2.0

//! Super block operations (the last commit, `sync_fs`, `statfs`, the options shown, inode
//! write-back and eviction) and the inodes file handles name.

use kernel::prelude::*;
use kernel::str::CString;

use crate::engine::error::EngineError;
use crate::engine::fs::SetAttr;
use crate::engine::inode as ei;
use crate::vfs::dentry::{NoFsScope, SeqFile};
use crate::vfs::error::estale;
use crate::vfs::inode::{Inode, InodeRef};
use crate::vfs::super_block::{StatFs, SuperBlock};

use super::{get_inode, Ferrofs, DEFAULT_COMMIT_SECS, FERROFS_SUPER_MAGIC};

// ---- super block operations ----

/// `put_super`: the last commit, then the devices go.
pub(super) fn put_super(sb: &SuperBlock<Ferrofs>) {
    let Ok(info) = sb.info() else { return };
    let thread = info.thread.lock().take();
    drop(thread);
    if !sb.is_read_only() && !info.is_shut_down() {
        if let Err(err) = info.commit() {
            pr_err!(
                "{}: final commit failed (errno {})\n",
                &*info.id,
                -err.to_errno()
            );
        }
    }
    let _no_commit = info.commit_lock.lock();
    let _nofs = NoFsScope::enter();
    let fs = info.fs.lock().take();
    drop(fs);
}

/// `sync_fs`: commit (the waiting pass only; the first pass has nothing to start).
pub(super) fn sync_fs(sb: &SuperBlock<Ferrofs>, wait: bool) -> Result {
    if !wait || sb.is_read_only() {
        return Ok(());
    }
    sb.info()?.commit()
}

/// `freeze_fs`: everything on disk before the freeze.
pub(super) fn freeze_fs(sb: &SuperBlock<Ferrofs>) -> Result {
    sync_fs(sb, true)
}

/// `statfs`: sizes in blocks; free space is what the data profile can still give files.
pub(super) fn statfs(sb: &SuperBlock<Ferrofs>) -> Result<StatFs> {
    let info = sb.info()?;
    let (st, uuid) = info.with_fs(|fs| Ok((fs.statfs(), fs.vol.fsid())))?;
    let word = |i: usize| {
        let mut w = [0u8; 4];
        for (j, b) in w.iter_mut().enumerate() {
            *b = uuid.get(i * 4 + j).copied().unwrap_or(0);
        }
        u32::from_le_bytes(w)
    };
    // As btrfs counts: used is what the blocks in use take (not the chunks allocated),
    // free is the rest, and available is what file data can still get (free space of the
    // data chunks, and what new data chunks can take of the unallocated space): less than
    // free, which counts the free space of the metadata chunks too.
    let bs = u64::from(st.block_size);
    let blocks = st.total_bytes / bs;
    let free = blocks.saturating_sub(st.used_bytes.div_ceil(bs));
    Ok(StatFs {
        magic: FERROFS_SUPER_MAGIC,
        block_size: st.block_size,
        blocks,
        free,
        available: (st.free_bytes / bs).min(free),
        files: 0,
        files_free: 0,
        name_len: ei::NAME_MAX as u32,
        fsid: [word(0) ^ word(2), word(1) ^ word(3)],
    })
}

/// `show_options`: the options that differ from the defaults.
pub(super) fn show_options(sb: &SuperBlock<Ferrofs>, seq: &mut SeqFile) -> Result {
    let info = sb.info()?;
    for path in info.devices.iter() {
        seq.write(b",device=");
        seq.write(path.as_bytes());
    }
    let commit_secs = info.commit_secs();
    if commit_secs != DEFAULT_COMMIT_SECS {
        let text = CString::try_from_fmt(format_args!(",commit={}", commit_secs))?;
        seq.write(text.as_bytes());
    }
    if info.degraded {
        seq.write(b",degraded");
    }
    if info.skip_balance {
        seq.write(b",skip_balance");
    }
    Ok(())
}

/// `write_inode`: the times the VFS changed (atime, mtime from writes) go to the engine.
pub(super) fn write_inode(inode: &Inode<Ferrofs>) -> Result {
    let sb = inode.super_block();
    if inode.ino() == 0 || sb.is_read_only() {
        return Ok(());
    }
    let (atime, mtime, ctime) = inode.times();
    let attr = SetAttr {
        atime: Some(atime),
        mtime: Some(mtime),
        ctime: Some(ctime),
        ..SetAttr::default()
    };
    let ino = inode.ino();
    match sb
        .info()?
        .with_fs(|fs| match fs.setattr(ino, &attr, ctime) {
            Err(EngineError::NotFound) => Ok(()),
            other => other.map(|_| ()),
        }) {
        Ok(()) => Ok(()),
        Err(err) => Err(err),
    }
}

/// `evict_inode` (after the page cache went): an inode without names is freed.
pub(super) fn evict_inode(inode: &Inode<Ferrofs>) {
    let ino = inode.ino();
    let sb = inode.super_block();
    if ino == 0 || inode.nlink() != 0 || sb.is_read_only() {
        return;
    }
    let Ok(info) = sb.info() else { return };
    if let Err(err) = info.with_fs(|fs| fs.evict(ino)) {
        pr_err!(
            "{}: cannot free inode {} (errno {}); fsck will find it\n",
            &*info.id,
            ino,
            -err.to_errno()
        );
    }
}

// ---- file handles ----

/// The inode a file handle names: gone, or a later inode of the same number, is `ESTALE`.
pub(super) fn handle_inode(
    sb: &SuperBlock<Ferrofs>,
    ino: u64,
    generation: u32,
) -> Result<InodeRef<Ferrofs>> {
    if ino == 0 {
        return Err(estale());
    }
    let inode = get_inode(sb, ino).map_err(|err| if err == ENOENT { estale() } else { err })?;
    if inode.generation() != generation {
        return Err(estale());
    }
    Ok(inode)
}

/// The parent of a directory found from a file handle (`..`).
pub(super) fn handle_parent(dir: &Inode<Ferrofs>) -> Result<InodeRef<Ferrofs>> {
    let sb = dir.super_block();
    let ino = dir.ino();
    let parent = sb.info()?.with_fs(|fs| fs.parent_dir(ino))?;
    get_inode(sb, parent)
}
