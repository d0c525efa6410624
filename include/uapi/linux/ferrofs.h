/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ferrofs user API: the single source of truth for the kernel module, ferroctl and the
 * C selftests. Where a generic uAPI exists (FS_IOC_GETFSMAP, FICLONE, FIEMAP,
 * FS_IOC_GETFLAGS), ferrofs implements that one instead of defining its own here.
 */
#ifndef _UAPI_LINUX_FERROFS_H
#define _UAPI_LINUX_FERROFS_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* f_type reported by statfs(2) for a mounted ferrofs ("FERR"). */
#define FERROFS_SUPER_MAGIC	0x46455252

/* ioctl type byte of the ferrofs-specific ioctls; numbers are assigned as they arrive. */
#define FERROFS_IOCTL_MAGIC	0xFA

#endif /* _UAPI_LINUX_FERROFS_H */
