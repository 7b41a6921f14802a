#!/bin/sh
# Installs the Debian 12 packages katavm needs to build, run and test.
set -eu
export DEBIAN_FRONTEND=noninteractive
PKGS="build-essential cmake pkg-config git
  libglib2.0-dev libjson-glib-dev libvirt-dev libseccomp-dev check libnl-3-dev libnl-route-3-dev libacl1-dev
  libfuse3-dev libfuse3-3
  qemu-system-x86 qemu-system-common qemu-utils libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  linux-image-amd64 kmod cpio xz-utils zstd binutils busybox-static
  python3 python3-dev python3-pytest python3-setuptools python3-pip iproute2 iputils-ping procps
  e2fsprogs clang-format clang libclang-rt-14-dev passt podman conmon catatonit
  containernetworking-plugins iptables runc docker.io containerd
  protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev golang-github-containerd-containerd-dev
  python3-grpcio python3-grpc-tools
  golang-github-containerd-cgroups-dev golang-github-gogo-protobuf-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -q
  # Installing docker.io, containerd or libvirt must not start the system's
  # daemons: the tests start their own, with private roots and sockets.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing || { [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
fi
