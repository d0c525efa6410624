# Shared settings for the ferrofs scripts. Sourced, never run.
# shellcheck shell=bash

FERROFS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FERROFS_CACHE="${FERROFS_CACHE:-$HOME/.cache/ferrofs}"
FERROFS_VENV="$FERROFS_CACHE/venv"

# The Debian kernel source package and the version we build against. If the archive has
# dropped this exact version, scripts/setup takes the current candidate (and the cache key,
# which includes the version, makes that a fresh build).
FERROFS_KSRC_PKG="linux-source-6.12"
FERROFS_KSRC_PIN="$(cat "$FERROFS_ROOT/scripts/kconfig/kernel-version")"

# Kernel flavour: "" (the default test kernel) or the name of an extra fragment
# scripts/kconfig/NAME.config merged on top (e.g. "kasan").
FERROFS_KERNEL_FLAVOUR="${FERROFS_KERNEL_FLAVOUR:-}"

# Config fragments of the test kernel, in merge order.
ferrofs_kconfig_fragments() {
	echo "$FERROFS_ROOT/scripts/kconfig/ferrofs.config"
	[ -z "$FERROFS_KERNEL_FLAVOUR" ] || echo "$FERROFS_ROOT/scripts/kconfig/$FERROFS_KERNEL_FLAVOUR.config"
}

# Pinned host tools.
FERROFS_BINDGEN_VERSION="0.70.1"
FERROFS_VIRTME_NG_VERSION="1.42"
FERROFS_PJDFSTEST_VERSION="0.2.2"
FERROFS_FSX_VERSION="0.3.2"
FERROFS_DOCUTILS_VERSION="0.23"

export PATH="$HOME/.cargo/bin:$FERROFS_VENV/bin:$PATH"

ferrofs_log() { printf '[ferrofs] %s\n' "$*" >&2; }
ferrofs_die() { printf '[ferrofs] error: %s\n' "$*" >&2; exit 1; }

# The Debian version of the source package currently unpacked (empty if none).
ferrofs_ksrc_version() {
	cat "$FERROFS_CACHE/src/current-version" 2>/dev/null || true
}

# Directory of the unpacked kernel source for a Debian version.
ferrofs_ksrc_dir() {
	local v="${1//[^A-Za-z0-9.+-]/_}"
	printf '%s/src/%s/%s\n' "$FERROFS_CACHE" "$v" "$FERROFS_KSRC_PKG"
}

# Bump when scripts/kernel-build changes how the kernel is configured or built.
FERROFS_KERNEL_RECIPE=1

# Cache key of a kernel build: source version, build recipe, flavour and config fragments,
# and the versions of rustc, bindgen and the C toolchain. Any change gives a new build dir.
ferrofs_kernel_key() {
	{
		ferrofs_ksrc_version
		echo "recipe=$FERROFS_KERNEL_RECIPE base=allnoconfig LLVM=1"
		echo "flavour=$FERROFS_KERNEL_FLAVOUR"
		ferrofs_kconfig_fragments | xargs cat
		rustc --version
		bindgen --version 2>/dev/null
		clang --version | head -n1
	} | sha256sum | cut -c1-16
}

# The cached kernel build directory for the current key.
ferrofs_kdir() {
	printf '%s/kernel/%s\n' "$FERROFS_CACHE" "$(ferrofs_kernel_key)"
}
