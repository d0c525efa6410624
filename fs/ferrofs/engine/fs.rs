// SPDX-License-Identifier: GPL-2.0

//! The filesystem API the kernel (and the tools and tests) call: files, directories,
//! links, attributes and data, as items of the fs tree over a [`Volume`].
//!
//! Every call changes the running transaction; [`Fs::sync`] commits it. Errors map to the
//! errno a POSIX filesystem returns for the same case. File data is copy-on-write in whole
//! 4096-byte blocks: a write puts new blocks in place of the old ones, whose references
//! are dropped, so a crash leaves the data of the last commit.

use super::bytes;
use super::crc32c;
use super::dev::BlockDev;
use super::error::{EngineError, EngineResult};
use super::format::{self, BLOCK_SIZE};
use super::inode::{
    self, check_name, kind, name_hash, DirEntry, Extent, ExtentKind, Inode, Timespec, ROOT_INO,
    S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
};
use super::key::Key;
use super::mem::{self, FVec};
use super::volume::{
    CommitTicket, DataPiece, DataTarget, LogTicket, LogWrite, MkfsOptions, OpenOptions, RefOwner,
    Tree, Volume,
};

const BLOCK: u64 = BLOCK_SIZE as u64;

/// Largest file size: keeps every byte offset and block count far from overflow.
pub const MAX_FILE_SIZE: u64 = 1 << 50;

/// Most blocks one extent covers.
const MAX_EXTENT_BLOCKS: u64 = inode::MAX_EXTENT_BYTES / BLOCK;
/// How far past a file's previous extent a write may start and still be placed as its
/// continuation on disk (see `Fs::data_goal`): about what writeback holds in flight for
/// one file.
const GOAL_REACH: u64 = 16 << 20;
/// Bytes of a file read from the devices at once (one bio on the kernel side).
const MAX_READ_RUN: u64 = 1 << 20;

/// Metadata space a change wants free before it starts (tree blocks it may copy or add).
const METADATA_MARGIN: u64 = 64 * BLOCK;

/// Largest hard link count.
pub const LINK_MAX: u32 = 65_000;

/// `fallocate` flag: do not change the file size.
pub const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
/// `fallocate` flag: free the range (with `FALLOC_FL_KEEP_SIZE`), reading as zeros after.
pub const FALLOC_FL_PUNCH_HOLE: u32 = 0x02;
/// `fallocate` flag: make the range read as zeros, its space allocated (unwritten).
pub const FALLOC_FL_ZERO_RANGE: u32 = 0x10;

/// `rename` flag: fail if the target exists.
pub const RENAME_NOREPLACE: u32 = 1;
/// `rename` flag: swap source and target atomically.
pub const RENAME_EXCHANGE: u32 = 2;
/// Device number of a whiteout (`WHITEOUT_DEV`): character device 0:0.
pub const WHITEOUT_DEV: u64 = 0;
/// `rename` flag: leave a whiteout (a 0:0 character device) where the source was, in the
/// same change (overlayfs's upper layer needs it).
pub const RENAME_WHITEOUT: u32 = 4;

/// Attributes to change in [`Fs::setattr`]; `None` leaves a field alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    /// Permission bits (the type bits are kept).
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Size: shrinking drops data past it, growing reads as zeros.
    pub size: Option<u64>,
    /// With `size`: the blocks wholly past it go even if the file does not shrink, as a
    /// truncate to the caller's size or below releases blocks preallocated past the end.
    pub trim: bool,
    /// Access time.
    pub atime: Option<Timespec>,
    /// Modification time.
    pub mtime: Option<Timespec>,
    /// Change time (the kernel's own clock for it); `None` sets it to the call's `now`.
    pub ctime: Option<Timespec>,
    /// Inode flags (`FS_IOC_SETFLAGS` bits).
    pub flags: Option<u64>,
}

/// Owner of a new inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Filesystem statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    /// Block size.
    pub block_size: u32,
    /// Bytes of all devices, divided by the copies the data profile keeps.
    pub total_bytes: u64,
    /// Bytes in use: every block in use (data, metadata, system), each copy counted, divided
    /// by the copies the data profile keeps, so it compares with `total_bytes`.
    pub used_bytes: u64,
    /// Bytes files could still be given (free data space, by the data profile).
    pub free_bytes: u64,
    /// Highest inode number handed out.
    pub inodes: u64,
}

/// A mounted filesystem.
pub struct Fs<D: BlockDev> {
    /// The volume underneath.
    pub vol: Volume<D>,
    /// The tree that holds the files and directories: every operation works on it.
    tree: Tree,
    next_ino: u64,
    aborted: Option<EngineError>,
    in_change: bool,
    keep_unlinked: bool,
}

fn type_of(mode: u32) -> u8 {
    // The type bits shifted down, as DT_* values: 4 bits, always fits.
    ((mode & S_IFMT) >> 12) as u8
}

fn ikey(ino: u64) -> Key {
    Key::new(ino, kind::INODE, 0)
}

/// A count read from disk (a link count, a size, bytes in use) lowered by `by`: below
/// zero, the count was wrong on disk, which is corruption of inode `ino`, not a value to
/// clamp.
fn count_down<T: Copy + core::ops::Sub<Output = T> + PartialOrd>(
    value: T,
    by: T,
    ino: u64,
    reason: &'static str,
) -> EngineResult<T> {
    if value < by {
        return Err(EngineError::Corrupt { block: ino, reason });
    }
    #[allow(clippy::arithmetic_side_effects)] // `value >= by`, checked above
    Ok(value - by)
}

/// A link count raised by one, for a new name or a subdirectory's "..": at `LINK_MAX`
/// (or past it, as a corrupt count read from disk may be), the link is refused.
fn link_up(nlink: u32) -> EngineResult<u32> {
    if nlink >= LINK_MAX {
        return Err(EngineError::TooManyLinks);
    }
    nlink.checked_add(1).ok_or(EngineError::TooManyLinks)
}

/// Where a file extent read from disk ends: one running past the largest file, or a block
/// extent not starting on a block boundary, is corruption (reported against `block`).
pub(super) fn extent_end(offset: u64, extent: &Extent, block: u64) -> EngineResult<u64> {
    let corrupt = EngineError::Corrupt {
        block,
        reason: "file extent past the largest file size or off a block boundary",
    };
    if extent.kind != ExtentKind::Inline && offset % BLOCK != 0 {
        return Err(corrupt);
    }
    offset
        .checked_add(extent.len)
        .filter(|&end| end <= MAX_FILE_SIZE)
        .ok_or(corrupt)
}

/// A file extent and the bytes of the file it covers, `[start, end)`, checked as read.
#[derive(Clone, Copy)]
struct Placed {
    start: u64,
    end: u64,
    extent: Extent,
}

/// A piece of a file's data as [`Fs::map_read`] maps it.
pub struct ReadPiece {
    /// Byte offset in the file (a block boundary).
    pub offset: u64,
    /// Length in bytes (whole blocks).
    pub len: u64,
    /// Where its bytes are.
    pub source: ReadSource,
}

/// Where the bytes of a [`ReadPiece`] are.
pub enum ReadSource {
    /// Nowhere: they read as zeros (a hole, a preallocated range, past the end of file).
    Zeros,
    /// In data blocks on one device, which must match their checksums.
    Device(DataPiece),
    /// Only the engine reads them ([`Fs::read`]).
    Engine,
}

impl ReadPiece {
    fn zeros(start: u64, end: u64) -> Self {
        Self {
            offset: start,
            len: end.saturating_sub(start),
            source: ReadSource::Zeros,
        }
    }
}

impl<D: BlockDev> Fs<D> {
    /// Formats `devs` and creates the root directory (mode 0755, owned by root).
    pub fn mkfs(devs: FVec<D>, opts: &MkfsOptions<'_>, now: Timespec) -> EngineResult<Self> {
        let mut fs = Self {
            vol: Volume::mkfs(devs, opts)?,
            next_ino: ROOT_INO.saturating_add(1),
            aborted: None,
            in_change: false,
            keep_unlinked: false,
            tree: Tree::FS,
        };
        let root = Inode {
            ino: ROOT_INO,
            mode: S_IFDIR | 0o755,
            nlink: 2,
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            generation: fs.vol.generation(),
            next_index: 2,
            ..Inode::default()
        };
        fs.put_inode(&root)?;
        fs.vol.commit()?;
        Ok(fs)
    }

    /// Mounts a filesystem.
    pub fn open(devs: FVec<D>, opts: OpenOptions) -> EngineResult<Self> {
        let mut vol = Volume::open_with(devs, opts)?;
        // What was fsynced after the last commit: committed at once on a writable mount,
        // only in memory on a read-only one (the records stay for a writable mount).
        if vol.replay_log()? > 0 && !vol.is_read_only() {
            vol.commit()?;
        }
        let tree = Tree::FS;
        // The highest inode number: the last item below the orphan items.
        let below_orphans = Key::new(inode::ORPHAN_OBJECTID, 0, 0);
        let last = match below_orphans.predecessor() {
            Some(key) => vol.last_at_or_before(tree, &key)?,
            None => None,
        };
        let next_ino = last
            .map(|(k, _)| k.objectid)
            .filter(|&o| o < inode::ORPHAN_OBJECTID)
            .unwrap_or(ROOT_INO)
            .max(ROOT_INO)
            .saturating_add(1);
        let mut fs = Self {
            vol,
            next_ino,
            aborted: None,
            in_change: false,
            keep_unlinked: false,
            tree,
        };
        let root = fs.getattr(ROOT_INO)?;
        if !root.is_dir() {
            return Err(EngineError::Corrupt {
                block: 0,
                reason: "root inode is not a directory",
            });
        }
        if !fs.vol.is_read_only() {
            fs.free_orphans()?;
        }
        Ok(fs)
    }

    /// Nothing is open after a mount: inodes left unlinked but open go now.
    fn free_orphans(&mut self) -> EngineResult<()> {
        self.guarded(|fs| {
            let mut orphans =
                fs.vol
                    .range(fs.tree, inode::orphan_key(0), inode::orphan_key(u64::MAX));
            while let Some((k, _)) = fs.vol.next_in(&mut orphans)? {
                fs.evict(k.offset)?;
            }
            Ok(())
        })
    }

    /// Stops changes (a remount read-only, after a commit).
    pub fn set_read_only(&mut self) {
        self.vol.set_read_only(true);
    }

    /// Allows changes again (a remount read-write of a filesystem mounted read-only), and
    /// frees the orphans a read-only mount left. Refused after an aborted transaction.
    pub fn make_writable(&mut self) -> EngineResult<()> {
        if self.aborted.is_some() {
            return Err(EngineError::ReadOnly);
        }
        self.vol.set_read_only(false);
        self.free_orphans()
    }

    /// With `keep`, an inode that loses its last name is kept (with an orphan item) until
    /// [`Fs::evict`]: the kernel keeps files that are still open. Otherwise (the default)
    /// it goes at once.
    pub fn set_keep_unlinked(&mut self, keep: bool) {
        self.keep_unlinked = keep;
    }

    /// Frees inode `ino` if it has no names left (its orphan item goes with it); does
    /// nothing to an inode that still has names, or that is gone already.
    pub fn evict(&mut self, ino: u64) -> EngineResult<()> {
        self.guarded(|fs| {
            match fs.getattr(ino) {
                Ok(inode) if inode.nlink == 0 => fs.delete_inode(ino)?,
                Ok(_) | Err(EngineError::NotFound) => {}
                Err(err) => return Err(err),
            }
            if fs.vol.lookup(fs.tree, &inode::orphan_key(ino))?.is_some() {
                fs.vol.remove(fs.tree, &inode::orphan_key(ino))?;
            }
            Ok(())
        })
    }

    /// Drops a name's worth of link count from `inode`: at zero the inode goes, or is kept
    /// as an orphan (see [`Fs::set_keep_unlinked`]).
    fn drop_link(&mut self, inode: &mut Inode, now: Timespec) -> EngineResult<()> {
        inode.nlink = count_down(
            inode.nlink,
            1,
            inode.ino,
            "unlink of an inode with no links",
        )?;
        inode.ctime = now;
        if inode.nlink > 0 {
            return self.put_inode(inode);
        }
        if self.keep_unlinked {
            self.put_inode(inode)?;
            self.vol
                .insert(self.tree, inode::orphan_key(inode.ino), &[])?;
            return Ok(());
        }
        self.delete_inode(inode.ino)
    }

    /// Creates an unnamed regular file (`O_TMPFILE`): an orphan until [`Fs::link`] names
    /// it, freed by [`Fs::evict`] otherwise.
    pub fn tmpfile(
        &mut self,
        dir: u64,
        mode: u32,
        owner: Owner,
        now: Timespec,
    ) -> EngineResult<Inode> {
        self.guarded(|fs| {
            fs.dir(dir)?;
            let mut inode = fs.new_inode(S_IFREG | (mode & 0o7777), 0, owner, now)?;
            inode.nlink = 0;
            fs.put_inode(&inode)?;
            fs.vol.insert(fs.tree, inode::orphan_key(inode.ino), &[])?;
            Ok(inode)
        })
    }

    /// Whether a failed call aborted the running transaction (the filesystem is then
    /// read-only, at its last commit), and the error that did.
    pub fn aborted(&self) -> Option<EngineError> {
        self.aborted
    }

    /// Runs a change: refused on a read-only filesystem; a failure after the transaction
    /// was changed aborts it (see [`Volume::abort`]), since the change stopped half-way.
    /// Makes sure `data_bytes` of data and a margin of metadata can be allocated before a
    /// change starts: blocks the running transaction freed only come back when it commits,
    /// so when space runs short the transaction commits first (between changes, so the
    /// commit holds only whole ones). Still short: `ENOSPC`, with nothing changed.
    fn make_room(&mut self, data_bytes: u64) -> EngineResult<()> {
        let short = |fs: &Self| {
            fs.vol.kind_free_upto(super::chunk::Kind::Data, data_bytes) < data_bytes
                || fs
                    .vol
                    .kind_free_upto(super::chunk::Kind::Metadata, METADATA_MARGIN)
                    < METADATA_MARGIN
        };
        if !short(self) {
            return Ok(());
        }
        if self.vol.needs_commit() {
            self.vol.commit()?;
        }
        if short(self) {
            return Err(EngineError::NoSpace);
        }
        Ok(())
    }

    /// Calls nested in a change (rename replacing its target, truncate rewriting a tail)
    /// belong to the outer one.
    fn guarded<T>(&mut self, op: impl FnOnce(&mut Self) -> EngineResult<T>) -> EngineResult<T> {
        if self.in_change {
            return op(self);
        }
        if self.vol.is_read_only() {
            return Err(EngineError::ReadOnly);
        }
        let before = self.vol.changes();
        self.in_change = true;
        let result = self.make_room(0).and_then(|()| op(self));
        self.in_change = false;
        if let Err(err) = result {
            // Changed, and not committed since (`make_room` may have committed whole
            // changes before finding too little space).
            if self.vol.changes() != before && self.vol.needs_commit() {
                self.abort(err);
            }
        }
        result
    }

    /// Commits everything done so far.
    pub fn sync(&mut self) -> EngineResult<()> {
        self.guarded(|fs| fs.vol.commit())
    }

    /// Makes everything done so far durable (`fsync`): through the fsync log where it can
    /// (see [`crate::volume`]'s `log`), else by a commit.
    pub fn fsync(&mut self) -> EngineResult<()> {
        match self.log_start()? {
            LogWrite::Nothing => Ok(()),
            LogWrite::NeedsCommit => self.sync(),
            LogWrite::Started(ticket) => {
                let flushed = self.vol.flush_devices();
                self.log_finish(ticket, flushed)
            }
        }
    }

    /// Starts a log write of what was done since the last one (see
    /// [`Volume::log_start`]): the caller flushes every device, then calls
    /// [`Self::log_finish`]; or commits, if the log cannot take it.
    pub fn log_start(&mut self) -> EngineResult<LogWrite> {
        if self.vol.is_read_only() {
            return Err(EngineError::ReadOnly);
        }
        self.vol.log_start()
    }

    /// Finishes the log write of `ticket` (see [`Volume::log_finish`]). A failure aborts
    /// the running transaction, as a failed commit does: a write since the last flush
    /// failed, and the transaction may point at its blocks.
    pub fn log_finish(&mut self, ticket: LogTicket, flushed: EngineResult<()>) -> EngineResult<()> {
        let result = self.vol.log_finish(ticket, flushed);
        if let Err(err) = result {
            if !self.vol.is_read_only() {
                self.abort(err);
            }
        }
        result
    }

    /// Starts a commit of everything done so far (see [`Volume::commit_start`]); changes
    /// may go on before it is finished with [`Self::commit_finish`].
    pub fn commit_start(&mut self) -> EngineResult<CommitTicket> {
        self.guarded(|fs| fs.vol.commit_start())
    }

    /// Finishes the commit of `ticket` once the caller flushed every device since it
    /// started (`flushed` is how that went). A failure aborts the running transaction.
    pub fn commit_finish(
        &mut self,
        ticket: CommitTicket,
        flushed: EngineResult<()>,
    ) -> EngineResult<()> {
        let result = flushed.and_then(|()| self.vol.commit_finish(ticket, true));
        if let Err(err) = result {
            if !self.vol.is_read_only() {
                self.abort(err);
            }
        }
        result
    }

    /// Drops the running transaction after `err` (see [`Volume::abort`]).
    fn abort(&mut self, err: EngineError) {
        self.aborted = Some(err);
        // A failed re-read leaves the volume without devices: still read-only.
        let _ = self.vol.abort();
    }

    /// Creates a regular file, device node, FIFO or socket (`mode` carries the type).
    pub fn create(
        &mut self,
        dir: u64,
        name: &[u8],
        mode: u32,
        rdev: u64,
        owner: Owner,
        now: Timespec,
    ) -> EngineResult<Inode> {
        self.guarded(|fs| {
            let mode = if mode & S_IFMT == 0 {
                mode | S_IFREG
            } else {
                mode
            };
            if matches!(mode & S_IFMT, S_IFDIR | S_IFLNK) {
                return Err(EngineError::Invalid("create of a directory or symlink"));
            }
            Ok(fs.new_object(dir, name, mode, rdev, owner, now)?.0)
        })
    }

    /// Runs `create` (a call that makes a new inode) and gives the new inode the extended
    /// attributes `xattrs`, in the same change: the ACLs a directory's default ACL passes
    /// on. Each is checked before anything changes, so one that cannot be stored fails the
    /// call (ENOSPC for a value too large, as `set_xattr`) and leaves nothing behind.
    pub fn create_with_xattrs(
        &mut self,
        xattrs: &[(&[u8], &[u8])],
        now: Timespec,
        create: impl FnOnce(&mut Self) -> EngineResult<Inode>,
    ) -> EngineResult<Inode> {
        self.guarded(|fs| {
            for (name, value) in xattrs.iter() {
                check_xattr(name, value)?;
            }
            let new = create(fs)?;
            for (name, value) in xattrs.iter() {
                fs.set_xattr(new.ino, name, value, now)?;
            }
            fs.getattr(new.ino)
        })
    }

    /// Creates a directory.
    pub fn mkdir(
        &mut self,
        dir: u64,
        name: &[u8],
        perm: u32,
        owner: Owner,
        now: Timespec,
    ) -> EngineResult<Inode> {
        self.guarded(|fs| {
            Ok(fs
                .new_object(dir, name, S_IFDIR | (perm & 0o7777), 0, owner, now)?
                .0)
        })
    }

    /// Creates a symbolic link to `target`.
    pub fn symlink(
        &mut self,
        dir: u64,
        name: &[u8],
        target: &[u8],
        owner: Owner,
        now: Timespec,
    ) -> EngineResult<Inode> {
        self.guarded(|fs| {
            if target.is_empty() || target.contains(&0) {
                return Err(EngineError::Invalid("invalid symlink target"));
            }
            if target.len() > inode::SYMLINK_MAX {
                return Err(EngineError::NameTooLong);
            }
            let (mut inode, _) = fs.new_object(dir, name, S_IFLNK | 0o777, 0, owner, now)?;
            if target.len() > inode::SYMLINK_INLINE_MAX {
                // Too long for one item: stored in a data block, like file data.
                return fs.write_range(inode, 0, target, now);
            }
            let mut value = FVec::new();
            value.try_push(0)?;
            value.try_extend_from_slice(target)?;
            fs.vol
                .insert(fs.tree, Key::new(inode.ino, kind::EXTENT_DATA, 0), &value)?;
            inode.size = target.len() as u64;
            fs.put_inode(&inode)?;
            Ok(inode)
        })
    }

    /// Adds the name `name` in `dir` for inode `ino` (not a directory).
    pub fn link(&mut self, ino: u64, dir: u64, name: &[u8], now: Timespec) -> EngineResult<Inode> {
        self.guarded(|fs| {
            let mut inode = fs.getattr(ino)?;
            if inode.is_dir() {
                return Err(EngineError::NotPermitted);
            }
            if inode.nlink >= LINK_MAX {
                return Err(EngineError::TooManyLinks);
            }
            let mut parent = fs.dir(dir)?;
            check_name(name)?;
            if fs.find_entry(dir, name)?.is_some() {
                return Err(EngineError::Exists);
            }
            fs.add_entry(&mut parent, name, ino, type_of(inode.mode))?;
            if inode.nlink == 0 {
                // A tmpfile given its first name is no longer an orphan.
                fs.vol.remove(fs.tree, &inode::orphan_key(ino))?;
            }
            inode.nlink = link_up(inode.nlink)?;
            inode.ctime = now;
            parent.touch(now);
            fs.put_inode(&inode)?;
            fs.put_inode(&parent)?;
            Ok(inode)
        })
    }

    /// Removes the name `name` (not a directory) from `dir`; the inode goes with its last
    /// name. Returns the inode as it is after.
    pub fn unlink(&mut self, dir: u64, name: &[u8], now: Timespec) -> EngineResult<Inode> {
        self.guarded(|fs| {
            let mut parent = fs.dir(dir)?;
            check_name(name)?;
            let (ino, _) = fs.find_entry(dir, name)?.ok_or(EngineError::NotFound)?;
            let mut inode = fs.getattr(ino)?;
            if inode.is_dir() {
                return Err(EngineError::IsDir);
            }
            fs.remove_entry(&mut parent, name, ino)?;
            parent.touch(now);
            fs.put_inode(&parent)?;
            fs.drop_link(&mut inode, now)?;
            Ok(inode)
        })
    }

    /// Removes the empty directory `name` from `dir`.
    pub fn rmdir(&mut self, dir: u64, name: &[u8], now: Timespec) -> EngineResult<()> {
        self.guarded(|fs| {
            let mut parent = fs.dir(dir)?;
            check_name(name)?;
            let (ino, _) = fs.find_entry(dir, name)?.ok_or(EngineError::NotFound)?;
            let child = fs.getattr(ino)?;
            if !child.is_dir() {
                return Err(EngineError::NotDir);
            }
            if !fs.is_empty_dir(ino)? {
                return Err(EngineError::NotEmpty);
            }
            fs.remove_entry(&mut parent, name, ino)?;
            parent.nlink = count_down(parent.nlink, 1, parent.ino, "directory link count too low")?;
            parent.touch(now);
            fs.put_inode(&parent)?;
            fs.delete_inode(ino)
        })
    }

    /// Renames `sname` in `sdir` to `dname` in `ddir`, with `RENAME_NOREPLACE` or
    /// `RENAME_EXCHANGE` semantics when asked.
    pub fn rename(
        &mut self,
        sdir: u64,
        sname: &[u8],
        ddir: u64,
        dname: &[u8],
        flags: u32,
        now: Timespec,
    ) -> EngineResult<()> {
        self.guarded(|fs| {
            if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
                || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
            {
                return Err(EngineError::Invalid("bad rename flags"));
            }
            check_name(sname)?;
            check_name(dname)?;
            fs.dir(sdir)?;
            fs.dir(ddir)?;
            let (sino, stype) = fs.find_entry(sdir, sname)?.ok_or(EngineError::NotFound)?;
            let target = fs.find_entry(ddir, dname)?;
            let src = fs.getattr(sino)?;
            if src.is_dir() && sdir != ddir && fs.is_ancestor(sino, ddir)? {
                return Err(EngineError::Invalid("cannot move a directory into itself"));
            }
            if flags & RENAME_EXCHANGE != 0 {
                let (tino, ttype) = target.ok_or(EngineError::NotFound)?;
                let dst = fs.getattr(tino)?;
                if dst.is_dir() && sdir != ddir && fs.is_ancestor(tino, sdir)? {
                    return Err(EngineError::Invalid("cannot move a directory into itself"));
                }
                if sino == tino {
                    return Ok(());
                }
                return fs.exchange(sdir, sname, sino, stype, ddir, dname, tino, ttype, now);
            }
            if let Some((tino, _)) = target {
                if flags & RENAME_NOREPLACE != 0 {
                    return Err(EngineError::Exists);
                }
                if tino == sino {
                    // Two names of one inode: POSIX says do nothing.
                    return Ok(());
                }
                let dst = fs.getattr(tino)?;
                match (src.is_dir(), dst.is_dir()) {
                    (true, false) => return Err(EngineError::NotDir),
                    (false, true) => return Err(EngineError::IsDir),
                    (true, true) => {
                        if !fs.is_empty_dir(tino)? {
                            return Err(EngineError::NotEmpty);
                        }
                        fs.rmdir(ddir, dname, now)?;
                    }
                    (false, false) => {
                        fs.unlink(ddir, dname, now)?;
                    }
                }
            }
            let mut from = fs.getattr(sdir)?;
            fs.remove_entry(&mut from, sname, sino)?;
            from.touch(now);
            if sdir == ddir {
                fs.add_entry(&mut from, dname, sino, stype)?;
                fs.put_inode(&from)?;
            } else {
                let mut to = fs.getattr(ddir)?;
                if src.is_dir() {
                    if to.nlink >= LINK_MAX {
                        return Err(EngineError::TooManyLinks);
                    }
                    from.nlink =
                        count_down(from.nlink, 1, from.ino, "directory link count too low")?;
                    to.nlink = link_up(to.nlink)?;
                }
                fs.add_entry(&mut to, dname, sino, stype)?;
                to.touch(now);
                fs.put_inode(&from)?;
                fs.put_inode(&to)?;
            }
            let mut moved = fs.getattr(sino)?;
            moved.ctime = now;
            fs.put_inode(&moved)
        })
    }

    /// [`Self::rename`] with `RENAME_WHITEOUT` (and optionally `RENAME_NOREPLACE`): also
    /// creates the whiteout, owned by `owner`, at the source name, in the same change.
    /// Returns it, or `None` when there was nothing to move (the source and target names
    /// are links of one inode).
    #[allow(clippy::too_many_arguments)]
    pub fn rename_whiteout(
        &mut self,
        sdir: u64,
        sname: &[u8],
        ddir: u64,
        dname: &[u8],
        flags: u32,
        owner: Owner,
        now: Timespec,
    ) -> EngineResult<Option<Inode>> {
        self.guarded(|fs| {
            if flags & !(RENAME_NOREPLACE | RENAME_WHITEOUT) != 0 || flags & RENAME_WHITEOUT == 0 {
                return Err(EngineError::Invalid("bad rename flags"));
            }
            fs.rename(sdir, sname, ddir, dname, flags & RENAME_NOREPLACE, now)?;
            if fs.find_entry(sdir, sname)?.is_some() {
                return Ok(None);
            }
            let (whiteout, _) = fs.new_object(sdir, sname, S_IFCHR, WHITEOUT_DEV, owner, now)?;
            Ok(Some(whiteout))
        })
    }

    /// Changes attributes of `ino` (ctime becomes `now`); returns the new inode.
    pub fn setattr(&mut self, ino: u64, attr: &SetAttr, now: Timespec) -> EngineResult<Inode> {
        self.guarded(|fs| {
            if let Some(size) = attr.size {
                fs.truncate(ino, size, now)?;
                if attr.trim {
                    fs.trim_past(ino, size)?;
                }
            }
            let mut inode = fs.getattr(ino)?;
            if let Some(mode) = attr.mode {
                inode.mode = (inode.mode & S_IFMT) | (mode & 0o7777);
            }
            if let Some(uid) = attr.uid {
                inode.uid = uid;
            }
            if let Some(gid) = attr.gid {
                inode.gid = gid;
            }
            if let Some(t) = attr.atime {
                inode.atime = t;
            }
            if let Some(t) = attr.mtime {
                inode.mtime = t;
            }
            if let Some(flags) = attr.flags {
                inode.flags = flags;
            }
            inode.ctime = attr.ctime.unwrap_or(now);
            fs.put_inode(&inode)?;
            Ok(inode)
        })
    }

    /// Sets extended attribute `name` of `ino` to `value`.
    pub fn set_xattr(
        &mut self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        now: Timespec,
    ) -> EngineResult<()> {
        self.guarded(|fs| {
            check_xattr(name, value)?;
            let mut node = fs.getattr(ino)?;
            let hash = name_hash(name);
            let key = Key::new(ino, kind::XATTR, hash);
            // The item's other names, the slots their spilled values use, and the old
            // value of this name if it was spilled.
            let mut out = FVec::new();
            let mut slots: FVec<u16> = FVec::new();
            let mut old_spill = None;
            if let Some(data) = fs.vol.lookup(fs.tree, &key)? {
                for e in inode::decode_xattrs(&data, ino)?.iter() {
                    let spill = match e.value {
                        inode::XattrValue::Spilled { slot, .. } => Some(slot),
                        inode::XattrValue::Inline(_) => None,
                    };
                    if e.name.as_slice() == name {
                        old_spill = spill;
                    } else {
                        inode::encode_xattr_entry(&mut out, e)?;
                        if let Some(slot) = spill {
                            slots.try_push(slot)?;
                        }
                    }
                }
            }
            // Everything is checked before anything changes: a refusal changes nothing.
            let fits_inline = value.len() <= inode::XATTR_INLINE_MAX
                && out
                    .len()
                    .saturating_add(4)
                    .saturating_add(name.len())
                    .saturating_add(value.len())
                    <= super::node::MAX_ITEM_DATA;
            let spill = if fits_inline {
                inode::encode_xattr(&mut out, name, value)?;
                None
            } else {
                // The value's own slot if it had one, else the lowest free one.
                let slot = match old_spill {
                    Some(slot) => slot,
                    None => (0..=u16::MAX)
                        .find(|s| !slots.contains(s))
                        .ok_or(EngineError::NoSpace)?,
                };
                let len = u32::try_from(value.len()).map_err(|_| EngineError::NoSpace)?;
                inode::encode_spilled_xattr(&mut out, name, len, slot)?;
                Some(slot)
            };
            if out.len() > super::node::MAX_ITEM_DATA {
                return Err(EngineError::NoSpace);
            }
            if let Some(slot) = old_spill {
                fs.remove_xattr_spill(ino, hash, slot)?;
            }
            if let Some(slot) = spill {
                for (part, piece) in value.chunks(inode::XATTR_SPILL_PART).enumerate() {
                    let part = u16::try_from(part).map_err(|_| EngineError::NoSpace)?;
                    let at = inode::xattr_spill_key(ino, hash, slot, part);
                    fs.vol.insert(fs.tree, at, piece)?;
                }
                fs.vol.enable_incompat(format::INCOMPAT_XATTR_SPILL);
            }
            fs.vol.insert(fs.tree, key, &out)?;
            node.ctime = now;
            fs.put_inode(&node)
        })
    }

    /// Removes extended attribute `name` of `ino`.
    pub fn remove_xattr(&mut self, ino: u64, name: &[u8], now: Timespec) -> EngineResult<()> {
        self.guarded(|fs| {
            let mut node = fs.getattr(ino)?;
            let hash = name_hash(name);
            let key = Key::new(ino, kind::XATTR, hash);
            let data = fs.vol.lookup(fs.tree, &key)?.ok_or(EngineError::NoData)?;
            let mut out = FVec::new();
            let mut found = None;
            for e in inode::decode_xattrs(&data, ino)?.iter() {
                if e.name.as_slice() == name {
                    found = Some(match e.value {
                        inode::XattrValue::Spilled { slot, .. } => Some(slot),
                        inode::XattrValue::Inline(_) => None,
                    });
                } else {
                    inode::encode_xattr_entry(&mut out, e)?;
                }
            }
            let Some(spilled) = found else {
                return Err(EngineError::NoData);
            };
            if let Some(slot) = spilled {
                fs.remove_xattr_spill(ino, hash, slot)?;
            }
            if out.is_empty() {
                fs.vol.remove(fs.tree, &key)?;
            } else {
                fs.vol.insert(fs.tree, key, &out)?;
            }
            node.ctime = now;
            fs.put_inode(&node)
        })
    }

    /// Writes `data` into `ino` at `offset`, growing the file as needed.
    pub fn write(
        &mut self,
        ino: u64,
        offset: u64,
        data: &[u8],
        now: Timespec,
    ) -> EngineResult<Inode> {
        self.guarded(|fs| {
            let inode = fs.getattr(ino)?;
            if inode.file_type() != S_IFREG {
                return Err(if inode.is_dir() {
                    EngineError::IsDir
                } else {
                    EngineError::Invalid("write to a special file")
                });
            }
            // Whole blocks, with the partial ones at the edges.
            fs.make_room((data.len() as u64).saturating_add(2 * BLOCK))?;
            fs.write_range(inode, offset, data, now)
        })
    }

    /// Drops the blocks of `ino` wholly past `size` (preallocated ranges past its end). Part
    /// of a change (`setattr`).
    fn trim_past(&mut self, ino: u64, size: u64) -> EngineResult<()> {
        let keep = size.div_ceil(BLOCK).saturating_mul(BLOCK);
        let dropped = self.drop_extents(ino, keep, u64::MAX)?;
        if dropped > 0 {
            let mut inode = self.getattr(ino)?;
            inode.bytes = count_down(inode.bytes, dropped, ino, "inode bytes below its extents")?;
            self.put_inode(&inode)?;
        }
        Ok(())
    }

    /// Sets the size of regular file `ino`: data past a smaller size is dropped (the tail of
    /// the last block is zeroed), a larger size reads as zeros.
    pub fn truncate(&mut self, ino: u64, size: u64, now: Timespec) -> EngineResult<Inode> {
        self.guarded(|fs| {
            let mut inode = fs.getattr(ino)?;
            if inode.file_type() != S_IFREG {
                return Err(if inode.is_dir() {
                    EngineError::IsDir
                } else {
                    EngineError::Invalid("truncate of a special file")
                });
            }
            if size > MAX_FILE_SIZE {
                return Err(EngineError::FileTooBig);
            }
            if size < inode.size {
                let tail = size % BLOCK;
                if tail != 0 {
                    let blk = size.saturating_sub(tail);
                    let mut old = fs.read(ino, blk, BLOCK_SIZE as usize)?;
                    old.truncate(tail as usize);
                    old.try_resize(BLOCK_SIZE as usize, 0)?;
                    // Rewriting the whole block keeps the bytes past the new size zero.
                    let saved = inode.size;
                    inode.size = blk.saturating_add(BLOCK).min(saved);
                    fs.put_inode(&inode)?;
                    fs.write(ino, blk, &old, now)?;
                    inode = fs.getattr(ino)?;
                }
                let keep = size.div_ceil(BLOCK).saturating_mul(BLOCK);
                let dropped = fs.drop_extents(ino, keep, u64::MAX)?;
                inode.bytes =
                    count_down(inode.bytes, dropped, ino, "inode bytes below its extents")?;
            }
            inode.size = size;
            inode.touch(now);
            fs.put_inode(&inode)?;
            Ok(inode)
        })
    }

    /// Makes `[offset, end)` of regular file `ino` (within its size) read as zeros and
    /// frees its whole blocks: partial blocks at the edges are zeroed in place. Part of a
    /// change (`fallocate`).
    fn punch(&mut self, ino: u64, offset: u64, end: u64, now: Timespec) -> EngineResult<()> {
        if offset >= end {
            return Ok(());
        }
        let first_full = offset.div_ceil(BLOCK).saturating_mul(BLOCK);
        let last_full = end & !(BLOCK - 1);
        if first_full >= last_full {
            let zeros = mem::zeroed_bytes(
                usize::try_from(end.saturating_sub(offset)).map_err(|_| EngineError::Range)?,
            )?;
            self.write(ino, offset, &zeros, now)?;
        } else {
            for (a, b) in [(offset, first_full), (last_full, end)] {
                if a < b {
                    let zeros = mem::zeroed_bytes(
                        usize::try_from(b.saturating_sub(a)).map_err(|_| EngineError::Range)?,
                    )?;
                    self.write(ino, a, &zeros, now)?;
                }
            }
            let dropped = self.drop_extents(ino, first_full, last_full)?;
            let mut after = self.getattr(ino)?;
            after.bytes = count_down(after.bytes, dropped, ino, "inode bytes below its extents")?;
            self.put_inode(&after)?;
        }
        let mut inode = self.getattr(ino)?;
        inode.touch(now);
        self.put_inode(&inode)
    }

    /// Preallocates (default), punches (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`) or
    /// zeroes (`FALLOC_FL_ZERO_RANGE`: punched, then preallocated, in one change) `len`
    /// bytes of regular file `ino` at `offset`. Preallocated blocks read as zeros until
    /// written; the size grows to cover the range unless `FALLOC_FL_KEEP_SIZE`.
    pub fn fallocate(
        &mut self,
        ino: u64,
        mode: u32,
        offset: u64,
        len: u64,
        now: Timespec,
    ) -> EngineResult<Inode> {
        self.guarded(|fs| {
            let known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
            if mode & !known != 0 {
                return Err(EngineError::NotSupported);
            }
            if mode & FALLOC_FL_PUNCH_HOLE != 0 && mode & FALLOC_FL_KEEP_SIZE == 0 {
                return Err(EngineError::NotSupported);
            }
            if mode & FALLOC_FL_PUNCH_HOLE != 0 && mode & FALLOC_FL_ZERO_RANGE != 0 {
                return Err(EngineError::Invalid("punch and zero range together"));
            }
            if len == 0 {
                return Err(EngineError::Invalid("fallocate of zero bytes"));
            }
            let mut inode = fs.getattr(ino)?;
            if inode.file_type() != S_IFREG {
                return Err(if inode.is_dir() {
                    EngineError::IsDir
                } else {
                    EngineError::NoDevice
                });
            }
            let end = offset
                .checked_add(len)
                .filter(|&e| e <= MAX_FILE_SIZE)
                .ok_or(EngineError::FileTooBig)?;
            if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 {
                fs.punch(ino, offset, end.min(inode.size), now)?;
                if mode & FALLOC_FL_PUNCH_HOLE != 0 {
                    return fs.getattr(ino);
                }
                inode = fs.getattr(ino)?;
            }
            fs.make_room(len.saturating_add(2 * BLOCK))?;
            // Preallocate the holes of the range.
            let first = offset & !(BLOCK - 1);
            let last = end.div_ceil(BLOCK).saturating_mul(BLOCK);
            let mut pos = first;
            let mut added = 0u64;
            while pos < last {
                let next = fs.extent_at_or_after(ino, pos)?;
                let hole_end = match next {
                    Some(p) if p.start <= pos => {
                        pos = p.end;
                        continue;
                    }
                    Some(p) => p.start.min(last),
                    None => last,
                };
                while pos < hole_end {
                    let want = hole_end.saturating_sub(pos) / BLOCK;
                    let owner = fs.file_owner(ino, pos);
                    let goal = fs.data_goal(ino, pos)?;
                    let (disk, count) =
                        fs.vol
                            .alloc_data(want.min(MAX_EXTENT_BLOCKS), owner, goal)?;
                    let e = Extent {
                        kind: ExtentKind::Prealloc,
                        disk,
                        len: count.saturating_mul(BLOCK),
                    };
                    fs.vol
                        .insert(fs.tree, Key::new(ino, kind::EXTENT_DATA, pos), &e.encode())?;
                    pos = pos.saturating_add(e.len);
                    added = added.saturating_add(e.len);
                }
            }
            inode.bytes = inode.bytes.checked_add(added).ok_or(EngineError::Corrupt {
                block: ino,
                reason: "inode bytes in use past the largest file",
            })?;
            if mode & FALLOC_FL_KEEP_SIZE == 0 {
                inode.size = inode.size.max(end);
            }
            inode.ctime = now;
            fs.put_inode(&inode)?;
            Ok(inode)
        })
    }

    // ---- inodes ----

    /// The inode `ino`.
    pub fn getattr(&mut self, ino: u64) -> EngineResult<Inode> {
        let data = self
            .vol
            .lookup(self.tree, &ikey(ino))?
            .ok_or(EngineError::NotFound)?;
        let root = self.vol.root_block(self.tree).unwrap_or(0);
        Inode::decode(ino, &data, root)
    }

    fn put_inode(&mut self, inode: &Inode) -> EngineResult<()> {
        self.vol
            .insert(self.tree, ikey(inode.ino), &inode.encode())?;
        Ok(())
    }

    fn dir(&mut self, ino: u64) -> EngineResult<Inode> {
        let inode = self.getattr(ino)?;
        if !inode.is_dir() {
            return Err(EngineError::NotDir);
        }
        Ok(inode)
    }

    // ---- directory entries ----

    /// The inode `name` names in directory `dir`, if any.
    pub fn lookup(&mut self, dir: u64, name: &[u8]) -> EngineResult<Option<u64>> {
        self.dir(dir)?;
        check_name(name)?;
        Ok(self.find_entry(dir, name)?.map(|(ino, _)| ino))
    }

    /// The parent directory of directory `dir` (the root is its own parent): what a file
    /// handle's `..` resolves to.
    pub fn parent_dir(&mut self, dir: u64) -> EngineResult<u64> {
        self.dir(dir)?;
        if dir == ROOT_INO {
            return Ok(ROOT_INO);
        }
        match self
            .vol
            .first_at_or_after(self.tree, &Key::new(dir, kind::INODE_REF, 0))?
        {
            Some((k, _)) if k.objectid == dir && k.kind == kind::INODE_REF => Ok(k.offset),
            _ => Err(EngineError::Corrupt {
                block: dir,
                reason: "directory without a parent",
            }),
        }
    }

    /// (ino, type) of `name` in `dir`.
    fn find_entry(&mut self, dir: u64, name: &[u8]) -> EngineResult<Option<(u64, u8)>> {
        let key = Key::new(dir, kind::DIR_ITEM, name_hash(name));
        let Some(data) = self.vol.lookup(self.tree, &key)? else {
            return Ok(None);
        };
        let entries = inode::decode_dirents(&data, dir)?;
        Ok(entries
            .iter()
            .find(|(_, _, n)| n.as_slice() == name)
            .map(|(ino, t, _)| (*ino, *t)))
    }

    /// Adds entry `name` -> `ino` to `dir` (which must not have it), with back reference.
    fn add_entry(
        &mut self,
        dir: &mut Inode,
        name: &[u8],
        ino: u64,
        file_type: u8,
    ) -> EngineResult<()> {
        let index = dir.next_index;
        dir.next_index = index.checked_add(1).ok_or(EngineError::NoSpace)?;
        // Every item is built and checked before the first one is stored: a name that
        // does not fit fails the call with nothing changed.
        let hkey = Key::new(dir.ino, kind::DIR_ITEM, name_hash(name));
        let mut list = self.vol.lookup(self.tree, &hkey)?.unwrap_or_default();
        inode::encode_dirent(&mut list, ino, file_type, name)?;
        if list.len() > super::node::MAX_ITEM_DATA {
            return Err(EngineError::NoSpace);
        }
        // The names of one inode in one directory share a back-reference item; once it
        // is full, further names are extended references, by hash of directory and name.
        let rkey = Key::new(ino, kind::INODE_REF, dir.ino);
        let mut refs = self.vol.lookup(self.tree, &rkey)?.unwrap_or_default();
        inode::encode_ref(&mut refs, index, name)?;
        let (back_key, back) = if refs.len() <= super::node::MAX_ITEM_DATA {
            (rkey, refs)
        } else {
            let xkey = Key::new(ino, kind::INODE_EXTREF, inode::extref_hash(dir.ino, name));
            let mut xrefs = self.vol.lookup(self.tree, &xkey)?.unwrap_or_default();
            inode::encode_extref(&mut xrefs, dir.ino, index, name)?;
            if xrefs.len() > super::node::MAX_ITEM_DATA {
                return Err(EngineError::TooManyLinks);
            }
            self.vol.enable_incompat(format::INCOMPAT_EXTREF);
            (xkey, xrefs)
        };
        let mut one = FVec::new();
        inode::encode_dirent(&mut one, ino, file_type, name)?;
        self.vol.insert(self.tree, hkey, &list)?;
        self.vol
            .insert(self.tree, Key::new(dir.ino, kind::DIR_INDEX, index), &one)?;
        self.vol.insert(self.tree, back_key, &back)?;
        // Names are at most NAME_MAX bytes; a size this overflows was wrong on disk.
        dir.size = dir
            .size
            .checked_add((name.len() as u64).saturating_mul(2))
            .ok_or(EngineError::Corrupt {
                block: dir.ino,
                reason: "directory size past any count of entries",
            })?;
        Ok(())
    }

    /// Removes entry `name` (naming `ino`) from `dir`, with its back reference.
    fn remove_entry(&mut self, dir: &mut Inode, name: &[u8], ino: u64) -> EngineResult<()> {
        let hkey = Key::new(dir.ino, kind::DIR_ITEM, name_hash(name));
        let data = self
            .vol
            .lookup(self.tree, &hkey)?
            .ok_or(EngineError::NotFound)?;
        let mut rest = FVec::new();
        for (i, t, n) in inode::decode_dirents(&data, dir.ino)?.iter() {
            if n.as_slice() != name {
                inode::encode_dirent(&mut rest, *i, *t, n)?;
            }
        }
        if rest.is_empty() {
            self.vol.remove(self.tree, &hkey)?;
        } else {
            self.vol.insert(self.tree, hkey, &rest)?;
        }
        let index = self.remove_back_ref(ino, dir.ino, name)?;
        self.vol
            .remove(self.tree, &Key::new(dir.ino, kind::DIR_INDEX, index))?;
        dir.size = count_down(
            dir.size,
            (name.len() as u64).saturating_mul(2),
            dir.ino,
            "directory size below its entries",
        )?;
        Ok(())
    }

    /// Removes the back reference of name `name` of `ino` in `dir` (from its INODE_REF
    /// item, or else its extended one); returns the entry's index.
    fn remove_back_ref(&mut self, ino: u64, dir: u64, name: &[u8]) -> EngineResult<u64> {
        let missing = EngineError::Corrupt {
            block: ino,
            reason: "directory entry without a back reference",
        };
        let rkey = Key::new(ino, kind::INODE_REF, dir);
        if let Some(data) = self.vol.lookup(self.tree, &rkey)? {
            let mut index = None;
            let mut refs = FVec::new();
            for (idx, n) in inode::decode_refs(&data, ino)?.iter() {
                if index.is_none() && n.as_slice() == name {
                    index = Some(*idx);
                } else {
                    inode::encode_ref(&mut refs, *idx, n)?;
                }
            }
            if let Some(index) = index {
                if refs.is_empty() {
                    self.vol.remove(self.tree, &rkey)?;
                } else {
                    self.vol.insert(self.tree, rkey, &refs)?;
                }
                return Ok(index);
            }
        }
        let xkey = Key::new(ino, kind::INODE_EXTREF, inode::extref_hash(dir, name));
        let data = self.vol.lookup(self.tree, &xkey)?.ok_or(missing)?;
        let mut index = None;
        let mut xrefs = FVec::new();
        for (parent, idx, n) in inode::decode_extrefs(&data, ino)?.iter() {
            if index.is_none() && *parent == dir && n.as_slice() == name {
                index = Some(*idx);
            } else {
                inode::encode_extref(&mut xrefs, *parent, *idx, n)?;
            }
        }
        let index = index.ok_or(missing)?;
        if xrefs.is_empty() {
            self.vol.remove(self.tree, &xkey)?;
        } else {
            self.vol.insert(self.tree, xkey, &xrefs)?;
        }
        Ok(index)
    }

    /// Entries of `dir` at positions `pos` and after, at most `max` of them.
    pub fn readdir(&mut self, dir: u64, pos: u64, max: usize) -> EngineResult<FVec<DirEntry>> {
        self.readdir_before(dir, pos, u64::MAX, max)
    }

    /// The position the next entry of `dir` will take: a directory stream that stops
    /// there ([`Self::readdir_before`]) ends even while its reader renames each entry it
    /// reads (every rename gives the entry a new position, past the old ones).
    pub fn dir_end(&mut self, dir: u64) -> EngineResult<u64> {
        Ok(self.dir(dir)?.next_index)
    }

    /// Entries of `dir` at positions from `pos` up to, not including, `end`, at most
    /// `max` of them.
    pub fn readdir_before(
        &mut self,
        dir: u64,
        pos: u64,
        end: u64,
        max: usize,
    ) -> EngineResult<FVec<DirEntry>> {
        self.dir(dir)?;
        let mut out = FVec::new();
        if pos >= end {
            return Ok(out);
        }
        let mut entries_left = self.vol.range(
            self.tree,
            Key::new(dir, kind::DIR_INDEX, pos),
            Key::new(dir, kind::DIR_INDEX, end.saturating_sub(1)),
        );
        while out.len() < max {
            let Some((k, v)) = self.vol.next_in(&mut entries_left)? else {
                break;
            };
            let mut entries = inode::decode_dirents(&v, dir)?;
            let (ino, file_type, name) = entries.pop().ok_or(EngineError::Corrupt {
                block: dir,
                reason: "empty directory index item",
            })?;
            out.try_push(DirEntry {
                ino,
                file_type,
                index: k.offset,
                name,
            })?;
        }
        Ok(out)
    }

    fn is_empty_dir(&mut self, dir: u64) -> EngineResult<bool> {
        Ok(self.readdir(dir, 0, 1)?.is_empty())
    }

    // ---- creating and removing ----

    /// A new inode (not stored yet): the next inode number, one link (two for a directory).
    fn new_inode(
        &mut self,
        mode: u32,
        rdev: u64,
        owner: Owner,
        now: Timespec,
    ) -> EngineResult<Inode> {
        let ino = self.next_ino;
        if ino >= inode::ORPHAN_OBJECTID {
            return Err(EngineError::NoSpace);
        }
        self.next_ino = ino.saturating_add(1);
        Ok(Inode {
            ino,
            mode,
            uid: owner.uid,
            gid: owner.gid,
            nlink: if mode & S_IFMT == S_IFDIR { 2 } else { 1 },
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            generation: self.vol.generation(),
            rdev,
            next_index: 2,
            ..Inode::default()
        })
    }

    fn new_object(
        &mut self,
        dir: u64,
        name: &[u8],
        mode: u32,
        rdev: u64,
        owner: Owner,
        now: Timespec,
    ) -> EngineResult<(Inode, Inode)> {
        let mut parent = self.dir(dir)?;
        check_name(name)?;
        if self.find_entry(dir, name)?.is_some() {
            return Err(EngineError::Exists);
        }
        let is_dir = mode & S_IFMT == S_IFDIR;
        if is_dir {
            if parent.nlink >= LINK_MAX {
                return Err(EngineError::TooManyLinks);
            }
            parent.nlink = link_up(parent.nlink)?;
        }
        let inode = self.new_inode(mode, rdev, owner, now)?;
        self.add_entry(&mut parent, name, inode.ino, type_of(mode))?;
        parent.touch(now);
        self.put_inode(&inode)?;
        self.put_inode(&parent)?;
        Ok((inode, parent))
    }

    /// The target of symbolic link `ino`.
    pub fn readlink(&mut self, ino: u64) -> EngineResult<FVec<u8>> {
        let inode = self.getattr(ino)?;
        if inode.file_type() != S_IFLNK {
            return Err(EngineError::Invalid("not a symlink"));
        }
        let data = self
            .vol
            .lookup(self.tree, &Key::new(ino, kind::EXTENT_DATA, 0))?
            .ok_or(EngineError::Corrupt {
                block: ino,
                reason: "symlink without a target",
            })?;
        let target = match data.split_first() {
            Some((0, target)) => FVec::try_from_slice(target)?,
            _ => self.read_range(&inode, 0, inode::SYMLINK_MAX)?,
        };
        if target.is_empty() || target.len() as u64 != inode.size || target.contains(&0) {
            return Err(EngineError::Corrupt {
                block: ino,
                reason: "symlink target does not match its inode",
            });
        }
        Ok(target)
    }

    /// Drops every item of inode `ino` and the references of its data.
    fn delete_inode(&mut self, ino: u64) -> EngineResult<()> {
        self.drop_extents(ino, 0, u64::MAX)?;
        let mut items = self.vol.range(
            self.tree,
            Key::new(ino, 0, 0),
            Key::new(ino, u8::MAX, u64::MAX),
        );
        while let Some((k, _)) = self.vol.next_in(&mut items)? {
            self.vol.remove(self.tree, &k)?;
        }
        Ok(())
    }

    /// Whether directory `ancestor` is `dir` or one of its ancestors.
    fn is_ancestor(&mut self, ancestor: u64, dir: u64) -> EngineResult<bool> {
        let mut cur = dir;
        for _ in 0..4096 {
            if cur == ancestor {
                return Ok(true);
            }
            if cur == ROOT_INO {
                return Ok(false);
            }
            cur = self.parent_dir(cur)?;
        }
        Err(EngineError::Corrupt {
            block: dir,
            reason: "directory loop",
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn exchange(
        &mut self,
        sdir: u64,
        sname: &[u8],
        sino: u64,
        stype: u8,
        ddir: u64,
        dname: &[u8],
        tino: u64,
        ttype: u8,
        now: Timespec,
    ) -> EngineResult<()> {
        let s_is_dir = self.getattr(sino)?.is_dir();
        let t_is_dir = self.getattr(tino)?.is_dir();
        let mut a = self.getattr(sdir)?;
        if sdir == ddir {
            self.remove_entry(&mut a, sname, sino)?;
            self.remove_entry(&mut a, dname, tino)?;
            self.add_entry(&mut a, sname, tino, ttype)?;
            self.add_entry(&mut a, dname, sino, stype)?;
            a.touch(now);
            self.put_inode(&a)?;
        } else {
            let mut b = self.getattr(ddir)?;
            // A directory moving across parents takes its ".." link with it; the counts
            // are checked before anything changes, so a refusal leaves both names.
            if s_is_dir && !t_is_dir {
                a.nlink = count_down(a.nlink, 1, a.ino, "directory link count too low")?;
                b.nlink = link_up(b.nlink)?;
            } else if t_is_dir && !s_is_dir {
                b.nlink = count_down(b.nlink, 1, b.ino, "directory link count too low")?;
                a.nlink = link_up(a.nlink)?;
            }
            self.remove_entry(&mut a, sname, sino)?;
            self.remove_entry(&mut b, dname, tino)?;
            self.add_entry(&mut a, sname, tino, ttype)?;
            self.add_entry(&mut b, dname, sino, stype)?;
            for d in [&mut a, &mut b] {
                d.touch(now);
            }
            self.put_inode(&a)?;
            self.put_inode(&b)?;
        }
        for ino in [sino, tino] {
            let mut i = self.getattr(ino)?;
            i.ctime = now;
            self.put_inode(&i)?;
        }
        Ok(())
    }

    // ---- attributes ----

    /// The value of extended attribute `name` of `ino`.
    pub fn get_xattr(&mut self, ino: u64, name: &[u8]) -> EngineResult<FVec<u8>> {
        self.getattr(ino)?;
        let key = Key::new(ino, kind::XATTR, name_hash(name));
        let data = self
            .vol
            .lookup(self.tree, &key)?
            .ok_or(EngineError::NoData)?;
        let mut all = inode::decode_xattrs(&data, ino)?;
        while let Some(e) = all.pop() {
            if e.name.as_slice() != name {
                continue;
            }
            return match e.value {
                inode::XattrValue::Inline(v) => Ok(v),
                inode::XattrValue::Spilled { len, slot } => {
                    read_xattr_spill(&mut self.vol, self.tree, ino, name_hash(name), slot, len)
                }
            };
        }
        Err(EngineError::NoData)
    }

    /// Removes every piece of the value spilled under `slot` of `hash`.
    fn remove_xattr_spill(&mut self, ino: u64, hash: u64, slot: u16) -> EngineResult<()> {
        let mut pieces = self.vol.range(
            self.tree,
            inode::xattr_spill_key(ino, hash, slot, 0),
            inode::xattr_spill_key(ino, hash, slot, u16::MAX),
        );
        while let Some((k, _)) = self.vol.next_in(&mut pieces)? {
            self.vol.remove(self.tree, &k)?;
        }
        Ok(())
    }

    /// The names of the extended attributes of `ino`, each followed by a NUL.
    pub fn list_xattr(&mut self, ino: u64) -> EngineResult<FVec<u8>> {
        self.getattr(ino)?;
        let mut out = FVec::new();
        let mut xattrs = self.vol.range(
            self.tree,
            Key::new(ino, kind::XATTR, 0),
            Key::new(ino, kind::XATTR, u64::MAX),
        );
        while let Some((k, v)) = self.vol.next_in(&mut xattrs)? {
            for e in inode::decode_xattrs(&v, k.objectid)?.iter() {
                out.try_extend_from_slice(&e.name)?;
                out.try_push(0)?;
            }
        }
        Ok(out)
    }

    // ---- data ----

    /// The extent of `ino` that covers byte `pos`, or the next one after it.
    fn extent_at_or_after(&mut self, ino: u64, pos: u64) -> EngineResult<Option<Placed>> {
        let root = self.vol.root_block(self.tree).unwrap_or(0);
        let placed = |k: &Key, v: &[u8]| -> EngineResult<Placed> {
            let extent = Extent::decode(v, root)?;
            Ok(Placed {
                start: k.offset,
                end: extent_end(k.offset, &extent, root)?,
                extent,
            })
        };
        let before = self
            .vol
            .last_at_or_before(self.tree, &Key::new(ino, kind::EXTENT_DATA, pos))?;
        if let Some((k, v)) = before {
            if k.objectid == ino && k.kind == kind::EXTENT_DATA {
                let p = placed(&k, &v)?;
                if p.end > pos {
                    return Ok(Some(p));
                }
            }
        }
        let after = self
            .vol
            .first_at_or_after(self.tree, &Key::new(ino, kind::EXTENT_DATA, pos))?;
        match after {
            Some((k, v)) if k.objectid == ino && k.kind == kind::EXTENT_DATA => {
                Ok(Some(placed(&k, &v)?))
            }
            _ => Ok(None),
        }
    }

    /// Where new blocks for `ino` from byte `pos` (a block boundary, no extent over it)
    /// should go: on from the file's extent before `pos` on disk, as far on as `pos` is
    /// past that extent in the file, so that ranges written back out of order still land
    /// in file order. `None` if no extent with blocks ends within [`GOAL_REACH`] before it.
    fn data_goal(&mut self, ino: u64, pos: u64) -> EngineResult<Option<u64>> {
        let Some(before) = pos.checked_sub(1) else {
            return Ok(None);
        };
        let root = self.vol.root_block(self.tree).unwrap_or(0);
        let found = self
            .vol
            .last_at_or_before(self.tree, &Key::new(ino, kind::EXTENT_DATA, before))?;
        let Some((k, v)) = found.filter(|(k, _)| k.objectid == ino && k.kind == kind::EXTENT_DATA)
        else {
            return Ok(None);
        };
        let extent = Extent::decode(&v, root)?;
        let end = extent_end(k.offset, &extent, root)?;
        match pos.checked_sub(end) {
            Some(gap) if gap <= GOAL_REACH && extent.kind != ExtentKind::Inline => Ok(extent
                .disk
                .checked_add(extent.len)
                .and_then(|d| d.checked_add(gap))),
            _ => Ok(None),
        }
    }

    /// Removes the extents (or the parts of them) of `ino` in `[start, end)`, dropping the
    /// references of the blocks they covered. Returns the bytes of extents removed.
    fn drop_extents(&mut self, ino: u64, start: u64, end: u64) -> EngineResult<u64> {
        let mut dropped = 0u64;
        let mut pos = start;
        while pos < end {
            let Some(Placed {
                start: off,
                end: e_end,
                extent: e,
            }) = self.extent_at_or_after(ino, pos)?
            else {
                break;
            };
            if off >= end {
                break;
            }
            self.vol
                .remove(self.tree, &Key::new(ino, kind::EXTENT_DATA, off))?;
            if e.kind == ExtentKind::Inline {
                pos = e_end.max(pos.saturating_add(1));
                continue;
            }
            let cut_start = off.max(start);
            let cut_end = e_end.min(end);
            // Keep the parts outside the range.
            if off < cut_start {
                let left = Extent {
                    len: cut_start.saturating_sub(off),
                    ..e
                };
                self.vol.insert(
                    self.tree,
                    Key::new(ino, kind::EXTENT_DATA, off),
                    &left.encode(),
                )?;
            }
            if cut_end < e_end {
                let right = Extent {
                    disk: e.disk.saturating_add(cut_end.saturating_sub(off)),
                    len: e_end.saturating_sub(cut_end),
                    ..e
                };
                self.vol.insert(
                    self.tree,
                    Key::new(ino, kind::EXTENT_DATA, cut_end),
                    &right.encode(),
                )?;
            }
            let mut b = cut_start;
            while b < cut_end {
                let owner = self.file_owner(ino, b);
                self.vol
                    .data_ref(e.disk.saturating_add(b.saturating_sub(off)), -1, owner)?;
                b = b.saturating_add(BLOCK);
            }
            dropped = dropped.saturating_add(cut_end.saturating_sub(cut_start));
            pos = cut_end;
        }
        Ok(dropped)
    }

    /// Reads up to `len` bytes of `ino` at `offset` (less at the end of the file).
    pub fn read(&mut self, ino: u64, offset: u64, len: usize) -> EngineResult<FVec<u8>> {
        let inode = self.getattr(ino)?;
        if inode.file_type() != S_IFREG {
            return Err(if inode.is_dir() {
                EngineError::IsDir
            } else {
                EngineError::Invalid("read of a special file")
            });
        }
        self.read_range(&inode, offset, len)
    }

    /// Reads the extents of `inode` (a file, or a symlink with a long target).
    fn read_range(&mut self, inode: &Inode, offset: u64, len: usize) -> EngineResult<FVec<u8>> {
        let ino = inode.ino;
        let end = inode.size.min(offset.saturating_add(len as u64));
        let mut out = FVec::new();
        if offset >= end {
            return Ok(out);
        }
        let total = usize::try_from(end.saturating_sub(offset)).map_err(|_| EngineError::Range)?;
        out.try_resize(total, 0)?;
        let mut run = FVec::new();
        let mut pos = offset;
        while pos < end {
            let Some(placed) = self.extent_at_or_after(ino, pos)? else {
                break;
            };
            let (off, e) = (placed.start, placed.extent);
            if off >= end {
                break;
            }
            let e_end = placed.end.min(end);
            let mut p = pos.max(off);
            if e.kind == ExtentKind::Regular {
                // Whole blocks, in runs of at most MAX_READ_RUN bytes read at once.
                while p < e_end {
                    let blk = p & !(BLOCK - 1);
                    let run_end = e_end
                        .div_ceil(BLOCK)
                        .saturating_mul(BLOCK)
                        .min(blk.saturating_add(MAX_READ_RUN));
                    let run_len = run_end.saturating_sub(blk) as usize;
                    run.try_resize(run_len, 0)?;
                    self.vol
                        .read_data_run(e.disk.saturating_add(blk.saturating_sub(off)), &mut run)?;
                    let upto = run_end.min(e_end);
                    let src = run
                        .get(p.saturating_sub(blk) as usize..upto.saturating_sub(blk) as usize)
                        .ok_or(EngineError::Range)?;
                    let at = p.saturating_sub(offset) as usize;
                    bytes::put(&mut out, at, src).ok_or(EngineError::Range)?;
                    p = upto;
                }
            }
            pos = e_end.max(pos.saturating_add(1));
        }
        Ok(out)
    }

    /// Where the blocks of regular file `ino` from `offset` (a block boundary) for `len`
    /// bytes (rounded up to whole blocks) are, for a reader that reads them itself and
    /// checks them against their checksums: pieces in file order that cover the range.
    /// Blocks past the end of the file read as zeros.
    pub fn map_read(&mut self, ino: u64, offset: u64, len: u64) -> EngineResult<FVec<ReadPiece>> {
        let inode = self.getattr(ino)?;
        if inode.file_type() != S_IFREG {
            return Err(EngineError::Invalid("read map of a special file"));
        }
        if offset % BLOCK != 0 {
            return Err(EngineError::Invalid("read map from inside a block"));
        }
        let blocks = |at: u64| at.div_ceil(BLOCK).saturating_mul(BLOCK);
        let end = blocks(offset.saturating_add(len));
        let eof = blocks(inode.size);
        let mut out = FVec::new();
        let mut pos = offset;
        while pos < end {
            let limit = end.min(eof);
            let placed = if pos < limit {
                self.extent_at_or_after(ino, pos)?
            } else {
                None
            };
            let Some(p) = placed.filter(|p| p.start < limit) else {
                out.try_push(ReadPiece::zeros(pos, end))?;
                break;
            };
            if p.start > pos {
                out.try_push(ReadPiece::zeros(pos, p.start))?;
                pos = p.start;
                continue;
            }
            let piece_end = blocks(p.end.min(limit)).max(pos.saturating_add(BLOCK));
            match p.extent.kind {
                ExtentKind::Regular => {
                    let logical = p.extent.disk.saturating_add(pos.saturating_sub(p.start));
                    let len = usize::try_from(piece_end.saturating_sub(pos))
                        .map_err(|_| EngineError::Range)?;
                    let mut pieces = self.vol.map_data(logical, len)?;
                    // Taken off the end, so reversed first to keep file order.
                    pieces.reverse();
                    while let Some(piece) = pieces.pop() {
                        let at = pos.saturating_add(piece.from as u64);
                        let len = (piece.csums.len() as u64).saturating_mul(BLOCK);
                        out.try_push(ReadPiece {
                            offset: at,
                            len,
                            source: ReadSource::Device(piece),
                        })?;
                    }
                }
                ExtentKind::Prealloc => out.try_push(ReadPiece::zeros(pos, piece_end))?,
                ExtentKind::Inline => out.try_push(ReadPiece {
                    offset: pos,
                    len: piece_end.saturating_sub(pos),
                    source: ReadSource::Engine,
                })?,
            }
            pos = piece_end;
        }
        Ok(out)
    }

    /// Writes whole blocks into regular file `ino` from `offset` (a block boundary) whose
    /// bytes the caller writes to the devices itself: `sums` holds each block's checksum,
    /// and the file's data ends at `data_end` (within the last block), to which its size
    /// grows. `write` is called with the device and place of each piece of the run, on
    /// every copy, and must write it there (or submit the write: the device's flush, which
    /// a commit and an fsync log record wait for, waits for it); its failure fails the
    /// call and aborts the transaction, like a failed device write.
    pub fn write_placed(
        &mut self,
        ino: u64,
        offset: u64,
        sums: &[u32],
        data_end: u64,
        now: Timespec,
        write: impl FnMut(&mut D, &DataTarget) -> EngineResult<()>,
    ) -> EngineResult<Inode> {
        self.guarded(|fs| {
            let inode = fs.getattr(ino)?;
            if inode.file_type() != S_IFREG {
                return Err(EngineError::Invalid("placed write to a non-regular file"));
            }
            let len = (sums.len() as u64).saturating_mul(BLOCK);
            let end = offset
                .checked_add(len)
                .filter(|&e| e <= MAX_FILE_SIZE)
                .ok_or(EngineError::FileTooBig)?;
            if offset % BLOCK != 0
                || sums.is_empty()
                || data_end > end
                || data_end <= end.saturating_sub(BLOCK)
            {
                return Err(EngineError::Invalid("placed write not of whole blocks"));
            }
            fs.make_room(len)?;
            fs.put_run(inode, offset, sums, data_end, now, write)
        })
    }

    /// Puts whole blocks into `inode` from `offset` (a block boundary), copy-on-write:
    /// the old extents of the range go, new blocks are allocated in extents as long as
    /// can be had, `write` writes each piece of every copy (see [`Self::write_placed`]),
    /// `sums` (one per block) are recorded, and the size grows to `data_end`. Part of a
    /// change.
    fn put_run(
        &mut self,
        mut inode: Inode,
        offset: u64,
        sums: &[u32],
        data_end: u64,
        now: Timespec,
        mut write: impl FnMut(&mut D, &DataTarget) -> EngineResult<()>,
    ) -> EngineResult<Inode> {
        let ino = inode.ino;
        let len = (sums.len() as u64).saturating_mul(BLOCK);
        let end = offset.saturating_add(len);
        let dropped = self.drop_extents(ino, offset, end)?;
        let mut pos = offset;
        while pos < end {
            let want = end.saturating_sub(pos) / BLOCK;
            let owner = self.file_owner(ino, pos);
            let goal = self.data_goal(ino, pos)?;
            let (disk, count) = self
                .vol
                .alloc_data(want.min(MAX_EXTENT_BLOCKS), owner, goal)?;
            let from = usize::try_from(pos.saturating_sub(offset) / BLOCK)
                .map_err(|_| EngineError::Range)?;
            let n = usize::try_from(count).map_err(|_| EngineError::Range)?;
            let piece_sums = sums
                .get(from..from.saturating_add(n))
                .ok_or(EngineError::Range)?;
            let bytes = n.saturating_mul(BLOCK_SIZE as usize);
            for t in self.vol.place_data(disk, bytes)?.iter() {
                let target = DataTarget {
                    from: t
                        .from
                        .saturating_add(from.saturating_mul(BLOCK_SIZE as usize)),
                    ..*t
                };
                let dev = self.vol.dev_mut(t.devid).ok_or(EngineError::Io)?;
                write(dev, &target)?;
            }
            self.vol.data_written(disk, piece_sums)?;
            let e = Extent {
                kind: ExtentKind::Regular,
                disk,
                len: count.saturating_mul(BLOCK),
            };
            self.vol.insert(
                self.tree,
                Key::new(ino, kind::EXTENT_DATA, pos),
                &e.encode(),
            )?;
            pos = pos.saturating_add(e.len);
        }
        inode.bytes = count_down(inode.bytes, dropped, ino, "inode bytes below its extents")?
            .saturating_add(len);
        inode.size = inode.size.max(data_end);
        inode.touch(now);
        self.put_inode(&inode)?;
        Ok(inode)
    }

    /// Writes `data` into the extents of `inode` (a file, or a new symlink's target).
    fn write_range(
        &mut self,
        inode: Inode,
        offset: u64,
        data: &[u8],
        now: Timespec,
    ) -> EngineResult<Inode> {
        if data.is_empty() {
            return Ok(inode);
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or(EngineError::FileTooBig)?;
        let first = offset & !(BLOCK - 1);
        let last = end.div_ceil(BLOCK).saturating_mul(BLOCK);
        let span =
            usize::try_from(last.saturating_sub(first)).map_err(|_| EngineError::FileTooBig)?;
        // Whole blocks: the old bytes around the new ones (read-modify-write at the edges).
        let mut buf = mem::zeroed_bytes(span)?;
        for edge in [first, last.saturating_sub(BLOCK)] {
            if edge < inode.size && (edge < offset || edge.saturating_add(BLOCK) > end) {
                let old = self.read_range(&inode, edge, BLOCK_SIZE as usize)?;
                let at = edge.saturating_sub(first) as usize;
                // Fits: `buf` spans the whole blocks from `first` to `last`.
                bytes::put(&mut buf, at, &old).ok_or(EngineError::Range)?;
            }
        }
        let at = offset.saturating_sub(first) as usize;
        bytes::put(&mut buf, at, data).ok_or(EngineError::Range)?;
        let mut sums = FVec::try_with_capacity(span.checked_div(BLOCK_SIZE as usize).unwrap_or(0))?;
        for block in buf.chunks(BLOCK_SIZE as usize) {
            sums.try_push(crc32c::checksum(block))?;
        }
        self.put_run(inode, first, &sums, end, now, |dev, t| {
            let piece = buf
                .get(t.from..t.from.saturating_add(t.len))
                .ok_or(EngineError::Range)?;
            dev.write(t.physical, piece)
        })
    }

    /// The extents of `ino` that meet `[start, end)`, in file order: (file offset, extent).
    /// At most `max` of them.
    pub fn extents(
        &mut self,
        ino: u64,
        start: u64,
        end: u64,
        max: usize,
    ) -> EngineResult<FVec<(u64, Extent)>> {
        self.getattr(ino)?;
        let mut out = FVec::new();
        let mut pos = start;
        while pos < end && out.len() < max {
            let Some(p) = self.extent_at_or_after(ino, pos)? else {
                break;
            };
            if p.start >= end {
                break;
            }
            out.try_push((p.start, p.extent))?;
            pos = p.end.max(pos.saturating_add(1));
        }
        Ok(out)
    }

    /// How many of the `count` blocks of `ino` from block `first` have data or preallocated
    /// space (an inline extent counts for the block it is in): what `st_blocks` already
    /// counts of a range that the page cache holds dirty.
    pub fn mapped_blocks(&mut self, ino: u64, first: u64, count: u64) -> EngineResult<u64> {
        let mut mapped = 0u64;
        self.for_each_mapped_run(ino, first, count, |from, to| {
            mapped = to.saturating_sub(from).saturating_add(mapped);
            Ok(true)
        })?;
        Ok(mapped)
    }

    /// The runs of blocks of `ino` in `[first, first + count)` that hold neither data nor
    /// preallocated space, in order, as (first block, block count); at most `max` of them.
    /// Where the page cache holds such blocks dirty, FIEMAP reports delayed allocation.
    pub fn unmapped_runs(
        &mut self,
        ino: u64,
        first: u64,
        count: u64,
        max: usize,
    ) -> EngineResult<FVec<(u64, u64)>> {
        let end = first.checked_add(count).ok_or(EngineError::Range)?;
        let mut runs = FVec::new();
        if max == 0 {
            return Ok(runs);
        }
        let mut hole = first;
        let push = |runs: &mut FVec<(u64, u64)>, from: u64, to: u64| -> EngineResult<bool> {
            if from < to {
                runs.try_push((from, to.saturating_sub(from)))?;
            }
            Ok(runs.len() < max)
        };
        let mut more = true;
        self.for_each_mapped_run(ino, first, count, |from, to| {
            more = push(&mut runs, hole, from)?;
            hole = hole.max(to);
            Ok(more)
        })?;
        if more {
            push(&mut runs, hole, end)?;
        }
        Ok(runs)
    }

    /// Calls `f(from, to)` for each run of blocks `[from, to)` of `ino` within
    /// `[first, first + count)` that has data or preallocated space, in order, until `f`
    /// returns `false`.
    fn for_each_mapped_run(
        &mut self,
        ino: u64,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, u64) -> EngineResult<bool>,
    ) -> EngineResult<()> {
        let start = first.checked_mul(BLOCK).ok_or(EngineError::Range)?;
        let end = first
            .checked_add(count)
            .and_then(|b| b.checked_mul(BLOCK))
            .ok_or(EngineError::Range)?;
        let mut pos = start;
        while pos < end {
            let Some(p) = self.extent_at_or_after(ino, pos)? else {
                break;
            };
            if p.start >= end {
                break;
            }
            let from = p.start.max(pos) / BLOCK;
            let to = p.end.min(end).div_ceil(BLOCK);
            if !f(from, to)? {
                break;
            }
            // Past `pos`: the extent ends after it.
            pos = to.saturating_mul(BLOCK).max(pos.saturating_add(BLOCK));
        }
        Ok(())
    }

    /// The tree the files and directories are in.
    pub fn tree(&self) -> Tree {
        self.tree
    }

    /// The owner of the reference the block at byte `offset` of file `ino` holds.
    fn file_owner(&self, ino: u64, offset: u64) -> RefOwner {
        RefOwner::File {
            tree: self.tree,
            ino,
            offset,
        }
    }

    /// The filesystem label.
    pub fn label(&self) -> &[u8] {
        self.vol.label()
    }

    /// Sets the filesystem label (at most 255 bytes, no NUL), durable at the next commit.
    pub fn set_label(&mut self, label: &[u8]) -> EngineResult<()> {
        self.guarded(|fs| fs.vol.set_label(label))
    }

    /// Whether changes wait for a commit.
    pub fn needs_commit(&self) -> bool {
        self.vol.needs_commit()
    }

    /// Filesystem statistics.
    pub fn statfs(&mut self) -> StatFs {
        let copies = self
            .vol
            .chunks()
            .iter()
            .rev()
            .find(|c| c.kind == super::chunk::Kind::Data)
            .map_or(1, |c| c.profile.copies() as u64);
        let total = self
            .vol
            .superblock()
            .total_bytes
            .checked_div(copies)
            .unwrap_or(0);
        StatFs {
            block_size: BLOCK_SIZE,
            total_bytes: total,
            used_bytes: self
                .vol
                .used_raw_bytes()
                .saturating_sub(self.vol.log_area_raw_bytes())
                .checked_div(copies)
                .unwrap_or(0)
                .min(total),
            free_bytes: self.vol.data_free_bytes().min(total),
            inodes: self.next_ino.saturating_sub(1),
        }
    }
}

/// The value of `len` bytes that inode `ino` of `tree` spilled under `slot` of `hash`,
/// from its pieces: each but the last of [`inode::XATTR_SPILL_PART`] bytes, none missing.
pub(super) fn read_xattr_spill<D: BlockDev>(
    vol: &mut Volume<D>,
    tree: Tree,
    ino: u64,
    hash: u64,
    slot: u16,
    len: u32,
) -> EngineResult<FVec<u8>> {
    let corrupt = EngineError::Corrupt {
        block: ino,
        reason: "spilled extended attribute value with missing or wrong pieces",
    };
    let mut value = FVec::try_with_capacity(len as usize)?;
    for part in 0..inode::xattr_spill_parts(len) {
        let piece = vol
            .lookup(tree, &inode::xattr_spill_key(ino, hash, slot, part))?
            .ok_or(corrupt)?;
        let want = (len as usize)
            .saturating_sub(value.len())
            .min(inode::XATTR_SPILL_PART);
        if piece.len() != want {
            return Err(corrupt);
        }
        value.try_extend_from_slice(&piece)?;
    }
    Ok(value)
}

/// Whether an extended attribute can be stored: a name of 1 to 255 bytes without NUL, and
/// a value of at most `XATTR_SIZE_MAX` bytes (else ENOSPC, as on ext4 and btrfs).
fn check_xattr(name: &[u8], value: &[u8]) -> EngineResult<()> {
    if name.is_empty() || name.contains(&0) {
        return Err(EngineError::Invalid("invalid attribute name"));
    }
    if name.len() > inode::NAME_MAX {
        return Err(EngineError::NameTooLong);
    }
    if value.len() > inode::XATTR_VALUE_MAX {
        return Err(EngineError::NoSpace);
    }
    Ok(())
}
