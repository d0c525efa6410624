// SPDX-License-Identifier: GPL-2.0

//! POSIX ACLs (`system.posix_acl_access`, `system.posix_acl_default`) over the VFS's
//! generic ACL code: the VFS turns the xattr calls into `get_inode_acl` and `set_acl`,
//! checks permissions against the ACLs it caches, and the filesystem stores each ACL as
//! an extended attribute in the xattr form with the ids of the initial namespace, as
//! ext4 and btrfs do.

use core::ptr::NonNull;

use kernel::alloc::flags::GFP_KERNEL;
use kernel::alloc::KVec;
use kernel::error::{to_result, Error};
use kernel::ffi;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::bindings;
use super::dentry::Dentry;
use super::fs_type::FileSystem;
use super::inode::{Idmap, Inode};

/// `ACL_TYPE_ACCESS` and `ACL_TYPE_DEFAULT` (include/uapi/linux/xattr.h values).
const ACL_TYPE_ACCESS: ffi::c_int = 0x8000;
const ACL_TYPE_DEFAULT: ffi::c_int = 0x4000;

/// Which of an inode's two ACLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AclKind {
    /// The access ACL, checked on every access.
    Access,
    /// A directory's default ACL, inherited by what is created in it.
    Default,
}

impl AclKind {
    /// From the VFS's type number.
    pub(crate) fn from_raw(kind: ffi::c_int) -> Option<Self> {
        match kind {
            ACL_TYPE_ACCESS => Some(Self::Access),
            ACL_TYPE_DEFAULT => Some(Self::Default),
            _ => None,
        }
    }

    fn raw(self) -> ffi::c_int {
        match self {
            Self::Access => ACL_TYPE_ACCESS,
            Self::Default => ACL_TYPE_DEFAULT,
        }
    }

    /// The extended attribute it is stored in.
    pub(crate) fn xattr_name(self) -> &'static [u8] {
        match self {
            Self::Access => b"system.posix_acl_access",
            Self::Default => b"system.posix_acl_default",
        }
    }
}

/// A POSIX ACL the VFS holds (`struct posix_acl`), borrowed for a call.
///
/// # Invariants
///
/// A live ACL: referenced for as long as the borrow lasts.
#[repr(transparent)]
pub(crate) struct Acl(Opaque<bindings::posix_acl>);

impl Acl {
    /// # Safety
    ///
    /// `ptr` is a live ACL, referenced for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::posix_acl) -> &'a Self {
        // SAFETY: `Acl` is a transparent wrapper; the caller guarantees the rest.
        unsafe { &*ptr.cast() }
    }

    fn as_ptr(&self) -> *mut bindings::posix_acl {
        self.0.get()
    }

    /// The xattr form, ids of the initial namespace: what is stored on disk.
    pub(crate) fn to_xattr(&self) -> Result<KVec<u8>> {
        // SAFETY: the ACL is live (invariant).
        let size = unsafe { bindings::ferrofs_posix_acl_xattr_size(self.as_ptr()) };
        let mut buf = KVec::from_elem(0u8, size, GFP_KERNEL)?;
        // SAFETY: the ACL is live; `buf` holds `size` writable bytes.
        let len = unsafe {
            bindings::ferrofs_posix_acl_to_xattr(self.as_ptr(), buf.as_mut_ptr().cast(), size)
        };
        to_result(len)?;
        // The form has the size computed above, exactly.
        if usize::try_from(len) != Ok(size) {
            return Err(EINVAL);
        }
        Ok(buf)
    }
}

/// A reference to a POSIX ACL, dropped with the value.
///
/// # Invariants
///
/// Holds one reference to a live ACL.
pub(crate) struct OwnedAcl(NonNull<bindings::posix_acl>);

impl core::ops::Deref for OwnedAcl {
    type Target = Acl;

    fn deref(&self) -> &Acl {
        // SAFETY: the ACL is live while the reference is held (invariant).
        unsafe { Acl::from_raw(self.0.as_ptr()) }
    }
}

impl Drop for OwnedAcl {
    fn drop(&mut self) {
        // SAFETY: the reference is ours (invariant) and given up here.
        unsafe { bindings::ferrofs_posix_acl_release(self.0.as_ptr()) };
    }
}

impl OwnedAcl {
    /// Takes over a reference the kernel returned: NULL is no ACL, an error pointer an
    /// error.
    ///
    /// # Safety
    ///
    /// `ptr` is NULL, an error pointer, or a referenced ACL whose reference is ours.
    pub(crate) unsafe fn from_result(ptr: *mut bindings::posix_acl) -> Result<Option<Self>> {
        // SAFETY: `ferrofs_is_err` only inspects the pointer value.
        if unsafe { bindings::ferrofs_is_err(ptr.cast()) } {
            // SAFETY: as above.
            let err = unsafe { bindings::ferrofs_ptr_err(ptr.cast()) };
            return Err(Error::from_errno(
                i32::try_from(err).unwrap_or(EINVAL.to_errno()),
            ));
        }
        // INVARIANT: non-NULL, it is a referenced ACL that is now ours.
        Ok(NonNull::new(ptr).map(Self))
    }

    /// Decodes an ACL stored on disk (the xattr form).
    pub(crate) fn from_xattr(value: &[u8]) -> Result<Option<Self>> {
        // SAFETY: `value` is readable for its length; the result is NULL (no entries), an
        // error pointer or a new ACL with one reference.
        unsafe {
            Self::from_result(bindings::ferrofs_posix_acl_from_xattr(
                value.as_ptr().cast(),
                value.len(),
            ))
        }
    }

    /// Gives the reference to the caller (the VFS, from `get_inode_acl`).
    pub(crate) fn into_raw(self) -> *mut bindings::posix_acl {
        let ptr = self.0.as_ptr();
        core::mem::forget(self);
        ptr
    }
}

/// The ACLs a new inode gets from its directory (`posix_acl_create`): its mode is
/// narrowed by the directory's default ACL, or by the umask when the directory has none.
pub(crate) struct Inherited {
    /// The access ACL, if the default ACL says more than the mode can.
    pub(crate) access: Option<OwnedAcl>,
    /// For a new directory: the default ACL, passed on.
    pub(crate) default: Option<OwnedAcl>,
}

/// Applies `dir`'s default ACL (or the umask) to the mode of the new inode `inode`.
///
/// # Safety
///
/// `inode` is a new inode, not yet visible to anyone else; `dir` is live.
pub(crate) unsafe fn inherit<T: FileSystem>(
    dir: &Inode<T>,
    inode: *mut bindings::inode,
) -> Result<Inherited> {
    let mut access = core::ptr::null_mut();
    let mut default = core::ptr::null_mut();
    // SAFETY: `dir` is live and `inode` ours (this function's contract), so its mode may
    // be changed in place; the two results are NULL or ACLs whose references are ours.
    let ret = unsafe {
        bindings::posix_acl_create(
            dir.as_ptr(),
            &mut (*inode).i_mode,
            &mut default,
            &mut access,
        )
    };
    to_result(ret)?;
    // SAFETY: as above, once `posix_acl_create` succeeded.
    unsafe {
        Ok(Inherited {
            access: OwnedAcl::from_result(access)?,
            default: OwnedAcl::from_result(default)?,
        })
    }
}

/// The mode setting the access ACL `acl` gives `inode` (`posix_acl_update_mode`: the
/// permission bits from the ACL, set-group-ID dropped where chmod would drop it), and
/// whether the ACL must be stored (not if the mode says it all).
pub(crate) fn mode_for_access_acl<T: FileSystem>(
    idmap: Idmap,
    inode: &Inode<T>,
    acl: &Acl,
) -> Result<(u32, bool)> {
    let mut mode: bindings::umode_t = 0;
    let mut kept = acl.as_ptr();
    // SAFETY: the inode is live and locked by the VFS around `set_acl`; `kept` is a
    // pointer to a live ACL that the call only replaces by NULL.
    let ret = unsafe {
        bindings::posix_acl_update_mode(idmap.as_ptr(), inode.as_ptr(), &mut mode, &mut kept)
    };
    to_result(ret)?;
    Ok((u32::from(mode), !kept.is_null()))
}

/// Updates the VFS's cached ACL of `inode` after a change (`None`: it has none).
pub(crate) fn set_cached<T: FileSystem>(inode: &Inode<T>, kind: AclKind, acl: Option<&Acl>) {
    let acl = acl.map_or(core::ptr::null_mut(), Acl::as_ptr);
    // SAFETY: the inode is live and `acl` NULL ("no ACL") or a live ACL, of which the
    // cache takes a reference of its own.
    unsafe { bindings::set_cached_acl(inode.as_ptr(), kind.raw(), acl) };
}

/// After a chmod of `dentry`'s inode to `mode`: the access ACL follows the new mode
/// (`posix_acl_chmod`, which calls the filesystem's `set_acl`).
pub(crate) fn chmod<T: FileSystem>(idmap: Idmap, dentry: &Dentry<T>, mode: u32) -> Result {
    let mode = bindings::umode_t::try_from(mode).map_err(|_| EINVAL)?;
    // SAFETY: the dentry is live and its inode locked by the VFS around `setattr`.
    to_result(unsafe { bindings::posix_acl_chmod(idmap.as_ptr(), dentry.as_ptr(), mode) })
}
