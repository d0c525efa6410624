// SPDX-License-Identifier: GPL-2.0

//! The ioctls ferrofs answers itself (the VFS answers the generic inode ones, such as
//! `FS_IOC_GETFLAGS` and `FS_IOC_FIEMAP`, before it asks the filesystem). Each checks the
//! caller's privilege and the argument's size, and copies user memory only through
//! `kernel::uaccess`.
//!
//! - `FS_IOC_GETFSLABEL` / `FS_IOC_SETFSLABEL`: the filesystem label, as btrfs, XFS and
//!   ext4 answer them (`xfs_io -c label`, `ferroctl label`).
//! - `FS_IOC_SHUTDOWN`: stops the filesystem as a power cut would, as XFS and ext4 do
//!   (`xfs_io -x -c shutdown`, xfstests' `godown`).

use kernel::ioctl::{_IOR, _IOW};
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

use crate::engine::format::LABEL_MAX;
use crate::vfs::file::{File, IoctlCaller};
use crate::vfs::task::capable_sys_admin;

use super::Ferrofs;

/// Size of the label buffer of the generic label ioctls, NUL included (`FSLABEL_MAX`).
const FSLABEL_MAX: usize = 256;

/// `FS_IOC_GETFSLABEL`: `_IOR(0x94, 49, char[FSLABEL_MAX])`.
const FS_IOC_GETFSLABEL: u32 = _IOR::<[u8; FSLABEL_MAX]>(0x94, 49);
/// `FS_IOC_SETFSLABEL`: `_IOW(0x94, 50, char[FSLABEL_MAX])`.
const FS_IOC_SETFSLABEL: u32 = _IOW::<[u8; FSLABEL_MAX]>(0x94, 50);

/// `FS_IOC_SHUTDOWN`: `_IOR('X', 125, __u32)` (XFS's `XFS_IOC_GOINGDOWN`).
const FS_IOC_SHUTDOWN: u32 = _IOR::<u32>(b'X' as u32, 125);
/// Shutdown flags: make everything durable first (as `syncfs`)...
const FS_SHUTDOWN_FLAGS_DEFAULT: u32 = 0;
/// ...only what the log holds (`fsync`'s durability)...
const FS_SHUTDOWN_FLAGS_LOGFLUSH: u32 = 1;
/// ...or nothing.
const FS_SHUTDOWN_FLAGS_NOLOGFLUSH: u32 = 2;

// A ferrofs label and its NUL fit the generic buffer exactly.
const _: () = assert!(LABEL_MAX + 1 == FSLABEL_MAX);

/// Answers ioctl `cmd` on `file` (both label ioctls are laid out alike for 32-bit
/// callers).
pub(super) fn ioctl(
    file: &File<Ferrofs>,
    cmd: u32,
    arg: usize,
    _caller: IoctlCaller,
) -> Result<i64> {
    match cmd {
        FS_IOC_GETFSLABEL => get_label(file, arg).map(|()| 0),
        FS_IOC_SETFSLABEL => set_label(file, arg).map(|()| 0),
        FS_IOC_SHUTDOWN => shutdown(file, arg).map(|()| 0),
        _ => Err(ENOTTY),
    }
}

/// Copies the label, NUL-padded to `FSLABEL_MAX` bytes, to the user buffer at `arg`.
fn get_label(file: &File<Ferrofs>, arg: usize) -> Result {
    let mut buf = [0u8; FSLABEL_MAX];
    file.inode().super_block().info()?.with_fs(|fs| {
        let label = fs.label();
        if let Some(dst) = buf.get_mut(..label.len()) {
            dst.copy_from_slice(label);
        }
        Ok(())
    })?;
    UserSlice::new(arg, FSLABEL_MAX).writer().write_slice(&buf)
}

/// Sets the label from the user buffer at `arg` (`FSLABEL_MAX` bytes holding a
/// NUL-terminated label) and commits it. Needs `CAP_SYS_ADMIN` and a writable mount.
fn set_label(file: &File<Ferrofs>, arg: usize) -> Result {
    if !capable_sys_admin() {
        return Err(EPERM);
    }
    let mut buf = [0u8; FSLABEL_MAX];
    UserSlice::new(arg, FSLABEL_MAX)
        .reader()
        .read_slice(&mut buf)?;
    let info = file.inode().super_block().info()?;
    let Some(len) = buf.iter().position(|&b| b == 0) else {
        pr_err!(
            "{}: label too long: at most {} bytes\n",
            &*info.id,
            LABEL_MAX
        );
        return Err(EINVAL);
    };
    let label = buf.get(..len).ok_or(EINVAL)?;
    let _write = file.want_write()?;
    info.with_fs(|fs| fs.set_label(label))?;
    info.commit()
}

/// Shuts the filesystem down after making durable what the flags (a `u32` at `arg`) ask
/// for. Needs `CAP_SYS_ADMIN`; unknown flags are `EINVAL`. A failure to make things
/// durable first is reported, and the filesystem is shut down all the same.
fn shutdown(file: &File<Ferrofs>, arg: usize) -> Result {
    if !capable_sys_admin() {
        return Err(EPERM);
    }
    let mut raw = [0u8; 4];
    UserSlice::new(arg, raw.len())
        .reader()
        .read_slice(&mut raw)?;
    let flags = u32::from_ne_bytes(raw);
    let sb = file.inode().super_block();
    let info = sb.info()?;
    if info.is_shut_down() {
        return Ok(());
    }
    let durable = match flags {
        FS_SHUTDOWN_FLAGS_DEFAULT => sb.sync_unlocked(),
        FS_SHUTDOWN_FLAGS_LOGFLUSH => info.fsync(),
        FS_SHUTDOWN_FLAGS_NOLOGFLUSH => Ok(()),
        _ => return Err(EINVAL),
    };
    if let Err(err) = durable {
        pr_err!(
            "{}: shutdown: could not make everything durable first (errno {})\n",
            &*info.id,
            -err.to_errno()
        );
    }
    info.shut_down();
    Ok(())
}
