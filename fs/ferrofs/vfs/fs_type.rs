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
use super::super_block::NewSuperBlock;

/// A block-device filesystem the VFS can mount.
pub(crate) trait FileSystem {
    /// The name given to `mount -t`.
    const NAME: &'static CStr;

    /// Fills in a new super block for a device; an error fails the mount with that errno.
    fn fill_super(sb: &mut NewSuperBlock<'_>) -> Result;
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
        // SAFETY: winning `in_use` makes `fs` ours alone until `Drop` releases it, and it is
        // not registered, so nothing else reads it. A zeroed `file_system_type` is a valid
        // value (NULL pointers, no callbacks, empty lists), completed field by field.
        unsafe {
            fs.write(bindings::file_system_type::default());
            (*fs).name = T::NAME.as_char_ptr();
            (*fs).owner = module.as_ptr();
            (*fs).fs_flags = bindings::FS_REQUIRES_DEV as ffi::c_int;
            (*fs).init_fs_context = Some(Tables::<T>::init_fs_context);
            (*fs).kill_sb = Some(bindings::kill_block_super);
        }
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
        free: None,
        dup: None,
        parse_param: None,
        parse_monolithic: None,
        get_tree: Some(Self::get_tree),
        reconfigure: None,
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
        // SAFETY: the VFS passes a valid context that nothing else uses during this call;
        // `CONTEXT_OPS` is a promoted constant and so lives for `'static`.
        unsafe { (*fc).ops = &Self::CONTEXT_OPS };
        0
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
        _fc: *mut bindings::fs_context,
    ) -> ffi::c_int {
        from_result(|| {
            let sb = NonNull::new(sb).ok_or(EINVAL)?;
            // SAFETY: the super block is new and exclusively ours during `fill_super`.
            let mut sb = unsafe { NewSuperBlock::from_raw(sb) };
            T::fill_super(&mut sb)?;
            Ok(0)
        })
    }
}
