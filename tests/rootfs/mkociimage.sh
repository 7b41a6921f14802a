#!/bin/bash
# tests/rootfs/mkociimage.sh: writes an OCI image archive (an OCI layout in
# a tar: oci-layout, index.json, blobs/sha256/...) of the busybox rootfs
# that mkrootfs.sh builds, offline, for `ctr image import`.
#
#   mkociimage.sh NAME OUT.tar [CMD_JSON]
#
# NAME e.g. docker.io/library/kvt-busybox:latest; CMD_JSON the image's Cmd
# as a JSON array, ["sh"] by default (a CRI sandbox image needs a command
# that stays up, e.g. ["sleep","2147483647"]).
set -euo pipefail
name=${1:?usage: mkociimage.sh NAME OUT.tar [CMD_JSON]}
out=${2:?usage: mkociimage.sh NAME OUT.tar [CMD_JSON]}
cmd=${3:-'["sh"]'}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/mkrootfs.sh" "$work/rootfs" >/dev/null
mkdir -p "$work/oci/blobs/sha256"
blob() { # FILE -> prints digest hex, moves the file into blobs
  local d
  d=$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$work/oci/blobs/sha256/$d"
  echo "$d"
}
tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -cf "$work/layer.tar" .
diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
lsize=$(stat -c %s "$work/layer.tar")
ldig=$(blob "$work/layer.tar")
cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":$cmd},"rootfs":{"type":"layers","diff_ids":["sha256:$diffid"]}}
JSON
csize=$(stat -c %s "$work/config.json")
cdig=$(blob "$work/config.json")
cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$cdig","size":$csize},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$ldig","size":$lsize}]}
JSON
msize=$(stat -c %s "$work/manifest.json")
mdig=$(blob "$work/manifest.json")
cat >"$work/oci/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$mdig","size":$msize,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"${name##*:}"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
tar -C "$work/oci" -cf "$out" oci-layout index.json blobs
