// SPDX-License-Identifier: GPL-2.0

//! Filesystem types: registration with the VFS and the fs_context mount path.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::error::{from_result, to_result};
use kernel::ffi;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::bindings;
use super::super_block::{NewSuperBlock, SuperBlock};

/// `ENOPARAM`: "not a parameter of this filesystem", so the VFS handles it (`source`).
const ENOPARAM: i32 = 519;

/// A block-device filesystem the VFS can mount.
pub(crate) trait FileSystem {
    /// The name given to `mount -t`.
    const NAME: &'static CStr;

    /// Mount options, parsed one parameter at a time before `fill_super`.
    type Options: Default;

    /// Parses one mount parameter (`key` or `key=value`). `Ok(false)` means it is not one
    /// of the filesystem's (the VFS then handles it, or refuses it).
    fn parse_param(opts: &mut Self::Options, key: &CStr, value: Option<&CStr>) -> Result<bool>;

    /// Fills in a new super block for a device; an error fails the mount with that errno.
    fn fill_super(sb: &mut NewSuperBlock<'_>, opts: &Self::Options) -> Result;

    /// Applies a remount (`mount -o remount,...`): the options given, and whether the
    /// filesystem is to be read-only. Called with the super block's `s_umount` held.
    fn reconfigure(sb: &SuperBlock, opts: &Self::Options, read_only: bool) -> Result;
}

/// Storage for one filesystem type.
///
/// Must be a `static`: lockdep only accepts the lock class keys embedded in
/// `file_system_type` in static memory, and the VFS keeps the address while registered.
pub(crate) struct FsTypeStorage {
    fs: Opaque<bindings::file_system_type>,
    in_use: AtomicBool,
}

// SAFETY: `fs` is written only by `Registration::new` after it won `in_use`, so by one
// thread at a time; afterwards the VFS serialises access to it under its own lock.
unsafe impl Sync for FsTypeStorage {}

impl FsTypeStorage {
    /// Storage for a type not registered yet.
    pub(crate) const fn new() -> Self {
        Self {
            fs: Opaque::uninit(),
            in_use: AtomicBool::new(false),
        }
    }
}

/// A registered filesystem type; dropping it unregisters the type.
pub(crate) struct Registration {
    storage: &'static FsTypeStorage,
}

impl Registration {
    /// Registers filesystem type `T` in `storage`, owned by `module`.
    ///
    /// Fails with `EBUSY` if `storage` already holds a registered type.
    pub(crate) fn new<T: FileSystem>(
        storage: &'static FsTypeStorage,
        module: &'static ThisModule,
    ) -> Result<Self> {
        if storage.in_use.swap(true, Ordering::AcqRel) {
            return Err(EBUSY);
        }
        let fs = storage.fs.get();
        // A zeroed `file_system_type` is a valid value (NULL pointers, no callbacks, empty
        // lists), completed field by field.
        let value = bindings::file_system_type {
            name: T::NAME.as_char_ptr(),
            owner: module.as_ptr(),
            fs_flags: bindings::FS_REQUIRES_DEV as ffi::c_int,
            init_fs_context: Some(Tables::<T>::init_fs_context),
            kill_sb: Some(Tables::<T>::kill_sb),
            ..bindings::file_system_type::default()
        };
        // SAFETY: winning `in_use` makes `fs` ours alone until `Drop` releases it, and it is
        // not registered, so nothing else reads it.
        unsafe { fs.write(value) };
        // SAFETY: `fs` is initialised and static, so its address stays valid for the VFS
        // until `Drop` unregisters it.
        if let Err(err) = to_result(unsafe { bindings::register_filesystem(fs) }) {
            storage.in_use.store(false, Ordering::Release);
            return Err(err);
        }
        Ok(Self { storage })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: the type was registered in `new` (a `Registration` exists only if that
        // succeeded) and has not been unregistered since.
        unsafe { bindings::unregister_filesystem(self.storage.fs.get()) };
        self.storage.in_use.store(false, Ordering::Release);
    }
}

/// The C entry points for filesystem type `T`.
struct Tables<T>(PhantomData<T>);

impl<T: FileSystem> Tables<T> {
    const CONTEXT_OPS: bindings::fs_context_operations = bindings::fs_context_operations {
        free: Some(Self::free),
        dup: None,
        parse_param: Some(Self::parse_param),
        parse_monolithic: None,
        get_tree: Some(Self::get_tree),
        reconfigure: Some(Self::reconfigure),
    };

    /// `file_system_type::init_fs_context`.
    ///
    /// # Safety
    ///
    /// Called by the VFS with a valid, exclusively owned `fs_context`.
    unsafe extern "C" fn init_fs_context(fc: *mut kernel::bindings::fs_context) -> ffi::c_int {
        // `kernel::bindings` only declares `fs_context` opaquely; the module's bindings
        // describe the same C struct with its fields.
        let fc = fc.cast::<bindings::fs_context>();
        let Ok(opts) = KBox::new(T::Options::default(), GFP_KERNEL) else {
            return ENOMEM.to_errno();
        };
        // SAFETY: the VFS passes a valid context that nothing else uses during this call;
        // `CONTEXT_OPS` is a promoted constant and so lives for `'static`.
        unsafe { (*fc).ops = &Self::CONTEXT_OPS };
        // SAFETY: as above; the helper returns the address of the context's `fs_private`.
        // The options are freed by `free`, which the VFS calls for every context it
        // initialised.
        unsafe { *bindings::ferrofs_fc_private(fc) = KBox::into_raw(opts).cast() };
        0
    }

    /// The options stored in a context by `init_fs_context`.
    ///
    /// # Safety
    ///
    /// `fc` must be a valid context of this filesystem type, used by nobody else for `'a`.
    unsafe fn options<'a>(fc: *mut bindings::fs_context) -> Option<&'a mut T::Options> {
        // SAFETY: valid context (caller); `fs_private` holds our options or NULL.
        let ptr = unsafe { *bindings::ferrofs_fc_private(fc) }.cast::<T::Options>();
        // SAFETY: a non-NULL pointer came from `KBox::into_raw` in `init_fs_context` and is
        // only freed in `free`; the context is exclusively the caller's.
        unsafe { ptr.as_mut() }
    }

    /// `fs_context_operations::free`.
    ///
    /// # Safety
    ///
    /// Called by the VFS once, when the context goes.
    unsafe extern "C" fn free(fc: *mut bindings::fs_context) {
        // SAFETY: valid context, ours during the call.
        let slot = unsafe { bindings::ferrofs_fc_private(fc) };
        // SAFETY: `slot` points into the live context.
        let ptr = unsafe { core::mem::replace(&mut *slot, core::ptr::null_mut()) };
        if !ptr.is_null() {
            // SAFETY: the pointer came from `KBox::into_raw` in `init_fs_context`.
            drop(unsafe { KBox::from_raw(ptr.cast::<T::Options>()) });
        }
    }

    /// `fs_context_operations::parse_param`.
    ///
    /// # Safety
    ///
    /// Called by the VFS with a valid context and parameter.
    unsafe extern "C" fn parse_param(
        fc: *mut bindings::fs_context,
        param: *mut bindings::fs_parameter,
    ) -> ffi::c_int {
        // SAFETY: valid context, exclusively ours during the call.
        let Some(opts) = (unsafe { Self::options(fc) }) else {
            return EINVAL.to_errno();
        };
        // SAFETY: the parameter is valid during the call; its key is NUL-terminated.
        let key = unsafe { CStr::from_char_ptr(bindings::ferrofs_param_key(param)) };
        // SAFETY: as above; the value, when it is a string, is NUL-terminated.
        let value = unsafe { bindings::ferrofs_param_string(param) };
        let value = if value.is_null() {
            None
        } else {
            // SAFETY: non-NULL string values are NUL-terminated and live for the call.
            Some(unsafe { CStr::from_char_ptr(value) })
        };
        match T::parse_param(opts, key, value) {
            Ok(true) => 0,
            Ok(false) => -ENOPARAM,
            Err(err) => err.to_errno(),
        }
    }

    /// `fs_context_operations::reconfigure`.
    ///
    /// # Safety
    ///
    /// Called by the VFS for a remount, with a valid context whose `root` is the root of a
    /// mounted super block of this type, `s_umount` held.
    unsafe extern "C" fn reconfigure(fc: *mut bindings::fs_context) -> ffi::c_int {
        from_result(|| {
            // SAFETY: valid context, ours during the call.
            let opts = unsafe { Self::options(fc) }.ok_or(EINVAL)?;
            // SAFETY: as above: `root` is a live dentry of the mounted super block.
            let sb = unsafe { SuperBlock::from_raw((*(*fc).root).d_sb) };
            // SAFETY: as above.
            let read_only = unsafe { bindings::ferrofs_fc_read_only(fc) };
            T::reconfigure(sb, opts, read_only)?;
            Ok(0)
        })
    }

    /// `file_system_type::kill_sb`.
    ///
    /// # Safety
    ///
    /// Called by the VFS once per super block, at the end of its life.
    unsafe extern "C" fn kill_sb(sb: *mut kernel::bindings::super_block) {
        // SAFETY: `sb` is a ferrofs block-device super block.
        unsafe { bindings::kill_block_super(sb) };
        // SAFETY: the super block stays allocated until this call returns and is ours.
        let sb = unsafe { SuperBlock::from_raw(sb) };
        // SAFETY: after `kill_block_super` no operation runs on it any more, so its state
        // can go (when `fill_super` failed, `put_super` never ran and this drops the engine
        // too).
        drop(unsafe { sb.take_info() });
    }

    /// `fs_context_operations::get_tree`: mount a block device.
    ///
    /// # Safety
    ///
    /// Called by the VFS with a valid `fs_context` whose source names the device.
    unsafe extern "C" fn get_tree(fc: *mut bindings::fs_context) -> ffi::c_int {
        // SAFETY: `fc` is valid (caller); `get_tree_bdev` opens the device and calls
        // `fill_super` for a new super block.
        unsafe { bindings::get_tree_bdev(fc, Some(Self::fill_super)) }
    }

    /// Callback of `get_tree_bdev` for a new super block.
    ///
    /// # Safety
    ///
    /// Called by `get_tree_bdev` with a new super block of the device, locked for us.
    unsafe extern "C" fn fill_super(
        sb: *mut kernel::bindings::super_block,
        fc: *mut bindings::fs_context,
    ) -> ffi::c_int {
        from_result(|| {
            let sb = NonNull::new(sb).ok_or(EINVAL)?;
            // SAFETY: the context is valid during the mount and ours.
            let opts = unsafe { Self::options(fc) }.ok_or(EINVAL)?;
            // SAFETY: the super block is new and exclusively ours during `fill_super`.
            let mut sb = unsafe { NewSuperBlock::from_raw(sb) };
            T::fill_super(&mut sb, opts)?;
            Ok(0)
        })
    }
}
