#!/bin/bash
# image/build-image.sh: builds the guest image from the host's kernel and
# modules plus the katavm agent.
#
#   build-image.sh --kernel-release R --agent PATH --out DIR [--force]
#
# Outputs:
#   DIR/vmlinux             ELF kernel extracted from /boot/vmlinuz-R. QEMU
#                           boots it through its PVH note, which skips the
#                           in-guest decompression (the biggest boot cost
#                           under TCG, see docs/platform.md).
#   DIR/katavm-initrd.cpio  uncompressed newc initramfs (uncompressed beats
#                           every compressor under TCG): /init is the agent,
#                           plus its shared libraries and the kernel modules
#                           it loads, listed in load order in
#                           /lib/katavm/modules.early (agent channel: loaded
#                           before the agent says hello) and
#                           /lib/katavm/modules.late (the rest).
#   DIR/.stamp              what the outputs were built from; when it
#                           matches, nothing is rebuilt ("image up to date").
#
# Needs: bash, coreutils, cpio, kmod (modprobe), binutils (strip, optional),
# xz/gzip/zstd/bzip2/lzop/lz4 for whatever the kernel is compressed with.
# Runs unprivileged: device nodes are written into the archive directly.
set -euo pipefail

PROG=${0##*/}
SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")

# The agent-channel modules come first so the agent can say hello before
# anything else is loaded; virtio_mmio is there for the microvm machine type.
EARLY_MODULES=(virtio_pci virtio_mmio virtio_console)
EARLY_OPTIONAL=(virtio_mmio)
LATE_MODULES=(virtiofs 9p 9pnet_virtio virtio_net virtio_blk virtio_mem ext4 vfat overlay
  vmw_vsock_virtio_transport)

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}
warn() { echo "$PROG: warning: $*" >&2; }

usage() {
  echo "usage: $PROG --kernel-release R --agent PATH --out DIR [--force]" >&2
  exit 2
}

release="" agent="" out="" force=0
while [[ $# -gt 0 ]]; do
  case $1 in
  --kernel-release) release=${2:?}; shift 2 ;;
  --agent) agent=${2:?}; shift 2 ;;
  --out) out=${2:?}; shift 2 ;;
  --force) force=1; shift ;;
  -h | --help) usage ;;
  *) echo "$PROG: unknown argument: $1" >&2; usage ;;
  esac
done
[[ -n $release && -n $agent && -n $out ]] || usage

kernel=/boot/vmlinuz-$release
moddir=/lib/modules/$release
[[ -r $kernel ]] || die "kernel $kernel not found or not readable"
[[ -d $moddir ]] || die "modules directory $moddir not found"
[[ -x $agent ]] || die "agent $agent not found or not executable"
for tool in cpio modprobe ldd sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

mkdir -p "$out"
out=$(readlink -f "$out")
vmlinux=$out/vmlinux
initrd=$out/katavm-initrd.cpio
stamp=$out/.stamp

# ---- cache check ----
# The libraries the agent links are part of the key so that a glib update
# on the host also rebuilds the image.
agent_libs() {
  # ldd lines: "name => /path (addr)", "/lib64/ld-linux... (addr)",
  # "linux-vdso.so.1 (addr)" (no file: skipped).
  ldd "$agent" | awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }
    $2 == "=>" && $3 == "not" { print "MISSING:" $1 }'
}

libs=$(agent_libs) || die "ldd $agent failed"
if grep -q '^MISSING:' <<<"$libs"; then
  die "agent needs libraries that are not installed: $(grep '^MISSING:' <<<"$libs" | tr '\n' ' ')"
fi

key_kernel="kernel=$release $(stat -L -c '%s %Y' "$kernel")"
key_script="script=$(sha256sum <"$SCRIPT_PATH" | cut -d' ' -f1)"
key_agent="agent=$(sha256sum <"$agent" | cut -d' ' -f1)"
# shellcheck disable=SC2086 # one path per word on purpose
key_libs="libs=$(stat -L -c '%n %s %Y' $libs | sha256sum | cut -d' ' -f1)"
new_stamp=$(printf '%s\n' "$key_kernel" "$key_script" "$key_agent" "$key_libs")
old_stamp=$(cat "$stamp" 2>/dev/null || true)

print_sizes() {
  local f
  for f in "$vmlinux" "$initrd"; do
    printf '%s: %s bytes (%s)\n' "$f" "$(stat -c %s "$f")" \
      "$(du -h --apparent-size "$f" | cut -f1)"
  done
}

if [[ $force -eq 0 && -s $vmlinux && -s $initrd && $old_stamp == "$new_stamp" ]]; then
  # Refresh the mtimes so make sees outputs newer than their inputs and
  # stops re-running this step.
  touch "$vmlinux" "$initrd"
  echo "image up to date"
  exit 0
fi

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- vmlinux ----
# Same approach as the kernel's scripts/extract-vmlinux: try every offset
# where a compressed-stream magic occurs, keep the first that decompresses
# into an ELF file. Decompressors complain about the trailing bytes after
# the stream; that is expected and ignored.
is_elf() { [[ $(head -c 4 "$1" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; }

try_decomp() { # magic-as-grep-P-regex command...
  local magic=$1 pos
  shift
  command -v "$1" >/dev/null || return 1
  while read -r pos; do
    tail -c +$((pos + 1)) "$kernel" | "$@" >"$work/vmlinux" 2>/dev/null || true
    if [[ -s $work/vmlinux ]] && is_elf "$work/vmlinux"; then
      return 0
    fi
  done < <(LC_ALL=C grep -obUaP "$magic" "$kernel" | cut -d: -f1)
  return 1
}

extract_vmlinux() {
  if is_elf "$kernel"; then
    cp "$kernel" "$work/vmlinux"
    return 0
  fi
  try_decomp '\xfd7zXZ\x00' xz -dc ||
    try_decomp '\x1f\x8b\x08' gzip -dc ||
    try_decomp '\x28\xb5\x2f\xfd' zstd -dc ||
    try_decomp 'BZh' bzip2 -dc ||
    try_decomp '\x89\x4c\x5a' lzop -dc ||
    try_decomp '\x02\x21\x4c\x18' lz4 -dc ||
    try_decomp '\x5d\x00\x00\x00' xz -F lzma -dc
}

old_kernel_key=$(grep '^kernel=' <<<"$old_stamp" || true)
old_script_key=$(grep '^script=' <<<"$old_stamp" || true)
if [[ $force -eq 0 && -s $vmlinux && $old_kernel_key == "$key_kernel" &&
  $old_script_key == "$key_script" ]]; then
  # Only the agent or its libraries changed: the kernel stays as it is.
  reuse_vmlinux=1
else
  reuse_vmlinux=0
  extract_vmlinux || die "no ELF kernel found inside $kernel"
fi

# ---- initramfs tree ----
root=$work/root
mkdir -p "$root"
for d in proc sys dev run tmp mnt lib/katavm; do
  mkdir -p "$root/$d"
done
chmod 1777 "$root/tmp"

# The agent as /init, stripped: the image is copied into guest RAM on every
# boot, so every byte costs.
if command -v strip >/dev/null; then
  strip --strip-unneeded -o "$root/init" "$agent"
else
  cp "$agent" "$root/init"
fi
chmod 0755 "$root/init"

# Libraries at the paths the loader resolves them to on the host; the
# dynamic loader itself at its absolute path (the ELF interpreter).
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  chmod 0755 "$root$lib"
done

# Modules: resolve each wanted module with its dependencies in load order,
# copy it (decompressed: the agent loads plain .ko files) and append it to
# the list once.
declare -A listed=()
resolve_modules() { # listfile optional-names -- names...
  local list=$1 optional=" $2 " name line path rel dst
  shift 3
  for name in "$@"; do
    local deps
    if ! deps=$(modprobe -S "$release" --show-depends "$name" 2>/dev/null); then
      if [[ $optional == *" $name "* ]]; then
        warn "optional module $name not found for $release, skipped"
        continue
      fi
      die "module $name not found for $release"
    fi
    while read -r line; do
      # "builtin NAME" needs nothing; "insmod PATH [options]" needs PATH.
      [[ $line == insmod\ * ]] || continue
      path=$(awk '{ print $2 }' <<<"$line")
      rel=${path#/}
      case $rel in
      *.ko.xz) dst=${rel%.xz} ;;
      *.ko.zst) dst=${rel%.zst} ;;
      *.ko.gz) dst=${rel%.gz} ;;
      *) dst=$rel ;;
      esac
      [[ -z ${listed[$dst]:-} ]] || continue
      listed[$dst]=1
      mkdir -p "$root/$(dirname "$dst")"
      case $rel in
      *.ko.xz) xz -dc "$path" >"$root/$dst" ;;
      *.ko.zst) zstd -qdc "$path" >"$root/$dst" ;;
      *.ko.gz) gzip -dc "$path" >"$root/$dst" ;;
      *) cp "$path" "$root/$dst" ;;
      esac
      chmod 0644 "$root/$dst"
      echo "/$dst" >>"$list"
    done <<<"$deps"
  done
}
early_list=$root/lib/katavm/modules.early
late_list=$root/lib/katavm/modules.late
: >"$early_list"
: >"$late_list"
resolve_modules "$early_list" "${EARLY_OPTIONAL[*]}" -- "${EARLY_MODULES[@]}"
# Late modules are conveniences (virtio-fs or 9p share, NIC, disks, virtio-mem, vsock):
# a kernel that lacks one still gets a working image.
resolve_modules "$late_list" "${LATE_MODULES[*]}" -- "${LATE_MODULES[@]}"
chmod 0644 "$early_list" "$late_list"

# ---- archive ----
# Fixed mtimes and sorted names make the archive reproducible.
epoch=${SOURCE_DATE_EPOCH:-0}
find "$root" -exec touch -h -d "@$epoch" {} +

# newc entry without data (directories, device nodes), so that no mknod and
# hence no root is needed. Fields: magic, ino, mode, uid, gid, nlink, mtime,
# filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check.
newc_entry() { # name mode(octal) rdevmajor rdevminor ino
  local name=$1 mode=$2 major=$3 minor=$4 ino=$5 namesize hdr pad
  namesize=$((${#name} + 1))
  hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    "$ino" "$((8#$mode))" 0 0 1 "$epoch" 0 0 0 "$major" "$minor" "$namesize" 0)
  printf '%s%s\0' "$hdr" "$name"
  # Header (110 bytes) plus name is padded to a multiple of 4.
  pad=$(((4 - (110 + namesize) % 4) % 4))
  head -c "$pad" /dev/zero
}

{
  (cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    cpio -o -H newc --owner=0:0 --reproducible --quiet)
  # A second archive appended after the first: the kernel unpacks
  # concatenated archives in order, so dev/ already exists here. /init
  # needs dev/console at boot, before it mounts devtmpfs, or the kernel
  # gives it no stdin/stdout/stderr.
  newc_entry dev/console 020600 5 1 900001
  newc_entry dev/null 020666 1 3 900002
  newc_entry TRAILER!!! 0 0 0 0
} >"$work/initrd"
# The kernel expects the next archive (or the end) at a 4-byte boundary;
# pad the tail the way cpio does, to 512 bytes.
size=$(stat -c %s "$work/initrd")
head -c $(((512 - size % 512) % 512)) /dev/zero >>"$work/initrd"

# ---- install atomically ----
if [[ $reuse_vmlinux -eq 0 ]]; then
  chmod 0644 "$work/vmlinux"
  mv -f "$work/vmlinux" "$vmlinux"
else
  touch "$vmlinux"
fi
chmod 0644 "$work/initrd"
mv -f "$work/initrd" "$initrd"
printf '%s\n' "$new_stamp" >"$work/stamp"
mv -f "$work/stamp" "$stamp"

print_sizes
echo "modules: $(wc -l <"$early_list") early, $(wc -l <"$late_list") late"
