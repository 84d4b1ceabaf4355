#!/usr/bin/env bash
# Builds the tools the tests need from the Go module proxy into a cache directory and
# reuses them when already built. Usage: scripts/install-tools.sh [TOOL...]
# (default: all). Prints the directory holding the binaries.
set -euo pipefail
tools_dir=${RADPIPE_TOOLS_DIR:-$HOME/.cache/radpipe/tools}
mkdir -p "$tools_dir"

# name|go package|pinned version (a tag or a pseudo-version the module proxy serves)
catalog=(
  "minio|github.com/minio/minio|v0.0.0-20260212201848-7aac2a2c5b7c"
)

build() {
  local name=$1 package=$2 version=$3
  local dest="$tools_dir/$name-$version"
  if [ -x "$dest/$name" ]; then
    echo "tools: $name $version already built" >&2
  else
    echo "tools: building $name $version from the Go module proxy (first time only)..." >&2
    rm -rf "$dest.partial"; mkdir -p "$dest.partial"
    GOBIN="$dest.partial" GOFLAGS="-trimpath" CGO_ENABLED=0 go install "$package@$version"
    mv "$dest.partial" "$dest"
  fi
  ln -sfn "$dest/$name" "$tools_dir/$name"
}

wanted=("$@")
for entry in "${catalog[@]}"; do
  IFS='|' read -r name package version <<<"$entry"
  if [ ${#wanted[@]} -eq 0 ] || printf '%s\n' "${wanted[@]}" | grep -qx "$name"; then
    build "$name" "$package" "$version"
  fi
done
echo "$tools_dir"
