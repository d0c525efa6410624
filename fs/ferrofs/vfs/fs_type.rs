// SPDX-License-Identifier: GPL-2.0

//! Filesystem types: registration with the VFS and the fs_context mount path.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::error::{from_result, to_result, VTABLE_DEFAULT_ERROR};
use kernel::ffi;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::bindings;
use super::super_block::{NewSuperBlock, SuperBlock};

/// `ENOPARAM`: "not a parameter of this filesystem", so the VFS handles it (`source`).
const ENOPARAM: i32 = 519;

/// A block-device filesystem the VFS can mount.
///
/// The wrappers of this layer carry the filesystem type as a parameter (`SuperBlock<T>`,
/// `Inode<T>`, ...), so an object of one filesystem cannot be taken for one of another,
/// and each super block's data is typed: [`Self::Data`]. (`Sized`: the associated items
/// rule out trait objects anyway, and the wrappers hold the type in a `PhantomData`.)
#[vtable]
pub(crate) trait FileSystem: Sized {
    /// The name given to `mount -t`.
    const NAME: &'static CStr;

    /// Whether the filesystem may be mounted with an idmapping (`mount --map-users`,
    /// `FS_ALLOW_IDMAP`). Only if it takes every owner it stores from the inode after
    /// `inode_init_owner` and `setattr_copy`, which apply the mount's idmapping, and passes
    /// each operation's idmapping on to the VFS helpers it calls.
    const ALLOW_IDMAP: bool = false;

    /// What a mounted filesystem keeps, one per super block: handed over by `fill_super`
    /// ([`NewSuperBlock::set_info`]), borrowed by the operations ([`SuperBlock::info`]),
    /// dropped in `kill_sb`. Shared by every thread that calls an operation.
    type Data: Send + Sync + 'static;

    /// Mount options, parsed one parameter at a time before `fill_super`.
    type Options: Default;

    /// Parses one mount parameter. `Ok(false)` means it is not one of the filesystem's
    /// (the VFS then handles it, or refuses it).
    fn parse_param(opts: &mut Self::Options, param: &FsParameter<'_>) -> Result<bool>;

    /// Fills in a new super block for a device; an error fails the mount with that errno.
    fn fill_super(sb: &mut NewSuperBlock<'_, Self>, opts: &Self::Options) -> Result;

    /// Applies a remount (`mount -o remount,...`): the options given, and whether the
    /// filesystem is to be read-only. Called with the super block's `s_umount` held.
    /// Without it, a remount that asks for changes fails.
    fn reconfigure(_sb: &SuperBlock<Self>, _opts: &Self::Options, _read_only: bool) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// A mount parameter (`key` or `key=value`).
pub(crate) struct FsParameter<'a> {
    key: &'a CStr,
    value: Option<&'a CStr>,
}

impl FsParameter<'_> {
    /// The key.
    pub(crate) fn key(&self) -> &CStr {
        self.key
    }

    /// The value, for a parameter given as `key=value`.
    pub(crate) fn value(&self) -> Option<&CStr> {
        self.value
    }
}

/// A mount or remount request being built (`fs_context`), with the options of
/// filesystem `T` in it.
///
/// Only made by the entry points below, for contexts of `T`'s filesystem type, used by
/// the VFS for nothing else during the call.
struct FsContext<'a, T: FileSystem> {
    fc: NonNull<bindings::fs_context>,
    _type: PhantomData<&'a T>,
}

impl<'a, T: FileSystem> FsContext<'a, T> {
    /// Wraps a context passed by the VFS.
    ///
    /// # Safety
    ///
    /// `fc` must be a live context of `T`'s filesystem type, exclusively the caller's for
    /// `'a`.
    unsafe fn from_raw(fc: *mut bindings::fs_context) -> Option<Self> {
        NonNull::new(fc).map(|fc| FsContext {
            fc,
            _type: PhantomData,
        })
    }

    /// The slot of the options (`fs_private`).
    fn private(&mut self) -> &mut *mut ffi::c_void {
        // SAFETY: the context is live and ours (invariant); the helper returns the
        // address of its `fs_private` field.
        unsafe { &mut *bindings::ferrofs_fc_private(self.fc.as_ptr()) }
    }

    /// The options stored by `init_fs_context`.
    fn options(&mut self) -> Option<&mut T::Options> {
        let ptr = (*self.private()).cast::<T::Options>();
        // SAFETY: a non-NULL `fs_private` of a context of ours came from `KBox::into_raw`
        // in `init_fs_context` and is freed only in `free`; the context is ours.
        unsafe { ptr.as_mut() }
    }

    /// Whether the mount or remount asks for a read-only filesystem.
    fn read_only(&self) -> bool {
        // SAFETY: the context is live (invariant).
        unsafe { bindings::ferrofs_fc_read_only(self.fc.as_ptr()) }
    }

    /// The super block a remount is for.
    ///
    /// # Safety
    ///
    /// The context must be a remount's (its `root` set).
    unsafe fn remount_target(&self) -> &'a SuperBlock<T> {
        // SAFETY: a remount context's `root` is a live dentry of the mounted super block,
        // which `s_umount` (held by the VFS) keeps alive; the context is of `T`'s type
        // (invariant), so is the super block.
        unsafe { SuperBlock::from_raw((*(*self.fc.as_ptr()).root).d_sb) }
    }
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
            fs_flags: (bindings::FS_REQUIRES_DEV
                | if T::ALLOW_IDMAP {
                    bindings::FS_ALLOW_IDMAP
                } else {
                    0
                }) as ffi::c_int,
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
///
/// Installed only in the `file_system_type` registered for `T`, so every super block and
/// context they get is of that type: one of `T`'s.
struct Tables<T>(PhantomData<T>);

impl<T: FileSystem> Tables<T> {
    const CONTEXT_OPS: bindings::fs_context_operations = bindings::fs_context_operations {
        free: Some(Self::free),
        dup: None,
        parse_param: Some(Self::parse_param),
        parse_monolithic: None,
        get_tree: Some(Self::get_tree),
        reconfigure: optional!(T::HAS_RECONFIGURE, Self::reconfigure),
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
        // SAFETY: as above; the context is of `T`'s type now.
        let Some(mut ctx) = (unsafe { FsContext::<T>::from_raw(fc) }) else {
            return EINVAL.to_errno();
        };
        // The options are freed by `free`, which the VFS calls for every context it
        // initialised.
        *ctx.private() = KBox::into_raw(opts).cast();
        0
    }

    /// `fs_context_operations::free`.
    ///
    /// # Safety
    ///
    /// Called by the VFS once, when the context goes.
    unsafe extern "C" fn free(fc: *mut bindings::fs_context) {
        // SAFETY: a context of ours, exclusively ours during the call.
        let Some(mut ctx) = (unsafe { FsContext::<T>::from_raw(fc) }) else {
            return;
        };
        let ptr = core::mem::replace(ctx.private(), core::ptr::null_mut());
        if !ptr.is_null() {
            // SAFETY: the pointer came from `KBox::into_raw` in `init_fs_context` and the
            // slot is empty now, so it is freed once.
            drop(unsafe { KBox::from_raw(ptr.cast::<T::Options>()) });
        }
    }

    /// `fs_context_operations::parse_param`.
    ///
    /// # Safety
    ///
    /// Called by the VFS with a valid context of ours and a parameter valid for the call.
    unsafe extern "C" fn parse_param(
        fc: *mut bindings::fs_context,
        param: *mut bindings::fs_parameter,
    ) -> ffi::c_int {
        // SAFETY: see above.
        let Some(mut ctx) = (unsafe { FsContext::<T>::from_raw(fc) }) else {
            return EINVAL.to_errno();
        };
        let Some(opts) = ctx.options() else {
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
        match T::parse_param(opts, &FsParameter { key, value }) {
            Ok(true) => 0,
            Ok(false) => -ENOPARAM,
            Err(err) => err.to_errno(),
        }
    }

    /// `fs_context_operations::reconfigure`.
    ///
    /// # Safety
    ///
    /// Called by the VFS for a remount, with a valid context of ours whose `root` is the
    /// root of a mounted super block of this type, `s_umount` held.
    unsafe extern "C" fn reconfigure(fc: *mut bindings::fs_context) -> ffi::c_int {
        from_result(|| {
            // SAFETY: see above.
            let mut ctx = unsafe { FsContext::<T>::from_raw(fc) }.ok_or(EINVAL)?;
            let read_only = ctx.read_only();
            // SAFETY: a remount's context (see above).
            let sb = unsafe { ctx.remount_target() };
            let opts = ctx.options().ok_or(EINVAL)?;
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
        // `kill_block_super` in three steps, so that the filesystem's state (the engine and
        // every device it holds) goes while the super block's device is still open: shut
        // the super block down (with `put_super`, which drops the engine, if it was
        // mounted), drop the state, release the device.
        // SAFETY: `sb` is a block-device super block of `T` at the end of its life, ours.
        unsafe { bindings::generic_shutdown_super(sb) };
        // SAFETY: the super block stays allocated until this call returns and is ours; it
        // is of the type registered for `T`, so `T`'s.
        let sb_ref = unsafe { SuperBlock::<T>::from_raw(sb) };
        // If `fill_super` failed after handing over the state, `put_super` never ran and
        // this drops the engine too.
        // SAFETY: after `generic_shutdown_super` no operation runs on the super block and
        // no borrow of its state is alive.
        drop(unsafe { sb_ref.take_info() });
        // SAFETY: the rest of `kill_block_super`, once, on the super block shut down above.
        unsafe { bindings::ferrofs_release_sb_bdev(sb) };
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
    /// Called by `get_tree_bdev` with a new super block of the device, locked for us, and
    /// the context of the mount.
    unsafe extern "C" fn fill_super(
        sb: *mut kernel::bindings::super_block,
        fc: *mut bindings::fs_context,
    ) -> ffi::c_int {
        from_result(|| {
            let sb = NonNull::new(sb).ok_or(EINVAL)?;
            // SAFETY: the context is valid during the mount and ours.
            let mut ctx = unsafe { FsContext::<T>::from_raw(fc) }.ok_or(EINVAL)?;
            let opts = ctx.options().ok_or(EINVAL)?;
            // SAFETY: the super block is new and exclusively ours during `fill_super`, and
            // of the type registered for `T`.
            let mut sb = unsafe { NewSuperBlock::<T>::from_raw(sb) };
            T::fill_super(&mut sb, opts)?;
            Ok(0)
        })
    }
}
