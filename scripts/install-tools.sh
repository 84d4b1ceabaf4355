#!/usr/bin/env bash
# Builds the tools the tests need from the Go module proxy into a cache directory and
# reuses them when already built. Usage: scripts/install-tools.sh [TOOL...]
# (default: all). Prints the directory holding the binaries.
set -euo pipefail
tools_dir=${RADPIPE_TOOLS_DIR:-$HOME/.cache/radpipe/tools}
mkdir -p "$tools_dir"
scripts_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# name|go package|pinned version (a tag or a pseudo-version the module proxy serves)
#   [|-X ldflags, as the tool's own release build sets them]
# helm: without its release ldflags it reports version "v3.22" and assumes Kubernetes 1.20
# for `helm template` / `helm lint` (its client-go here is v0.37: Kubernetes 1.37).
helm_pkg=helm.sh/helm/v3
catalog=(
  "minio|github.com/minio/minio|v0.0.0-20260212201848-7aac2a2c5b7c"
  "helm|$helm_pkg/cmd/helm|v3.22.0|-X $helm_pkg/internal/version.version=v3.22.0 -X $helm_pkg/internal/version.gitTreeState=clean -X $helm_pkg/pkg/chartutil.k8sVersionMajor=1 -X $helm_pkg/pkg/chartutil.k8sVersionMinor=37 -X $helm_pkg/pkg/lint/rules.k8sVersionMajor=1 -X $helm_pkg/pkg/lint/rules.k8sVersionMinor=37"
)

# The cluster test tier's control plane. These are built inside the wrapper module in
# scripts/kube (its go.mod pins the k8s.io/* staging modules that k8s.io/kubernetes replaces
# with ./staging paths, which `go install pkg@version` refuses). etcd comes from the same
# module graph, at the version Kubernetes itself requires (Debian's 3.4 is too old).
# name|go package|version (must match scripts/kube/go.mod)
kube_version=v1.36.3
kube_catalog=(
  "kube-apiserver|k8s.io/kubernetes/cmd/kube-apiserver|$kube_version"
  "kube-controller-manager|k8s.io/kubernetes/cmd/kube-controller-manager|$kube_version"
  "kubectl|k8s.io/kubernetes/cmd/kubectl|$kube_version"
  "etcd|go.etcd.io/etcd/server/v3|v3.6.8"
)

build() {
  local name=$1 package=$2 version=$3 ldflags=${4:-}
  local dest="$tools_dir/$name-$version"
  if [ -x "$dest/$name" ]; then
    echo "tools: $name $version already built" >&2
  else
    echo "tools: building $name $version from the Go module proxy (first time only)..." >&2
    rm -rf "$dest.partial"; mkdir -p "$dest.partial"
    GOBIN="$dest.partial" GOFLAGS="-trimpath" CGO_ENABLED=0 \
      go install ${ldflags:+-ldflags "-s -w $ldflags"} "$package@$version"
    mv "$dest.partial" "$dest"
  fi
  ln -sfn "$dest/$name" "$tools_dir/$name"
}

# Same cache layout and reuse as build(), but `go build` inside scripts/kube. Memory-hungry:
# nice, two compile jobs at most (the machine is shared), stamped with the release version.
build_kube() {
  local name=$1 package=$2 version=$3
  local dest="$tools_dir/$name-$version"
  if [ -x "$dest/$name" ]; then
    echo "tools: $name $version already built" >&2
  else
    echo "tools: building $name $version in scripts/kube (first time only, minutes)..." >&2
    rm -rf "$dest.partial"; mkdir -p "$dest.partial"
    local minor=${kube_version#v1.}; minor=${minor%%.*}
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
    (cd "$scripts_dir/kube" && GOMAXPROCS=${GOMAXPROCS:-2} CGO_ENABLED=0 GOFLAGS=-mod=mod \
      nice go build -p "${RADPIPE_GO_JOBS:-2}" -trimpath -ldflags "$ldflags" \
      -o "$dest.partial/$name" "$package")
    mv "$dest.partial" "$dest"
  fi
  ln -sfn "$dest/$name" "$tools_dir/$name"
}

wanted=("$@")
for entry in "${catalog[@]}"; do
  IFS='|' read -r name package version ldflags <<<"$entry"
  if [ ${#wanted[@]} -eq 0 ] || printf '%s\n' "${wanted[@]}" | grep -qx "$name"; then
    build "$name" "$package" "$version" "$ldflags"
  fi
done
for entry in "${kube_catalog[@]}"; do
  IFS='|' read -r name package version <<<"$entry"
  if [ ${#wanted[@]} -eq 0 ] || printf '%s\n' "${wanted[@]}" | grep -qx "$name"; then
    build_kube "$name" "$package" "$version"
  fi
done
echo "$tools_dir"
