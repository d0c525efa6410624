// SPDX-License-Identifier: GPL-2.0

//! Extended attribute handlers (`xattr_handler`): one per name prefix.

use core::marker::PhantomData;
use core::ptr;

use kernel::error::{from_result, VTABLE_DEFAULT_ERROR};
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStr;

use super::bindings;
use super::fs_type::FileSystem;
use super::inode::Inode;

/// The attributes whose names start with [`Self::PREFIX`].
#[vtable]
pub(crate) trait XattrHandler {
    /// The filesystem whose inodes have them.
    type FileSystem: FileSystem;

    /// The name prefix, such as `user.`.
    const PREFIX: &'static CStr;

    /// The value of the attribute `PREFIX` + `name` into `buf`, or its length for an
    /// empty `buf`.
    fn get(_inode: &Inode<Self::FileSystem>, _name: &CStr, _buf: &mut [u8]) -> Result<usize> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Sets the attribute `PREFIX` + `name` (removes it for `None`); `flags` are the
    /// `XATTR_CREATE` / `XATTR_REPLACE` bits. The inode is locked.
    fn set(
        _inode: &Inode<Self::FileSystem>,
        _name: &CStr,
        _value: Option<&[u8]>,
        _flags: i32,
    ) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The handler of `T`, and its C entry points.
///
/// Each entry point is called by the VFS with this handler, a live inode of a super block
/// of filesystem `T::FileSystem` (locked for `set`: the handler is only in the lists,
/// [`XattrHandlers`], of that filesystem), the NUL-terminated name after the prefix and
/// kernel buffers of the sizes given; that is the `# Safety` contract of each below.
pub(crate) struct HandlerTable<T>(PhantomData<T>);

impl<T: XattrHandler> HandlerTable<T> {
    /// The handler.
    pub(crate) const HANDLER: bindings::xattr_handler = bindings::xattr_handler {
        name: ptr::null(),
        prefix: T::PREFIX.as_char_ptr(),
        flags: 0,
        list: None,
        get: optional!(T::HAS_GET, Self::get),
        set: optional!(T::HAS_SET, Self::set),
    };

    /// # Safety
    ///
    /// See [`HandlerTable`].
    unsafe extern "C" fn get(
        _handler: *const bindings::xattr_handler,
        _dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        name: *const ffi::c_char,
        buffer: *mut ffi::c_void,
        size: usize,
    ) -> ffi::c_int {
        from_result(|| {
            // SAFETY: see [`HandlerTable`].
            let (inode, name) = unsafe { (Inode::from_raw(inode), CStr::from_char_ptr(name)) };
            let buf: &mut [u8] = if buffer.is_null() || size == 0 {
                &mut []
            } else {
                // SAFETY: the VFS passes a kernel buffer of `size` bytes, ours for the call.
                unsafe { core::slice::from_raw_parts_mut(buffer.cast(), size) }
            };
            let len = T::get(inode, name, buf)?;
            ffi::c_int::try_from(len).map_err(|_| ERANGE)
        })
    }

    /// # Safety
    ///
    /// See [`HandlerTable`].
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn set(
        _handler: *const bindings::xattr_handler,
        _idmap: *mut bindings::mnt_idmap,
        _dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        name: *const ffi::c_char,
        value: *const ffi::c_void,
        size: usize,
        flags: ffi::c_int,
    ) -> ffi::c_int {
        from_result(|| {
            // SAFETY: see [`HandlerTable`].
            let (inode, name) = unsafe { (Inode::from_raw(inode), CStr::from_char_ptr(name)) };
            let value = if value.is_null() {
                None
            } else if size == 0 {
                Some(&[][..])
            } else {
                // SAFETY: the VFS passes a kernel copy of the value, `size` bytes.
                Some(unsafe { core::slice::from_raw_parts(value.cast::<u8>(), size) })
            };
            T::set(inode, name, value, flags)?;
            Ok(0)
        })
    }
}

/// A handler of filesystem `T` in static memory, for [`XattrHandlers`].
pub(crate) struct HandlerRef<T: FileSystem>(&'static bindings::xattr_handler, PhantomData<T>);

// Copied whatever `T` is (a derive would ask `T: Copy`).
impl<T: FileSystem> Clone for HandlerRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: FileSystem> Copy for HandlerRef<T> {}

/// The handler of `H`.
pub(crate) const fn handler<H: XattrHandler>() -> HandlerRef<H::FileSystem> {
    HandlerRef(&HandlerTable::<H>::HANDLER, PhantomData)
}

/// The handlers of filesystem `T`, NULL-terminated, for `s_xattr`.
#[repr(C)]
pub(crate) struct XattrHandlers<T: FileSystem, const N: usize> {
    handlers: [*const bindings::xattr_handler; N],
    // `repr(C)` puts it right after the array: the terminator the VFS looks for.
    end: *const bindings::xattr_handler,
    filesystem: PhantomData<T>,
}

// SAFETY: the list is a constant: never written after initialisation, holding only the
// addresses of handlers in static memory, themselves constants.
unsafe impl<T: FileSystem, const N: usize> Sync for XattrHandlers<T, N> {}

impl<T: FileSystem, const N: usize> XattrHandlers<T, N> {
    /// The list of `handlers`.
    pub(crate) const fn new(handlers: [HandlerRef<T>; N]) -> Self {
        let mut list = [ptr::null(); N];
        let mut i = 0;
        while i < N {
            list[i] = handlers[i].0;
            i += 1;
        }
        Self {
            handlers: list,
            end: ptr::null(),
            filesystem: PhantomData,
        }
    }

    /// The list as `s_xattr` takes it.
    pub(crate) fn as_ptr(&'static self) -> *const *const bindings::xattr_handler {
        self.handlers.as_ptr()
    }
}
