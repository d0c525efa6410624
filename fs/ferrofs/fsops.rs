// SPDX-License-Identifier: GPL-2.0

//! The filesystem logic: mount options, mounting, and every operation, in safe Rust over the
//! engine. The operation traits of `vfs` are implemented here, at the end of the file: the
//! VFS layer builds the kernel's operation tables from them and turns the kernel's
//! arguments into the safe types used here.

use core::sync::atomic::{AtomicU32, Ordering};

use kernel::c_str;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::str::{CStr, CString};
use kernel::sync::{Arc, Mutex};

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::format::{self, Probe, BLOCK_SIZE};
use crate::engine::fs::{self as efs, Fs, Owner, SetAttr};
use crate::engine::inode::{self as ei, ExtentKind};
use crate::engine::mem::FVec;
use crate::engine::volume::OpenOptions;
use crate::vfs::acl::{self, Acl, AclKind, OwnedAcl};
use crate::vfs::address_space::{AddressSpaceOperations, Mapping, WriteFolio};
use crate::vfs::bio::Plug;
use crate::vfs::blockdev::{DevFlusher, KernelDev};
use crate::vfs::dentry::{Dentry, DirContext, NoFsScope, SeqFile};
use crate::vfs::error::{eopnotsupp, estale, from_engine};
use crate::vfs::export::ExportOperations;
use crate::vfs::file::{self, Contents, File, FileOperations, IoctlCaller};
use crate::vfs::folio::{LockedFolio, Readahead, WritebackControl, WritebackFolio};
use crate::vfs::fs_type::{FileSystem, FsParameter};
use crate::vfs::inode::{self, Idmap, InitInode, Inode, InodeRef, NewInode, Refresh};
use crate::vfs::inode_ops::{self, AttrRequest, FiemapInfo, FileAttr, InodeOperations};
use crate::vfs::super_block::{NewSuperBlock, StatFs, SuperBlock, SuperOperations};
use crate::vfs::task::capable_sys_admin;
use crate::vfs::thread::CommitThread;
use crate::vfs::xattr::{self, XattrHandler, XattrHandlers};

mod ioctl;

/// `statfs` magic of ferrofs.
pub(crate) const FERROFS_SUPER_MAGIC: u64 = 0x4645_5252;

/// Default seconds between background commits.
const DEFAULT_COMMIT_SECS: u32 = 30;
/// Longest commit interval accepted (a day).
const MAX_COMMIT_SECS: u32 = 86_400;

/// The ferrofs filesystem type.
pub(crate) struct Ferrofs;

/// Mount options.
#[derive(Default)]
pub(crate) struct MountOptions {
    /// Further devices of the filesystem (`device=`, repeatable).
    devices: KVec<CString>,
    /// Seconds between background commits (`commit=`).
    commit_secs: Option<u32>,
    /// Mount with devices missing (`degraded`).
    degraded: bool,
    /// Do not resume an interrupted balance (`skip_balance`).
    skip_balance: bool,
}

#[vtable]
impl FileSystem for Ferrofs {
    const NAME: &'static CStr = c_str!("ferrofs");

    type Options = MountOptions;

    fn parse_param(opts: &mut MountOptions, param: &FsParameter<'_>) -> Result<bool> {
        parse_param(opts, param.key(), param.value())
    }

    fn fill_super(sb: &mut NewSuperBlock<'_>, opts: &MountOptions) -> Result {
        fill_super(sb, opts)
    }

    fn reconfigure(sb: &SuperBlock, opts: &MountOptions, read_only: bool) -> Result {
        reconfigure(sb, opts, read_only)
    }
}

fn parse_param(opts: &mut MountOptions, key: &CStr, value: Option<&CStr>) -> Result<bool> {
    let flag = |value: Option<&CStr>| -> Result {
        if value.is_some() {
            pr_err!("mount option \"{}\" takes no value\n", key);
            return Err(EINVAL);
        }
        Ok(())
    };
    match key.as_bytes() {
        // The device to mount: the VFS's own parameter.
        b"source" => Ok(false),
        b"device" => {
            let Some(path) = value.filter(|v| !v.as_bytes().is_empty()) else {
                pr_err!("mount option \"device\" needs a device path\n");
                return Err(EINVAL);
            };
            opts.devices.push(CString::try_from(path)?, GFP_KERNEL)?;
            Ok(true)
        }
        b"commit" => {
            let secs = value
                .and_then(|v| core::str::from_utf8(v.as_bytes()).ok())
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|&s| (1..=MAX_COMMIT_SECS).contains(&s));
            let Some(secs) = secs else {
                pr_err!(
                    "mount option \"commit\" needs a number of seconds from 1 to {}\n",
                    MAX_COMMIT_SECS
                );
                return Err(EINVAL);
            };
            opts.commit_secs = Some(secs);
            Ok(true)
        }
        b"degraded" => {
            flag(value)?;
            opts.degraded = true;
            Ok(true)
        }
        b"skip_balance" => {
            flag(value)?;
            opts.skip_balance = true;
            Ok(true)
        }
        _ => {
            pr_err!("unknown mount option \"{}\"\n", key);
            Err(EINVAL)
        }
    }
}

/// What a mounted ferrofs keeps: the engine behind its lock, and the options.
#[pin_data]
pub(crate) struct FsInfo {
    /// The background commit thread, which holds a reference to this state: stopped by
    /// `put_super` and by a remount read-only (a thread left running would keep the state).
    #[pin]
    thread: Mutex<Option<CommitThread>>,
    /// One commit at a time; taken before `fs`, and held while a commit flushes the
    /// devices without `fs`.
    #[pin]
    commit_lock: Mutex<()>,
    #[pin]
    fs: Mutex<Option<Fs<KernelDev>>>,
    /// The device name for messages.
    id: CString,
    devices: KVec<CString>,
    commit_secs: AtomicU32,
    degraded: bool,
    skip_balance: bool,
}

impl FsInfo {
    /// Runs `op` on the engine, under its lock and without filesystem reclaim. A failure
    /// that aborted the transaction is logged once.
    pub(crate) fn with_fs<R>(
        &self,
        op: impl FnOnce(&mut Fs<KernelDev>) -> EngineResult<R>,
    ) -> Result<R> {
        let _nofs = NoFsScope::enter();
        let mut guard = self.fs.lock();
        let fs = guard.as_mut().ok_or(EIO)?;
        let was_aborted = fs.aborted().is_some();
        let result = op(fs);
        if let (false, Some(err)) = (was_aborted, fs.aborted()) {
            pr_err!(
                "{}: transaction aborted ({}, errno {}): the filesystem is read-only now, at its last commit\n",
                &*self.id,
                err.message(),
                err.errno()
            );
        }
        result.map_err(|err| {
            if let EngineError::Corrupt { block, reason } = err {
                pr_err!(
                    "{}: corrupt metadata in block {}: {}\n",
                    &*self.id,
                    block,
                    reason
                );
            }
            from_engine(err)
        })
    }

    /// Seconds between background commits.
    pub(crate) fn commit_secs(&self) -> u32 {
        self.commit_secs.load(Ordering::Relaxed)
    }

    /// Commits if anything changed (the background thread, `sync`, `fsync`). The device
    /// flush between writing the blocks and writing the superblocks, the longest part,
    /// runs without the filesystem lock: other calls go on meanwhile, in the next
    /// transaction.
    pub(crate) fn commit(&self) -> Result {
        let _one_commit = self.commit_lock.lock();
        let started = self.with_fs(|fs| {
            if !fs.needs_commit() {
                return Ok(None);
            }
            let mut flushers = KVec::new();
            for slot in fs.vol.devices() {
                if let Some(dev) = slot.dev.as_ref() {
                    flushers
                        .push(dev.flusher(), GFP_KERNEL)
                        .map_err(|_| EngineError::NoMemory)?;
                }
            }
            let _plug = Plug::start();
            Ok(Some((fs.commit_start()?, flushers)))
        })?;
        let Some((ticket, flushers)) = started else {
            return Ok(());
        };
        let flushed = flushers
            .iter()
            .try_for_each(DevFlusher::flush)
            .map_err(|_| EngineError::Io);
        drop(flushers);
        self.with_fs(|fs| fs.commit_finish(ticket, flushed))
    }
}

fn owner_of(new: &NewInode) -> Owner {
    let (uid, gid) = new.owner();
    Owner { uid, gid }
}

fn fill_super(sb: &mut NewSuperBlock<'_>, opts: &MountOptions) -> Result {
    if let Err(err) = sb.set_block_size(BLOCK_SIZE) {
        pr_err!(
            "{}: device cannot use {}-byte blocks\n",
            sb.id(),
            BLOCK_SIZE
        );
        return Err(err);
    }
    // The main device first, for a clear message about what it holds.
    let block = match sb.read_block(format::SUPERBLOCK_OFFSET / u64::from(BLOCK_SIZE)) {
        Ok(block) => block,
        Err(err) => {
            pr_err!(
                "{}: cannot read the superblock at byte {} (device too small or I/O error)\n",
                sb.id(),
                format::SUPERBLOCK_OFFSET
            );
            return Err(err);
        }
    };
    // A damaged primary copy is not fatal: the engine mounts from the newest valid backup,
    // and the next commit rewrites every copy. A missing magic is: the device may hold
    // another filesystem now, which a stale backup must not be mounted over.
    let mut damaged_primary = None;
    match format::probe(block.data()) {
        Probe::NotFerrofs => {
            pr_err!(
                "{}: no ferrofs superblock found (bad magic at byte {})\n",
                sb.id(),
                format::SUPERBLOCK_OFFSET
            );
            return Err(EINVAL);
        }
        Probe::Damaged(err) => damaged_primary = Some(err),
        Probe::Ferrofs { version } if version == format::FORMAT_VERSION => {}
        Probe::Ferrofs { version } => {
            pr_err!(
                "{}: format version {} is not supported (this module mounts version {})\n",
                sb.id(),
                version,
                format::FORMAT_VERSION
            );
            return Err(eopnotsupp());
        }
    }
    drop(block);
    let read_only = sb.is_read_only();
    let mut devs = FVec::new();
    devs.try_push(KernelDev::of_super(sb)?)
        .map_err(from_engine)?;
    for path in opts.devices.iter() {
        let dev = KernelDev::open(path, !read_only, sb).inspect_err(|err| {
            pr_err!(
                "{}: cannot open device {} (errno {})\n",
                sb.id(),
                &**path,
                -err.to_errno()
            )
        })?;
        devs.try_push(dev).map_err(from_engine)?;
    }
    let open = OpenOptions {
        degraded: opts.degraded,
        read_only,
    };
    let mut fs = {
        let _nofs = NoFsScope::enter();
        Fs::open(devs, open).map_err(|err| {
            if let Some(primary) = &damaged_primary {
                pr_err!(
                    "{}: superblock at byte {} is damaged ({}), and no backup copy is valid\n",
                    sb.id(),
                    format::SUPERBLOCK_OFFSET,
                    primary.message()
                );
                return from_engine(*primary);
            }
            match err {
                EngineError::Corrupt { block, reason } => pr_err!(
                    "{}: cannot mount: corrupt metadata in block {}: {}\n",
                    sb.id(),
                    block,
                    reason
                ),
                other => pr_err!("{}: cannot mount: {}\n", sb.id(), other.message()),
            }
            from_engine(err)
        })?
    };
    if let Some(primary) = &damaged_primary {
        pr_warn!(
            "{}: superblock at byte {} is damaged ({}); mounted from the newest valid copy (generation {}){}\n",
            sb.id(),
            format::SUPERBLOCK_OFFSET,
            primary.message(),
            fs.vol.superblock().generation,
            if read_only { "" } else { ", the next commit rewrites it" }
        );
    }
    fs.set_keep_unlinked(true);
    let uuid = fs.vol.fsid();
    let mut devices = KVec::new();
    for path in opts.devices.iter() {
        devices.push(CString::try_from(&**path)?, GFP_KERNEL)?;
    }
    let id = CString::try_from(sb.id())?;
    let state = Arc::pin_init(
        pin_init!(FsInfo {
            thread <- new_mutex!(None),
            commit_lock <- new_mutex!(()),
            fs <- new_mutex!(Some(fs)),
            id,
            devices,
            commit_secs: AtomicU32::new(opts.commit_secs.unwrap_or(DEFAULT_COMMIT_SECS)),
            degraded: opts.degraded,
            skip_balance: opts.skip_balance,
        }),
        GFP_KERNEL,
    )?;
    sb.set_params::<Ferrofs, 3>(
        FERROFS_SUPER_MAGIC,
        efs::MAX_FILE_SIZE,
        &uuid,
        &XATTR_HANDLERS,
    );
    sb.set_export_ops::<Ferrofs>();
    sb.set_posix_acls();
    sb.set_info(state);
    let root = get_inode(sb, ei::ROOT_INO).inspect_err(|err| {
        pr_err!(
            "{}: cannot mount: cannot read the root directory (errno {})\n",
            sb.id(),
            -err.to_errno()
        )
    })?;
    sb.set_root(root)?;
    if !read_only {
        start_commit_thread(sb)?;
    }
    Ok(())
}

fn start_commit_thread(sb: &SuperBlock) -> Result {
    let info = sb.info()?;
    let thread = CommitThread::start(c_str!("ferrofs-commit"), info.into())?;
    *info.thread.lock() = Some(thread);
    Ok(())
}

/// A remount: a new `commit=` takes effect; read-write to read-only commits everything
/// and stops changes; read-only to read-write starts them again (not after an aborted
/// transaction: that filesystem stays read-only until mounted anew). The other options
/// belong to the mount and are kept.
fn reconfigure(sb: &SuperBlock, opts: &MountOptions, read_only: bool) -> Result {
    let info = sb.info()?;
    if let Some(secs) = opts.commit_secs {
        info.commit_secs.store(secs, Ordering::Relaxed);
    }
    match (sb.is_read_only(), read_only) {
        (false, true) => {
            sb.sync()?;
            let thread = info.thread.lock().take();
            drop(thread);
            info.commit()?;
            info.with_fs(|fs| {
                fs.set_read_only();
                Ok(())
            })?;
        }
        (true, false) => {
            info.with_fs(|fs| fs.make_writable()).inspect_err(|_| {
                pr_err!("{}: cannot remount read-write\n", &*info.id);
            })?;
            start_commit_thread(sb)?;
        }
        _ => {}
    }
    Ok(())
}

/// The VFS inode of engine inode `ino`, read from the engine if not cached.
fn get_inode(sb: &SuperBlock, ino: u64) -> Result<InodeRef> {
    let info = sb.info()?;
    inode::iget(sb, ino, |inode| {
        let e = info.with_fs(|fs| fs.getattr(ino))?;
        init_inode(inode, &e);
        Ok(())
    })
}

/// Sets up a new VFS inode from the engine's: the operations of its kind, attributes,
/// flags.
fn init_inode(inode: &InitInode<'_>, e: &ei::Inode) {
    match e.mode & ei::S_IFMT {
        ei::S_IFREG => inode.set_file_ops::<FileInode, RegularFile, FileData>(),
        ei::S_IFDIR => inode.set_dir_ops::<DirInode, DirFile>(),
        ei::S_IFLNK => inode.set_symlink_ops::<SymlinkInode>(),
        // A device number that does not fit is not one Linux made: device 0.
        _ => inode.set_special_ops::<SpecialInode>(e.mode, u32::try_from(e.rdev).unwrap_or(0)),
    }
    inode.refresh(e, Refresh::All);
    inode.apply_flags(e.flags);
}

// ---- super block operations ----

/// `put_super`: the last commit, then the devices go.
fn put_super(sb: &SuperBlock) {
    let Ok(info) = sb.info() else { return };
    let thread = info.thread.lock().take();
    drop(thread);
    if !sb.is_read_only() {
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
fn sync_fs(sb: &SuperBlock, wait: bool) -> Result {
    if !wait || sb.is_read_only() {
        return Ok(());
    }
    sb.info()?.commit()
}

/// `freeze_fs`: everything on disk before the freeze.
fn freeze_fs(sb: &SuperBlock) -> Result {
    sync_fs(sb, true)
}

/// `statfs`: sizes in blocks; free space is what the data profile can still give files.
fn statfs(sb: &SuperBlock) -> Result<StatFs> {
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
fn show_options(sb: &SuperBlock, seq: &mut SeqFile) -> Result {
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
fn write_inode(inode: &Inode) -> Result {
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
fn evict_inode(inode: &Inode) {
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
fn handle_inode(sb: &SuperBlock, ino: u64, generation: u32) -> Result<InodeRef> {
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
fn handle_parent(dir: &Inode) -> Result<InodeRef> {
    let sb = dir.super_block();
    let ino = dir.ino();
    let parent = sb.info()?.with_fs(|fs| fs.parent_dir(ino))?;
    get_inode(sb, parent)
}

// ---- names ----

/// `lookup`.
fn lookup(dir: &Inode, dentry: &Dentry) -> Result<Option<InodeRef>> {
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
enum NewKind<'a> {
    /// A regular file, device node, FIFO or socket (`rdev` for device nodes).
    Node(u64),
    /// A directory.
    Dir,
    /// A symbolic link to the target.
    Symlink(&'a [u8]),
}

/// `create`, `mknod`, `mkdir`, `symlink`.
fn create(idmap: Idmap, dir: &Inode, dentry: &Dentry, mode: u32, what: NewKind<'_>) -> Result {
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

/// `tmpfile`: an unnamed file, an orphan until linked, bound to the open `file`.
fn tmpfile(idmap: Idmap, dir: &Inode, file: &File, mode: u32) -> Result {
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
    file.finish_tmpfile(inode)
}

/// `link`.
fn link(old: &Dentry, dir: &Inode, dentry: &Dentry) -> Result {
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
fn unlink(dir: &Inode, dentry: &Dentry) -> Result {
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
fn rmdir(dir: &Inode, dentry: &Dentry) -> Result {
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
fn rename(
    idmap: Idmap,
    old_dir: &Inode,
    old: &Dentry,
    new_dir: &Inode,
    new: &Dentry,
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
fn get_link(inode: &Inode) -> Result<KVec<u8>> {
    let ino = inode.ino();
    let target = inode.super_block().info()?.with_fs(|fs| fs.readlink(ino))?;
    let mut out = KVec::with_capacity(target.len().saturating_add(1), GFP_KERNEL)?;
    out.extend_from_slice(&target, GFP_KERNEL)?;
    out.push(0, GFP_KERNEL)?;
    Ok(out)
}

/// `iterate_shared`: entries from the context's position; positions are the engine's
/// stable directory indexes (0 and 1 are `.` and `..`).
fn readdir(file: &File, ctx: &mut DirContext) -> Result {
    if !ctx.emit_dots(file) {
        return Ok(());
    }
    let dir = file.inode();
    let info = dir.super_block().info()?;
    let dino = dir.ino();
    loop {
        let pos = u64::try_from(ctx.pos()).map_err(|_| EINVAL)?.max(2);
        let entries = info.with_fs(|fs| fs.readdir(dino, pos, 64))?;
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

// ---- attributes ----

/// `setattr`: the VFS checks the change and copies it into the VFS inode; the engine then
/// takes the inode's new values.
fn setattr(request: AttrRequest<'_>) -> Result {
    let inode = request.dentry().inode().ok_or(ENOENT)?;
    let change = request.prepare()?;
    let ino = inode.ino();
    let info = inode.super_block().info()?;
    let mut size = None;
    if let Some(new) = change.new_size()? {
        if inode.mode() & ei::S_IFMT != ei::S_IFREG {
            return Err(EINVAL);
        }
        if new > efs::MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        if new != inode.size() {
            // The page cache first: a dirty page past the new end must not be written
            // back (and grow the file again) after the engine cut it.
            inode.truncate_page_cache(new);
            // A size change is a change of contents, also for truncate(2), which asks
            // for no time update (times the caller set are applied next).
            inode.touch_mtime(inode.now());
            size = Some(new);
        }
    }
    change.copy_to_inode()?;
    let (atime, mtime, ctime) = inode.times();
    let (uid, gid) = inode.owner();
    let attr = SetAttr {
        mode: Some(inode.mode()),
        uid: Some(uid),
        gid: Some(gid),
        size,
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
struct InheritedXattrs {
    access: Option<KVec<u8>>,
    default: Option<KVec<u8>>,
}

impl InheritedXattrs {
    fn of(acls: &acl::Inherited) -> Result<Self> {
        Ok(Self {
            access: acls.access.as_ref().map(|a| a.to_xattr()).transpose()?,
            default: acls.default.as_ref().map(|a| a.to_xattr()).transpose()?,
        })
    }

    /// (name, value) of each, for [`Fs::create_with_xattrs`].
    fn list(&self) -> Result<FVec<(&'static [u8], &[u8])>> {
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
fn get_acl(inode: &Inode, kind: AclKind) -> Result<Option<OwnedAcl>> {
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
fn set_acl(idmap: Idmap, dentry: &Dentry, acl: Option<&Acl>, kind: AclKind) -> Result {
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

/// `fileattr_get`: the inode's flags.
fn get_flags(inode: &Inode, attr: &mut FileAttr) -> Result {
    let ino = inode.ino();
    let e = inode.super_block().info()?.with_fs(|fs| fs.getattr(ino))?;
    attr.fill_flags((e.flags & SUPPORTED_FLAGS) as u32);
    Ok(())
}

/// `fileattr_set` (the VFS checked the caller may change them): other flags, and the
/// fsxattr interface (extent sizes, project ids), are `EOPNOTSUPP`.
fn set_flags(inode: &Inode, attr: &FileAttr) -> Result {
    if attr.is_fsxattr() {
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
fn xattr_get(inode: &Inode, prefix: &[u8], name: &[u8], buf: &mut [u8]) -> Result<usize> {
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
fn xattr_set(
    inode: &Inode,
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
fn xattr_list(dentry: &Dentry, buf: &mut [u8]) -> Result<usize> {
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

// ---- file data ----

/// Fills `folio` from the engine (zeros past the end of the file and in holes).
fn fill_folio(folio: &LockedFolio) -> Result {
    let inode = folio.inode();
    let ino = inode.ino();
    let pos = folio.pos();
    let size = folio.size();
    let data = inode
        .super_block()
        .info()?
        .with_fs(|fs| fs.read(ino, pos, size))?;
    folio.write_at(0, &data);
    folio.zero(data.len(), size.saturating_sub(data.len()));
    folio.mark_uptodate();
    Ok(())
}

/// `read_folio`.
fn read_folio(folio: LockedFolio) -> Result {
    let result = fill_folio(&folio);
    folio.unlock();
    result
}

/// `write_begin`: a partial write needs the rest of the folio first.
fn write_begin(mapping: &Mapping, pos: u64, len: usize) -> Result<WriteFolio> {
    let folio = mapping.grab_write_folio(pos)?;
    if !folio.is_uptodate() && (pos != folio.pos() || len != folio.size()) {
        fill_folio(&folio)?;
    }
    Ok(folio)
}

/// `write_end`: how much of the copy counts; the size grows over it.
fn write_end(folio: &LockedFolio, pos: u64, len: usize, copied: usize) -> usize {
    let mut copied = copied;
    if !folio.is_uptodate() {
        if copied < len {
            // A whole-folio write that fell short: the rest was never read, so none of
            // it counts (the caller retries).
            copied = 0;
        } else {
            folio.mark_uptodate();
        }
    }
    if copied > 0 {
        let inode = folio.inode();
        let end = pos.saturating_add(copied as u64);
        if end > inode.size() {
            inode.set_size(end);
        }
        folio.mark_dirty();
    }
    copied
}

/// Most bytes one engine write takes from writeback: dirty folios that follow each other
/// in a file go to the engine together (one extent, one checksum run) up to this size.
const WRITE_RUN_MAX: usize = 1 << 20;

/// Folios of one file under writeback that follow each other, written to the engine
/// together by [`WriteRun::flush`], copy-on-write, to every copy of their chunk.
struct WriteRun {
    folios: FVec<WritebackFolio>,
    data: FVec<u8>,
    ino: u64,
    pos: u64,
}

impl WriteRun {
    fn new() -> Self {
        Self {
            folios: FVec::new(),
            data: FVec::new(),
            ino: 0,
            pos: 0,
        }
    }

    /// Adds a folio `writeback_iter` handed out (locked, cleaned for I/O), writing the run
    /// first if the folio does not continue it. The folio is unlocked on return; if there
    /// is no memory to take it, it is dirty again for a later writeback.
    fn add(&mut self, wbc: &WritebackControl, folio: LockedFolio) -> Result {
        let inode = folio.inode();
        let (ino, size, pos) = (inode.ino(), inode.size(), folio.pos());
        if pos >= size {
            // Truncated away meanwhile.
            folio.unlock();
            return Ok(());
        }
        let len = usize::try_from(size.saturating_sub(pos))
            .unwrap_or(usize::MAX)
            .min(folio.size());
        let continues = ino == self.ino
            && pos == self.pos.saturating_add(self.data.len() as u64)
            && self.data.len().saturating_add(len) <= WRITE_RUN_MAX;
        let mut result = Ok(());
        if !self.folios.is_empty() && !continues {
            result = self.flush();
        }
        let at = self.data.len();
        let room = {
            let _nofs = NoFsScope::enter();
            self.folios
                .try_reserve(1)
                .and_then(|()| self.data.try_resize(at.saturating_add(len), 0))
        };
        if let Err(err) = room {
            wbc.redirty(folio);
            return result.and(Err(from_engine(err)));
        }
        if self.folios.is_empty() {
            self.ino = ino;
            self.pos = pos;
        }
        // Bytes past the end of the file (an mmap store) never reach the disk.
        folio.zero(len, folio.size().saturating_sub(len));
        if let Some(dst) = self.data.get_mut(at..) {
            folio.read_at(0, dst);
        }
        // Cannot fail: the room for it is reserved above.
        let pushed = self.folios.try_push(folio.start_writeback());
        result.and(pushed.map_err(from_engine))
    }

    /// Writes the run through the engine and ends the writeback of its folios; a failure
    /// is recorded in the file's mapping for `fsync` to report.
    fn flush(&mut self) -> Result {
        let result = {
            let Some(first) = self.folios.first() else {
                return Ok(());
            };
            let inode = first.inode();
            let (_, mtime, _) = inode.times();
            let (ino, pos, data) = (self.ino, self.pos, &self.data);
            let result = inode
                .super_block()
                .info()
                .and_then(|info| info.with_fs(|fs| fs.write(ino, pos, data, mtime)));
            match &result {
                Ok(e) => inode.set_blocks(e.bytes),
                Err(err) => first.set_error(*err),
            }
            result
        };
        while let Some(folio) = self.folios.pop() {
            folio.end_writeback();
        }
        self.data.clear();
        result.map(|_| ())
    }
}

/// `readahead`: the whole window in one engine read (a device read per run of up to 1 MiB
/// of each extent), copied into its folios. Folios left not up to date on failure are
/// read again, and the error reported, by `read_folio`.
fn readahead(mut rac: Readahead) {
    let inode = rac.inode();
    let (ino, pos, len) = (inode.ino(), rac.pos(), rac.len());
    let data = inode
        .super_block()
        .info()
        .and_then(|info| info.with_fs(|fs| fs.read(ino, pos, len)));
    while let Some(folio) = rac.next_folio() {
        if let Ok(data) = &data {
            let at = usize::try_from(folio.pos().saturating_sub(pos)).unwrap_or(usize::MAX);
            let src = data.get(at..).unwrap_or(&[]);
            let n = src.len().min(folio.size());
            folio.write_at(0, src.get(..n).unwrap_or(&[]));
            folio.zero(n, folio.size().saturating_sub(n));
            folio.mark_uptodate();
        }
        folio.unlock();
    }
}

/// `fsync`: the file's data and times, then a commit.
fn fsync(file: &File, start: i64, end: i64) -> Result {
    file.write_and_wait_range(start, end)?;
    let inode = file.inode();
    inode.sync_metadata()?;
    if inode.super_block().is_read_only() {
        return Ok(());
    }
    inode.super_block().info()?.commit()
}

/// `fallocate`: preallocate (`KEEP_SIZE` or not), punch a hole, or zero a range.
fn fallocate(file: &File, mode: i32, offset: i64, len: i64) -> Result {
    let (Ok(mode), Ok(offset), Ok(len)) = (
        u32::try_from(mode),
        u64::try_from(offset),
        u64::try_from(len),
    ) else {
        return Err(EINVAL);
    };
    let inode = file.inode();
    // Size and extents change under the inode lock.
    let _locked = inode.lock();
    file.modified()?;
    let supported =
        efs::FALLOC_FL_KEEP_SIZE | efs::FALLOC_FL_PUNCH_HOLE | efs::FALLOC_FL_ZERO_RANGE;
    if mode & !supported != 0 {
        return Err(eopnotsupp());
    }
    if inode.mode() & ei::S_IFMT != ei::S_IFREG {
        return Err(ENODEV);
    }
    let end = offset.checked_add(len).ok_or(EFBIG)?;
    if end > efs::MAX_FILE_SIZE {
        return Err(EFBIG);
    }
    let ino = inode.ino();
    let now = inode.now();
    if mode & efs::FALLOC_FL_PUNCH_HOLE == 0 {
        // The engine's size must cover what the page cache holds before it sets a
        // larger one.
        inode.write_and_wait(0, u64::MAX)?;
    }
    if mode & (efs::FALLOC_FL_PUNCH_HOLE | efs::FALLOC_FL_ZERO_RANGE) != 0 {
        // Dirty data in the range must not come back after the punch or the zeroing.
        inode.write_and_wait(offset, end.saturating_sub(1))?;
        inode.truncate_page_cache_range(offset, end.saturating_sub(1));
    }
    let e = inode
        .super_block()
        .info()?
        .with_fs(|fs| fs.fallocate(ino, mode, offset, len, now))?;
    if mode & efs::FALLOC_FL_KEEP_SIZE == 0 && e.size > inode.size() {
        inode.set_size(e.size);
    }
    inode.refresh(&e, Refresh::Meta);
    inode.touch_mtime(now);
    Ok(())
}

/// `llseek`: `SEEK_DATA` and `SEEK_HOLE` here, the rest as the VFS does it.
fn llseek(file: &File, offset: i64, whence: i32) -> Result<i64> {
    if whence != file::SEEK_DATA && whence != file::SEEK_HOLE {
        return file.generic_llseek(offset, whence);
    }
    let start = u64::try_from(offset).map_err(|_| ENXIO)?;
    let inode = file.inode();
    let pos = {
        // Size and extents stay still meanwhile.
        let _locked = inode.lock();
        seek_data_hole(inode, start, whence == file::SEEK_DATA)?
    };
    file.set_pos(pos)
}

/// `SEEK_DATA` / `SEEK_HOLE` from `offset`: data is what regular extents hold
/// (preallocated ranges read as zeros and count as holes).
fn seek_data_hole(inode: &Inode, offset: u64, want_data: bool) -> Result<u64> {
    inode.write_and_wait(0, u64::MAX)?;
    let size = inode.size();
    if offset >= size {
        return Err(ENXIO);
    }
    let ino = inode.ino();
    let info = inode.super_block().info()?;
    let mut pos = offset;
    loop {
        let extents = info.with_fs(|fs| fs.extents(ino, pos, size, 64))?;
        let mut progressed = false;
        for &(off, e) in extents.iter() {
            let end = off.saturating_add(e.len);
            let data = e.kind == ExtentKind::Regular;
            if want_data {
                if data {
                    return Ok(off.max(offset));
                }
            } else if !data || off > pos {
                return Ok(pos.min(size));
            } else {
                pos = end;
            }
            pos = pos.max(end);
            progressed = true;
        }
        if !progressed || pos >= size {
            return if want_data {
                Err(ENXIO)
            } else {
                Ok(pos.min(size))
            };
        }
    }
}

/// `fiemap`: the extents of `[start, start + len)` (inline ones have no disk address
/// and are left out).
fn fiemap(inode: &Inode, info: &mut FiemapInfo, start: u64, len: u64) -> Result {
    let len = info.prepare(inode, start, len)?;
    let ino = inode.ino();
    let fs_info = inode.super_block().info()?;
    let end = start.saturating_add(len);
    let mut pos = start;
    loop {
        let extents = fs_info.with_fs(|fs| fs.extents(ino, pos, end, 64))?;
        let Some(&(last_off, last)) = extents.last() else {
            return Ok(());
        };
        let next = last_off.saturating_add(last.len);
        // The last extent of the file, when nothing follows it.
        let after = fs_info.with_fs(|fs| fs.extents(ino, next, u64::MAX, 1))?;
        for (i, &(off, e)) in extents.iter().enumerate() {
            if e.kind == ExtentKind::Inline {
                continue;
            }
            let mut flags = 0;
            if e.kind == ExtentKind::Prealloc {
                flags |= inode_ops::FIEMAP_EXTENT_UNWRITTEN;
            }
            if i.saturating_add(1) == extents.len() && after.is_empty() {
                flags |= inode_ops::FIEMAP_EXTENT_LAST;
            }
            if !info.fill_next(off, e.disk, e.len, flags)? {
                return Ok(());
            }
        }
        if next >= end || after.is_empty() {
            return Ok(());
        }
        pos = next;
    }
}

/// `writepages`: the dirty folios, in runs of neighbours written with one engine call
/// each, under a block plug so that their bios merge.
fn writepages(mapping: &Mapping, wbc: &WritebackControl) -> Result {
    let _plug = Plug::start();
    let mut run = WriteRun::new();
    let iterated = wbc.for_each_folio(mapping, |folio| run.add(wbc, folio));
    let flushed = run.flush();
    iterated.and(flushed)
}

// ---- the operation tables ----

#[vtable]
impl SuperOperations for Ferrofs {
    fn put_super(sb: &SuperBlock) {
        put_super(sb)
    }

    fn sync_fs(sb: &SuperBlock, wait: bool) -> Result {
        sync_fs(sb, wait)
    }

    fn freeze_fs(sb: &SuperBlock) -> Result {
        freeze_fs(sb)
    }

    fn statfs(sb: &SuperBlock) -> Result<StatFs> {
        statfs(sb)
    }

    fn show_options(sb: &SuperBlock, seq: &mut SeqFile) -> Result {
        show_options(sb, seq)
    }

    fn write_inode(inode: &Inode) -> Result {
        write_inode(inode)
    }

    fn evict_inode(inode: &Inode) {
        evict_inode(inode)
    }
}

/// Directories' inode operations.
impl ExportOperations for Ferrofs {
    fn inode(sb: &SuperBlock, ino: u64, generation: u32) -> Result<InodeRef> {
        handle_inode(sb, ino, generation)
    }

    fn parent(dir: &Inode) -> Result<InodeRef> {
        handle_parent(dir)
    }
}

pub(crate) struct DirInode;

#[vtable]
impl InodeOperations for DirInode {
    fn get_inode_acl(inode: &Inode, kind: AclKind) -> Result<Option<OwnedAcl>> {
        get_acl(inode, kind)
    }

    fn set_acl(idmap: Idmap, dentry: &Dentry, acl: Option<&Acl>, kind: AclKind) -> Result {
        set_acl(idmap, dentry, acl, kind)
    }

    fn lookup(dir: &Inode, dentry: &Dentry) -> Result<Option<InodeRef>> {
        lookup(dir, dentry)
    }

    fn create(idmap: Idmap, dir: &Inode, dentry: &Dentry, mode: u32, _excl: bool) -> Result {
        create(idmap, dir, dentry, mode, NewKind::Node(0))
    }

    fn mknod(idmap: Idmap, dir: &Inode, dentry: &Dentry, mode: u32, rdev: u32) -> Result {
        create(idmap, dir, dentry, mode, NewKind::Node(u64::from(rdev)))
    }

    fn mkdir(idmap: Idmap, dir: &Inode, dentry: &Dentry, mode: u32) -> Result {
        create(idmap, dir, dentry, mode | ei::S_IFDIR, NewKind::Dir)
    }

    fn symlink(idmap: Idmap, dir: &Inode, dentry: &Dentry, target: &CStr) -> Result {
        let mode = ei::S_IFLNK | 0o777;
        create(
            idmap,
            dir,
            dentry,
            mode,
            NewKind::Symlink(target.as_bytes()),
        )
    }

    fn tmpfile(idmap: Idmap, dir: &Inode, file: &File, mode: u32) -> Result {
        tmpfile(idmap, dir, file, mode | ei::S_IFREG)
    }

    fn link(old: &Dentry, dir: &Inode, dentry: &Dentry) -> Result {
        link(old, dir, dentry)
    }

    fn unlink(dir: &Inode, dentry: &Dentry) -> Result {
        unlink(dir, dentry)
    }

    fn rmdir(dir: &Inode, dentry: &Dentry) -> Result {
        rmdir(dir, dentry)
    }

    fn rename(
        idmap: Idmap,
        old_dir: &Inode,
        old: &Dentry,
        new_dir: &Inode,
        new: &Dentry,
        flags: u32,
    ) -> Result {
        rename(idmap, old_dir, old, new_dir, new, flags)
    }

    fn setattr(request: AttrRequest<'_>) -> Result {
        setattr(request)
    }

    fn listxattr(dentry: &Dentry, buf: &mut [u8]) -> Result<usize> {
        xattr_list(dentry, buf)
    }

    fn fileattr_get(inode: &Inode, attr: &mut FileAttr) -> Result {
        get_flags(inode, attr)
    }

    fn fileattr_set(inode: &Inode, attr: &FileAttr) -> Result {
        set_flags(inode, attr)
    }
}

/// Regular files' inode operations.
pub(crate) struct FileInode;

#[vtable]
impl InodeOperations for FileInode {
    fn get_inode_acl(inode: &Inode, kind: AclKind) -> Result<Option<OwnedAcl>> {
        get_acl(inode, kind)
    }

    fn set_acl(idmap: Idmap, dentry: &Dentry, acl: Option<&Acl>, kind: AclKind) -> Result {
        set_acl(idmap, dentry, acl, kind)
    }

    fn setattr(request: AttrRequest<'_>) -> Result {
        setattr(request)
    }

    fn listxattr(dentry: &Dentry, buf: &mut [u8]) -> Result<usize> {
        xattr_list(dentry, buf)
    }

    fn fiemap(inode: &Inode, info: &mut FiemapInfo, start: u64, len: u64) -> Result {
        fiemap(inode, info, start, len)
    }

    fn fileattr_get(inode: &Inode, attr: &mut FileAttr) -> Result {
        get_flags(inode, attr)
    }

    fn fileattr_set(inode: &Inode, attr: &FileAttr) -> Result {
        set_flags(inode, attr)
    }
}

/// Symbolic links' inode operations.
pub(crate) struct SymlinkInode;

#[vtable]
impl InodeOperations for SymlinkInode {
    fn get_link(inode: &Inode) -> Result<KVec<u8>> {
        get_link(inode)
    }

    fn setattr(request: AttrRequest<'_>) -> Result {
        setattr(request)
    }

    fn listxattr(dentry: &Dentry, buf: &mut [u8]) -> Result<usize> {
        xattr_list(dentry, buf)
    }
}

/// Device nodes', FIFOs' and sockets' inode operations (their file operations are the
/// VFS's).
pub(crate) struct SpecialInode;

#[vtable]
impl InodeOperations for SpecialInode {
    fn get_inode_acl(inode: &Inode, kind: AclKind) -> Result<Option<OwnedAcl>> {
        get_acl(inode, kind)
    }

    fn set_acl(idmap: Idmap, dentry: &Dentry, acl: Option<&Acl>, kind: AclKind) -> Result {
        set_acl(idmap, dentry, acl, kind)
    }

    fn setattr(request: AttrRequest<'_>) -> Result {
        setattr(request)
    }

    fn listxattr(dentry: &Dentry, buf: &mut [u8]) -> Result<usize> {
        xattr_list(dentry, buf)
    }
}

/// Open directories.
pub(crate) struct DirFile;

#[vtable]
impl FileOperations for DirFile {
    const CONTENTS: Contents = Contents::Directory;

    fn read_dir(file: &File, ctx: &mut DirContext) -> Result {
        readdir(file, ctx)
    }

    fn fsync(file: &File, start: i64, end: i64, _datasync: bool) -> Result {
        fsync(file, start, end)
    }

    fn ioctl(file: &File, cmd: u32, arg: usize, caller: IoctlCaller) -> Result<i64> {
        ioctl::ioctl(file, cmd, arg, caller)
    }
}

/// Open regular files.
pub(crate) struct RegularFile;

#[vtable]
impl FileOperations for RegularFile {
    const CONTENTS: Contents = Contents::PageCache;

    fn llseek(file: &File, offset: i64, whence: i32) -> Result<i64> {
        llseek(file, offset, whence)
    }

    fn fsync(file: &File, start: i64, end: i64, _datasync: bool) -> Result {
        fsync(file, start, end)
    }

    fn fallocate(file: &File, mode: i32, offset: i64, len: i64) -> Result {
        fallocate(file, mode, offset, len)
    }

    fn ioctl(file: &File, cmd: u32, arg: usize, caller: IoctlCaller) -> Result<i64> {
        ioctl::ioctl(file, cmd, arg, caller)
    }
}

/// Regular files' page cache.
pub(crate) struct FileData;

#[vtable]
impl AddressSpaceOperations for FileData {
    fn read_folio(folio: LockedFolio) -> Result {
        read_folio(folio)
    }

    fn readahead(rac: Readahead) {
        readahead(rac)
    }

    fn writepages(mapping: &Mapping, wbc: &WritebackControl) -> Result {
        writepages(mapping, wbc)
    }

    fn write_begin(mapping: &Mapping, pos: u64, len: usize) -> Result<WriteFolio> {
        write_begin(mapping, pos, len)
    }

    fn write_end(folio: &WriteFolio, pos: u64, len: usize, copied: usize) -> usize {
        write_end(folio, pos, len, copied)
    }
}

/// Extended attributes of one name prefix, all kept by the engine alike.
macro_rules! xattr_namespace {
    ($name:ident, $prefix:literal) => {
        #[doc = concat!("The `", $prefix, "` extended attributes.")]
        pub(crate) struct $name;

        #[vtable]
        impl XattrHandler for $name {
            const PREFIX: &'static CStr = c_str!($prefix);

            fn get(inode: &Inode, name: &CStr, buf: &mut [u8]) -> Result<usize> {
                xattr_get(inode, Self::PREFIX.as_bytes(), name.as_bytes(), buf)
            }

            fn set(inode: &Inode, name: &CStr, value: Option<&[u8]>, flags: i32) -> Result {
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
static XATTR_HANDLERS: XattrHandlers<3> = XattrHandlers::new([
    xattr::handler::<UserXattrs>(),
    xattr::handler::<TrustedXattrs>(),
    xattr::handler::<SecurityXattrs>(),
]);
