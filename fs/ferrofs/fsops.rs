// SPDX-License-Identifier: GPL-2.0

//! The filesystem logic, in safe Rust over the engine: the filesystem type, mount options,
//! mounting and remounting, the state of a mounted filesystem ([`FsInfo`]), and reading
//! inodes. The operations live in a file for each family:
//!
//! - `super_ops`: super block operations (commit, `statfs`, inode write-back and eviction)
//!   and file handles;
//! - `names`: lookup, creating, linking, removing and renaming names, symlink targets,
//!   reading directories;
//! - `attrs`: `setattr`, POSIX ACLs, inode flags, extended attributes;
//! - `data`: file data (folios, writeback, readahead, `fsync`, `fallocate`, `SEEK_DATA` /
//!   `SEEK_HOLE`, `fiemap`);
//! - `ioctl`: the ioctls ferrofs answers itself;
//! - `tables`: the implementations of the operation traits of `vfs`, from which the VFS
//!   layer builds the kernel's operation tables (it turns the kernel's arguments into the
//!   safe types used here).

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use kernel::c_str;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::str::{CStr, CString};
use kernel::sync::{Arc, Mutex};

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::format::{self, Probe, BLOCK_SIZE};
use crate::engine::fs::{self as efs, Fs};
use crate::engine::inode as ei;
use crate::engine::mem::FVec;
use crate::engine::volume::{LogWrite, OpenOptions};
use crate::vfs::bio::Plug;
use crate::vfs::blockdev::{DevFlusher, KernelDev};
use crate::vfs::dentry::NoFsScope;
use crate::vfs::error::{eopnotsupp, from_engine};
use crate::vfs::fs_type::{FileSystem, FsParameter};
use crate::vfs::inode::{self, InitInode, InodeRef, Refresh};
use crate::vfs::super_block::{NewSuperBlock, SuperBlock};
use crate::vfs::thread::{CommitThread, PeriodicCommit};

mod attrs;
mod data;
mod ioctl;
mod names;
mod super_ops;
mod tables;

use tables::XATTR_HANDLERS;
pub(crate) use tables::{
    DirFile, DirInode, FileData, FileInode, RegularFile, SpecialInode, SymlinkInode,
};

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
    // Owners come from the VFS inode after `inode_init_owner` and `setattr_copy`
    // (`NewInode::owner`, `Inode::owner`), and each operation's idmapping goes on to the
    // VFS helpers (`setattr_prepare`, `generic_fillattr`, `posix_acl_update_mode`).
    const ALLOW_IDMAP: bool = true;

    type Data = FsInfo;

    type Options = MountOptions;

    fn parse_param(opts: &mut MountOptions, param: &FsParameter<'_>) -> Result<bool> {
        parse_param(opts, param.key(), param.value())
    }

    fn fill_super(sb: &mut NewSuperBlock<'_, Ferrofs>, opts: &MountOptions) -> Result {
        fill_super(sb, opts)
    }

    fn reconfigure(sb: &SuperBlock<Ferrofs>, opts: &MountOptions, read_only: bool) -> Result {
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

/// What a mounted ferrofs keeps (its super block's [`FileSystem::Data`]): the engine
/// behind its lock, and the options.
#[pin_data]
pub(crate) struct FsInfo {
    /// The background commit thread, which holds a reference to this state: stopped by
    /// `put_super` and by a remount read-only (a thread left running would keep the state).
    #[pin]
    thread: Mutex<Option<CommitThread<FsInfo>>>,
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
    /// Shut down (`FS_IOC_SHUTDOWN`): every call fails with `EIO`, nothing more is written.
    shut_down: AtomicBool,
    degraded: bool,
    skip_balance: bool,
}

impl FsInfo {
    /// Runs `op` on the engine, under its lock and without filesystem reclaim. A failure
    /// that aborted the transaction is logged once. After a shutdown, `EIO`.
    pub(crate) fn with_fs<R>(
        &self,
        op: impl FnOnce(&mut Fs<KernelDev>) -> EngineResult<R>,
    ) -> Result<R> {
        let _nofs = NoFsScope::enter();
        let mut guard = self.fs.lock();
        // Checked under the lock: a call running when the shutdown came finishes first,
        // none starts after it.
        if self.is_shut_down() {
            return Err(EIO);
        }
        let fs = guard.as_mut().ok_or(EIO)?;
        let was_aborted = fs.aborted().is_some();
        let result = op(fs);
        // Taken after every call, so the list stays as short as one call's reads; fsck
        // reports the same list when the tools open a volume.
        for &(block, devid) in core::mem::take(&mut fs.vol.repairs).iter() {
            pr_warn!(
                "{}: block {} on device {} failed its checksum: rewritten from a good copy\n",
                &*self.id,
                block,
                devid
            );
        }
        if let (false, Some(err)) = (was_aborted, fs.aborted()) {
            pr_err!(
                "{}: transaction aborted ({}, errno {}): the filesystem is read-only now, at its last commit\n",
                &*self.id,
                err.message(),
                err.errno()
            );
        }
        result.map_err(|err| {
            match err {
                EngineError::Corrupt { block, reason } => pr_err!(
                    "{}: corrupt metadata in block {}: {}\n",
                    &*self.id,
                    block,
                    reason
                ),
                EngineError::BadData { block } => pr_err!(
                    "{}: data block {}: checksum mismatch on every copy\n",
                    &*self.id,
                    block
                ),
                _ => {}
            }
            from_engine(err)
        })
    }

    /// Whether the filesystem was shut down (`FS_IOC_SHUTDOWN`).
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Shuts the filesystem down: from now on every call fails with `EIO` and nothing
    /// reaches the devices, as if the power went now (what is durable stays: the last
    /// commit and the fsync log, which the next mount replays). Waits for a call in
    /// flight, so none writes after it returns.
    pub(crate) fn shut_down(&self) {
        let _one_commit = self.commit_lock.lock();
        let _fs = self.fs.lock();
        if !self.shut_down.swap(true, Ordering::AcqRel) {
            pr_warn!(
                "{}: shut down: nothing more is written; unmount, and mount again to go on from what is on disk\n",
                &*self.id
            );
        }
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
            let flushers = flushers(fs)?;
            let _plug = Plug::start();
            Ok(Some((fs.commit_start()?, flushers)))
        })?;
        let Some((ticket, flushers)) = started else {
            return Ok(());
        };
        let flushed = flush_all(flushers);
        self.with_fs(|fs| fs.commit_finish(ticket, flushed))
    }

    /// Makes everything done so far durable for `fsync`: through the fsync log (a record
    /// written, then every device flushed without the filesystem lock, as a commit
    /// flushes), or by a commit where the log cannot take it. An `fsync` that finds its
    /// changes in the record of one in flight waits for that one and writes nothing.
    pub(crate) fn fsync(&self) -> Result {
        if !self.log_sync()? {
            return self.commit();
        }
        Ok(())
    }

    /// The log half of [`Self::fsync`]: `false` if a commit is needed instead.
    fn log_sync(&self) -> Result<bool> {
        // Log writes and commits are ordered by the one lock: a record must follow the
        // commit it extends.
        let _one_sync = self.commit_lock.lock();
        let started = self.with_fs(|fs| {
            let flushers = flushers(fs)?;
            Ok(match fs.log_start()? {
                LogWrite::Started(ticket) => Some(Some((ticket, flushers))),
                LogWrite::Nothing => Some(None),
                LogWrite::NeedsCommit => None,
            })
        })?;
        match started {
            None => Ok(false),
            Some(None) => Ok(true),
            Some(Some((ticket, flushers))) => {
                let flushed = flush_all(flushers);
                self.with_fs(|fs| fs.log_finish(ticket, flushed))?;
                Ok(true)
            }
        }
    }
}

/// A flusher of every present device of `fs`, to flush them without its lock.
fn flushers(fs: &Fs<KernelDev>) -> EngineResult<KVec<DevFlusher>> {
    let mut flushers = KVec::new();
    for slot in fs.vol.devices() {
        if let Some(dev) = slot.dev.as_ref() {
            flushers
                .push(dev.flusher(), GFP_KERNEL)
                .map_err(|_| EngineError::NoMemory)?;
        }
    }
    Ok(flushers)
}

/// Flushes every device of `flushers`; an I/O error if any flush failed.
fn flush_all(flushers: KVec<DevFlusher>) -> EngineResult<()> {
    flushers
        .iter()
        .try_for_each(DevFlusher::flush)
        .map_err(|_| EngineError::Io)
}

impl PeriodicCommit for FsInfo {
    fn period_secs(&self) -> u32 {
        self.commit_secs()
    }

    fn commit(&self) -> Result {
        if self.is_shut_down() {
            return Ok(());
        }
        FsInfo::commit(self)
    }
}

fn fill_super(sb: &mut NewSuperBlock<'_, Ferrofs>, opts: &MountOptions) -> Result {
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
    let device_count = u32::try_from(fs.vol.devices().len()).unwrap_or(u32::MAX);
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
            shut_down: AtomicBool::new(false),
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
    // Writeback checksums the folios and writes straight from them.
    sb.set_stable_writes();
    sb.set_cgroup_writeback();
    sb.set_private_bdi(device_count)?;
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

fn start_commit_thread(sb: &SuperBlock<Ferrofs>) -> Result {
    let info = sb.info()?;
    let thread = CommitThread::start(c_str!("ferrofs-commit"), info.into())?;
    *info.thread.lock() = Some(thread);
    Ok(())
}

/// A remount: a new `commit=` takes effect; read-write to read-only commits everything
/// and stops changes; read-only to read-write starts them again (not after an aborted
/// transaction: that filesystem stays read-only until mounted anew). The other options
/// belong to the mount and are kept.
fn reconfigure(sb: &SuperBlock<Ferrofs>, opts: &MountOptions, read_only: bool) -> Result {
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
fn get_inode(sb: &SuperBlock<Ferrofs>, ino: u64) -> Result<InodeRef<Ferrofs>> {
    let info = sb.info()?;
    inode::iget(sb, ino, |inode| {
        let e = info.with_fs(|fs| fs.getattr(ino))?;
        init_inode(inode, &e);
        Ok(())
    })
}

/// Sets up a new VFS inode from the engine's: the operations of its kind, attributes,
/// flags.
fn init_inode(inode: &InitInode<'_, Ferrofs>, e: &ei::Inode) {
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
