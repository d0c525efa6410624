# SPDX-License-Identifier: GPL-2.0
#
# ferrofs top-level targets. The kernel module builds out of tree against the cached kernel
# build (scripts/setup makes it; KDIR overrides it).

KDIR ?= $(shell scripts/kernel-dir)
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=1 CONFIG_FERROFS_FS=m

.PHONY: all module tools host-test vm-test test demo clean

all: module tools

module:
	@test -n "$(KDIR)" || { echo "no kernel build: run scripts/setup" >&2; exit 1; }
	+$(KMAKE) modules

tools:
	cd tools && cargo build --release

host-test:
	scripts/test --host-only

vm-test:
	scripts/test --vm-only

test:
	scripts/test

demo:
	scripts/demo

clean:
	+test -z "$(KDIR)" || $(KMAKE) clean
	cd tools && cargo clean
