#!/bin/bash
# tests/rootfs/mkrootfs.sh: builds a tiny container root filesystem from the
# host's statically linked busybox (Debian package busybox-static), for
# tests and examples that need something to run inside a sandbox.
#
#   mkrootfs.sh [--bundle] [--writable] [--busybox PATH] DIR
#
# Without --bundle, DIR becomes the rootfs itself. With --bundle, DIR is an
# OCI bundle: the rootfs goes to DIR/rootfs and a default DIR/config.json is
# written beside it, shaped like the output of `runc spec` (args ["sh"],
# terminal false, read-only root unless --writable, the usual API mounts,
# pid/ipc/uts/mount namespaces and runc's default capabilities), minus the
# network namespace: containers of one sandbox share the VM's network.
#
# busybox is static, so the rootfs needs no libraries; every applet is a
# symlink to /bin/busybox at the path busybox itself lists.
set -euo pipefail

PROG=${0##*/}
usage() {
  echo "usage: $PROG [--bundle] [--writable] [--busybox PATH] DIR" >&2
  exit 2
}

bundle=0 writable=0 busybox=/bin/busybox dir=""
while [[ $# -gt 0 ]]; do
  case $1 in
  --bundle) bundle=1; shift ;;
  --writable) writable=1; shift ;;
  --busybox) busybox=${2:?}; shift 2 ;;
  -h | --help) usage ;;
  -*) echo "$PROG: unknown option: $1" >&2; usage ;;
  *) [[ -z $dir ]] || usage; dir=$1; shift ;;
  esac
done
[[ -n $dir ]] || usage
[[ -x $busybox ]] || {
  echo "$PROG: $busybox not found (apt-get install busybox-static)" >&2
  exit 1
}
# A dynamically linked busybox would need its libraries in the rootfs.
if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
  echo "$PROG: $busybox is not statically linked (use busybox-static)" >&2
  exit 1
fi

if [[ $bundle -eq 1 ]]; then
  root=$dir/rootfs
else
  root=$dir
fi
mkdir -p "$root"

for d in bin sbin usr/bin usr/sbin etc root tmp var/tmp proc sys dev home; do
  mkdir -p "$root/$d"
done
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"

install -m 0755 "$busybox" "$root/bin/busybox"
# "--list-full" prints each applet with its install path (bin/sh,
# usr/bin/head, ...); existing files are left alone so that a rerun is
# harmless.
"$busybox" --list-full | while read -r applet; do
  [[ -n $applet && $applet != bin/busybox ]] || continue
  mkdir -p "$root/$(dirname "$applet")"
  [[ -e $root/$applet || -L $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
: >"$root/etc/hostname"
[[ -e $root/etc/hosts ]] || printf '127.0.0.1\tlocalhost\n' >"$root/etc/hosts"

if [[ $bundle -eq 0 ]]; then
  exit 0
fi

readonly_json=true
[[ $writable -eq 0 ]] || readonly_json=false
# runc's defaults, as `runc spec` writes them (runc 1.1), without the
# network and cgroup namespaces and the cgroup mount.
cat >"$dir/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": [ "sh" ],
    "env": [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "TERM=xterm"
    ],
    "cwd": "/",
    "capabilities": {
      "bounding": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "effective": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "permitted": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "ambient": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ]
    },
    "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": $readonly_json },
  "hostname": "katavm",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": [ "nosuid", "noexec", "newinstance", "ptmxmode=0666",
                   "mode=0620", "gid=5" ] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": [ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" ] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": [ "nosuid", "noexec", "nodev" ] },
    { "destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": [ "nosuid", "noexec", "nodev", "ro" ] }
  ],
  "linux": {
    "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
    "namespaces": [
      { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
      { "type": "mount" }
    ],
    "maskedPaths": [
      "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
      "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
      "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
    ],
    "readonlyPaths": [
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
    ]
  }
}
EOF
