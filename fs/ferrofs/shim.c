// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for static-inline kernel functions called from the Rust side of
 * ferrofs. Prototypes live in shim.h, which bindgen reads too.
 */
#include <linux/buffer_head.h>
#include <linux/fs.h>

#include "shim.h"

struct buffer_head *ferrofs_sb_bread(struct super_block *sb, sector_t block)
{
	return sb_bread(sb, block);
}

void ferrofs_brelse(struct buffer_head *bh)
{
	brelse(bh);
}

const char *ferrofs_sb_id(const struct super_block *sb)
{
	return sb->s_id;
}
