// SPDX-License-Identifier: GPL-2.0

//! Super blocks: the one `fill_super` sets up, and live ones the operations are called on.

use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use kernel::error::{code::*, from_result, Result, VTABLE_DEFAULT_ERROR};
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::{Arc, ArcBorrow};
use kernel::types::{ForeignOwnable, Opaque};

use super::bindings;
use super::buffer::BufferHead;
use super::dentry::SeqFile;
use super::export::{ExportOperations, ExportTable};
use super::fs_type::FileSystem;
use super::inode::{Inode, InodeRef};
use super::xattr::XattrHandlers;

/// `SB_RDONLY` (`BIT(0)` in C, which bindgen cannot evaluate).
const SB_RDONLY: usize = 1;
/// `SB_POSIXACL` (`BIT(16)`): the VFS checks POSIX ACLs and leaves the umask to the
/// filesystem's `posix_acl_create`.
const SB_POSIXACL: usize = 1 << 16;

/// A live super block of filesystem type `T`.
///
/// # Invariants
///
/// A super block of filesystem type `T`, alive while the value is borrowed, whose
/// `s_fs_info` is NULL or an `Arc<T::Data>` stored by [`NewSuperBlock::set_info`].
/// Only handed out by the VFS callbacks of this layer, for super blocks of `T`'s type.
#[repr(transparent)]
pub(crate) struct SuperBlock<T: FileSystem>(Opaque<bindings::super_block>, PhantomData<T>);

impl<T: FileSystem> SuperBlock<T> {
    /// Wraps a super block pointer passed by the VFS.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a super block of filesystem type `T` that stays alive for `'a`,
    /// whose `s_fs_info` is NULL or was stored by [`NewSuperBlock::set_info`] of `T`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `SuperBlock` is a transparent wrapper (the marker takes no room);
        // validity for `'a`, and the type, are the caller's duty.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// The device name the kernel uses in its messages (`s_id`, e.g. "vda").
    pub(crate) fn id(&self) -> &CStr {
        // SAFETY: `s_id` is a NUL-terminated array inside the live super block; the helper
        // only returns its address.
        let ptr = unsafe { bindings::ferrofs_sb_id(self.as_ptr()) };
        // SAFETY: `s_id` is always NUL-terminated and lives as long as the super block.
        unsafe { CStr::from_char_ptr(ptr) }
    }

    /// Whether the super block is read-only now.
    pub(crate) fn is_read_only(&self) -> bool {
        // SAFETY: reading `s_flags` of a live super block; a racing remount changes it
        // under `s_umount`, which callers that care hold.
        let flags = unsafe { (*self.as_ptr()).s_flags };
        flags & SB_RDONLY != 0
    }

    /// The filesystem's data, set up by `fill_super`; `EINVAL` before it is.
    pub(crate) fn info(&self) -> Result<ArcBorrow<'_, T::Data>> {
        // SAFETY: reading a field of a live super block; `s_fs_info` is set once in
        // `fill_super` before any operation can run, and cleared only in `kill_sb`.
        let ptr = unsafe { (*self.as_ptr()).s_fs_info };
        if ptr.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: a non-NULL `s_fs_info` is an `Arc<T::Data>` from `into_foreign` in
        // `set_info` (type invariant), only given back in `take_info`, after the VFS
        // stopped calling operations.
        Ok(unsafe { <Arc<T::Data> as ForeignOwnable>::borrow(ptr) })
    }

    /// Writes back every dirty inode and commits (`sync_filesystem`); the caller holds
    /// `s_umount`.
    pub(crate) fn sync(&self) -> Result {
        // SAFETY: the super block is live and the caller holds `s_umount`.
        let ret = unsafe { bindings::sync_filesystem(self.as_ptr()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Writes back every dirty inode and commits, as `syncfs` does: takes `s_umount`
    /// itself, so the caller must not hold it (an operation on an open file of the
    /// filesystem, such as an ioctl).
    pub(crate) fn sync_unlocked(&self) -> Result {
        // SAFETY: the super block is live (invariant); the helper takes and releases
        // `s_umount` around `sync_filesystem`.
        let ret = unsafe { bindings::ferrofs_syncfs(self.as_ptr()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Takes back the super block's reference to the filesystem's data, in `kill_sb`.
    ///
    /// # Safety
    ///
    /// No operation of the super block may run any more, and no borrow from
    /// [`Self::info`] may be alive.
    pub(crate) unsafe fn take_info(&self) -> Option<Arc<T::Data>> {
        let sb = self.as_ptr();
        // SAFETY: exclusive by the caller's promise.
        let ptr = unsafe { core::mem::replace(&mut (*sb).s_fs_info, core::ptr::null_mut()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: `ptr` is an `Arc<T::Data>` from `into_foreign` (see `info`), given back
        // once: the slot is NULL now.
        Some(unsafe { <Arc<T::Data> as ForeignOwnable>::from_foreign(ptr) })
    }
}

/// A super block of a block device that `fill_super` of `T` is initialising.
///
/// # Invariants
///
/// A new super block of filesystem type `T`, exclusively ours: only handed out by
/// [`super::fs_type`] while the VFS holds `s_umount` for it and nothing else can see it
/// yet.
pub(crate) struct NewSuperBlock<'a, T: FileSystem> {
    sb: &'a SuperBlock<T>,
}

impl<T: FileSystem> Deref for NewSuperBlock<'_, T> {
    type Target = SuperBlock<T>;

    fn deref(&self) -> &SuperBlock<T> {
        self.sb
    }
}

impl<'a, T: FileSystem> NewSuperBlock<'a, T> {
    /// Wraps the super block passed to `fill_super`.
    ///
    /// # Safety
    ///
    /// `sb` must be a new, block-device backed super block of filesystem type `T` that is
    /// exclusively the caller's for the lifetime `'a` (the VFS guarantees this inside
    /// `fill_super`).
    pub(crate) unsafe fn from_raw(sb: NonNull<bindings::super_block>) -> Self {
        // SAFETY: validity for `'a` and the type are the caller's obligation; `s_fs_info`
        // of a new super block is NULL.
        let sb = unsafe { SuperBlock::from_raw(sb.as_ptr()) };
        // INVARIANT: new, of `T`'s type and ours, by the caller's promise.
        Self { sb }
    }

    /// Sets the block size used for [`Self::read_block`]; fails if the device cannot do it.
    pub(crate) fn set_block_size(&mut self, size: u32) -> Result {
        let size = i32::try_from(size).map_err(|_| EINVAL)?;
        // SAFETY: the super block is a valid block-device super block owned by us.
        let got = unsafe { bindings::sb_set_blocksize(self.as_ptr(), size) };
        if got == size {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// Reads block `nr` (in units of the block size) of the device.
    pub(crate) fn read_block(&self, nr: u64) -> Result<BufferHead> {
        // SAFETY: the super block is valid; `sb_bread` returns NULL on I/O error or a
        // block past the end of the device.
        let bh = unsafe { bindings::ferrofs_sb_bread(self.as_ptr(), nr) };
        let bh = NonNull::new(bh).ok_or(EIO)?;
        // SAFETY: a non-NULL `sb_bread` result is an up-to-date buffer head with one
        // reference that is now ours.
        Ok(unsafe { BufferHead::from_raw(bh) })
    }

    /// Fills in the fields every super block of `T` has: magic, operations `S`, the
    /// extended attribute handlers, limits, time granularity, UUID.
    pub(crate) fn set_params<S: SuperOperations<FileSystem = T>, const N: usize>(
        &mut self,
        magic: u64,
        max_bytes: u64,
        uuid: &[u8; 16],
        xattr_handlers: &'static XattrHandlers<T, N>,
    ) {
        let sb = self.as_ptr();
        // The table is a constant promoted to static memory, the handlers a static; both
        // are `T`'s, as their entry points expect of the super block.
        // SAFETY: the new super block is ours alone (invariant); both outlive it.
        unsafe {
            (*sb).s_magic = magic as usize;
            (*sb).s_op = &SuperTable::<S>::OPS;
            (*sb).s_xattr = xattr_handlers.as_ptr().cast();
            (*sb).s_maxbytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
            (*sb).s_time_gran = 1;
            (*sb).s_time_min = i64::MIN;
            (*sb).s_time_max = i64::MAX;
            (*sb).s_uuid.b = *uuid;
            (*sb).s_uuid_len = 16;
        }
    }

    /// Keeps pages under writeback as they are until it ends (writes and mmap stores to
    /// them wait), for a filesystem that checksums them before their I/O and writes
    /// straight from them.
    pub(crate) fn set_stable_writes(&mut self) {
        // SAFETY: the new super block is ours alone (invariant).
        unsafe { bindings::ferrofs_sb_set_stable_writes(self.as_ptr()) };
    }

    /// Writes each cgroup's dirty data back for it (`SB_I_CGROUPWB`), for a filesystem
    /// whose writeback charges its data bios to the writeback's cgroup
    /// ([`super::blockdev::WriteGroup::new`]) and reports each folio it writes
    /// ([`super::folio::WritebackControl::account`]).
    pub(crate) fn set_cgroup_writeback(&mut self) {
        // SAFETY: the new super block is ours alone (invariant).
        unsafe { bindings::ferrofs_sb_set_cgroup_writeback(self.as_ptr()) };
    }

    /// Gives the super block a backing device of its own instead of its first device's,
    /// with a readahead window sized for its `devices` together (at least 4 MiB);
    /// `EBUSY` if it has one already.
    pub(crate) fn set_private_bdi(&mut self, devices: u32) -> Result {
        // The helper drops the device's backing device (from `get_tree_bdev`) once the new
        // one is in place, keeps it on failure, and refuses a second call (whose release
        // of the first, still registered, would free it in use); `generic_shutdown_super`
        // releases the new one.
        // SAFETY: the new super block is ours alone (invariant).
        let ret = unsafe { bindings::ferrofs_sb_setup_bdi(self.as_ptr(), devices) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Lets the filesystem's inodes be found from file handles (NFS export,
    /// `open_by_handle_at`) through `E`.
    pub(crate) fn set_export_ops<E: ExportOperations<FileSystem = T>>(&mut self) {
        // The table is a constant promoted to static memory, `T`'s as the super block is;
        // the super block names the type as the kernel crate declares it (opaque), the
        // table has its fields.
        let table: *const bindings::export_operations = &ExportTable::<E>::OPS;
        // SAFETY: the new super block is ours alone (invariant); the table outlives it.
        unsafe { (*self.as_ptr()).s_export_op = table.cast() };
    }

    /// Turns POSIX ACLs on: the inode operations' `get_inode_acl` and `set_acl` store them,
    /// and every create applies the directory's default ACL or the umask through
    /// [`super::inode::NewInode::inherit_acls`].
    pub(crate) fn set_posix_acls(&mut self) {
        // SAFETY: the new super block is ours alone (invariant).
        unsafe { (*self.as_ptr()).s_flags |= SB_POSIXACL };
    }

    /// Hands a reference to the filesystem's data to the super block (given back in
    /// `kill_sb`).
    pub(crate) fn set_info(&mut self, info: Arc<T::Data>) {
        // INVARIANT: `s_fs_info` holds an `Arc<T::Data>`, as `SuperBlock<T>` requires.
        // SAFETY: the new super block is ours alone; `s_fs_info` is NULL until here.
        unsafe { (*self.as_ptr()).s_fs_info = info.into_foreign().cast_mut() };
    }

    /// Makes `root` the root directory.
    pub(crate) fn set_root(&mut self, root: InodeRef<T>) -> Result {
        // SAFETY: `d_make_root` consumes the inode reference (also on failure).
        let dentry = unsafe { bindings::d_make_root(root.into_raw()) };
        if dentry.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: the new super block is ours alone.
        unsafe { (*self.as_ptr()).s_root = dentry };
        Ok(())
    }
}

/// What `statfs` reports.
pub(crate) struct StatFs {
    /// The filesystem's magic number.
    pub(crate) magic: u64,
    /// Block size in bytes; the counts below are in blocks.
    pub(crate) block_size: u32,
    /// Size of the filesystem.
    pub(crate) blocks: u64,
    /// Free blocks.
    pub(crate) free: u64,
    /// Free blocks an unprivileged user may use.
    pub(crate) available: u64,
    /// Inodes there may be (0: no fixed number).
    pub(crate) files: u64,
    /// Inodes that may still be made.
    pub(crate) files_free: u64,
    /// Longest name.
    pub(crate) name_len: u32,
    /// Filesystem id.
    pub(crate) fsid: [u32; 2],
}

/// The operations on a filesystem's super blocks (`super_operations`). Each method the
/// implementation leaves out is absent from the table.
#[vtable]
pub(crate) trait SuperOperations {
    /// The filesystem whose super blocks these are.
    type FileSystem: FileSystem;

    /// `put_super`: the super block goes (unmount); the last chance to write.
    fn put_super(_sb: &SuperBlock<Self::FileSystem>) {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `sync_fs`: make everything written so far durable (`wait`), or start to.
    fn sync_fs(_sb: &SuperBlock<Self::FileSystem>, _wait: bool) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `freeze_fs`: bring the filesystem to a consistent state on disk.
    fn freeze_fs(_sb: &SuperBlock<Self::FileSystem>) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `statfs`.
    fn statfs(_sb: &SuperBlock<Self::FileSystem>) -> Result<StatFs> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `show_options`: the mount options for `/proc/mounts`, each with a leading comma.
    fn show_options(_sb: &SuperBlock<Self::FileSystem>, _seq: &mut SeqFile) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `write_inode`: the inode's attributes the VFS changed go to the filesystem.
    fn write_inode(_inode: &Inode<Self::FileSystem>) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `evict_inode`, after the inode's page cache went and unless the inode is bad: an
    /// inode without names is freed.
    fn evict_inode(_inode: &Inode<Self::FileSystem>) {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The `super_operations` table of `T`, and its C entry points.
///
/// Each entry point is called by the VFS, as the table promises it, with a live super
/// block of the table's filesystem, `T::FileSystem` (`sb`, or the one of
/// `dentry`/`inode`: [`NewSuperBlock::set_params`] installs the table only in super
/// blocks of that type) and live arguments; that is the `# Safety` contract of each
/// below.
pub(crate) struct SuperTable<T>(PhantomData<T>);

impl<T: SuperOperations> SuperTable<T> {
    /// The table, for `s_op`.
    pub(crate) const OPS: bindings::super_operations = bindings::super_operations {
        evict_inode: optional!(T::HAS_EVICT_INODE, Self::evict_inode),
        write_inode: optional!(T::HAS_WRITE_INODE, Self::write_inode),
        put_super: optional!(T::HAS_PUT_SUPER, Self::put_super),
        sync_fs: optional!(T::HAS_SYNC_FS, Self::sync_fs),
        freeze_fs: optional!(T::HAS_FREEZE_FS, Self::freeze_fs),
        statfs: optional!(T::HAS_STATFS, Self::statfs),
        show_options: optional!(T::HAS_SHOW_OPTIONS, Self::show_options),
        // SAFETY: an all-zero `super_operations` is valid: every other callback is absent.
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// See [`SuperTable`].
    unsafe extern "C" fn put_super(sb: *mut bindings::super_block) {
        // SAFETY: see [`SuperTable`].
        T::put_super(unsafe { SuperBlock::from_raw(sb) });
    }

    /// # Safety
    ///
    /// See [`SuperTable`].
    unsafe extern "C" fn sync_fs(sb: *mut bindings::super_block, wait: ffi::c_int) -> ffi::c_int {
        // SAFETY: see [`SuperTable`].
        let sb = unsafe { SuperBlock::from_raw(sb) };
        T::sync_fs(sb, wait != 0).map_or_else(|e| e.to_errno(), |()| 0)
    }

    /// # Safety
    ///
    /// See [`SuperTable`].
    unsafe extern "C" fn freeze_fs(sb: *mut bindings::super_block) -> ffi::c_int {
        // SAFETY: see [`SuperTable`].
        let sb = unsafe { SuperBlock::from_raw(sb) };
        T::freeze_fs(sb).map_or_else(|e| e.to_errno(), |()| 0)
    }

    /// # Safety
    ///
    /// See [`SuperTable`]; `buf` is the caller's, ours to fill during the call.
    unsafe extern "C" fn statfs(
        dentry: *mut bindings::dentry,
        buf: *mut kernel::bindings::kstatfs,
    ) -> ffi::c_int {
        // `kernel::bindings` declares `kstatfs` opaquely; the module's bindings have its
        // fields.
        let buf = buf.cast::<bindings::kstatfs>();
        from_result(|| {
            // SAFETY: see [`SuperTable`]: a live dentry's `d_sb` is live.
            let sb = unsafe { SuperBlock::from_raw((*dentry).d_sb) };
            let st = T::statfs(sb)?;
            // SAFETY: see above.
            unsafe {
                (*buf).f_type = st.magic as _;
                (*buf).f_bsize = st.block_size as _;
                (*buf).f_frsize = st.block_size as _;
                (*buf).f_blocks = st.blocks;
                (*buf).f_bfree = st.free;
                (*buf).f_bavail = st.available;
                (*buf).f_files = st.files;
                (*buf).f_ffree = st.files_free;
                (*buf).f_namelen = st.name_len as _;
                (*buf).f_fsid.val = [st.fsid[0] as i32, st.fsid[1] as i32];
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`SuperTable`]; `seq` is the live seq_file of the call.
    unsafe extern "C" fn show_options(
        seq: *mut bindings::seq_file,
        root: *mut bindings::dentry,
    ) -> ffi::c_int {
        from_result(|| {
            // SAFETY: see [`SuperTable`]: the root dentry of a mounted super block.
            let sb = unsafe { SuperBlock::from_raw((*root).d_sb) };
            // SAFETY: see above.
            let mut seq = unsafe { SeqFile::from_raw(seq) }.ok_or(EINVAL)?;
            T::show_options(sb, &mut seq)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`SuperTable`]; the inode is referenced or locked for the call.
    unsafe extern "C" fn write_inode(
        inode: *mut bindings::inode,
        _wbc: *mut bindings::writeback_control,
    ) -> ffi::c_int {
        // SAFETY: see above.
        T::write_inode(unsafe { Inode::from_raw(inode) }).map_or_else(|e| e.to_errno(), |()| 0)
    }

    /// # Safety
    ///
    /// See [`SuperTable`]; the inode is being evicted: live, and ours alone.
    unsafe extern "C" fn evict_inode(inode: *mut bindings::inode) {
        // What the VFS does itself for filesystems without `evict_inode` comes first and
        // last.
        // SAFETY: see above.
        unsafe { bindings::truncate_inode_pages_final(&mut (*inode).i_data) };
        // SAFETY: as above.
        if !unsafe { bindings::is_bad_inode(inode) } {
            // SAFETY: as above.
            T::evict_inode(unsafe { Inode::from_raw(inode) });
        }
        // SAFETY: as above; the page cache is empty now.
        unsafe { bindings::clear_inode(inode) };
    }
}
