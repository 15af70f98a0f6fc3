#!/usr/bin/env bash
# Builds the Kubernetes that test/kube runs Ballast against and test/bench
# (make bench) measures it next to, from the Go module proxy: kube-apiserver,
# kubelet and kubectl from k8s.io/kubernetes and etcd from
# go.etcd.io/etcd/server/v3, at the versions pinned in test/kube/tools/go.mod.
# The binaries are cached in
#   ${KUBE_BINARIES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ballast/kube-<version>}
# and only what is missing there is built (a cold build takes tens of
# minutes of CPU). Prints the directory on stdout; progress goes to
# stderr.
set -euo pipefail
cd "$(dirname "$0")/../test/kube/tools"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

kube=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
dir=${KUBE_BINARIES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ballast/kube-$kube}
# The version Kubernetes' own build stamps (hack/lib/version.sh), so that
# /version and kubectl version say v1.32.N rather than v0.0.0-master.
minor=${kube#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
stamp="kubernetes $kube etcd $etcd $(go env GOVERSION) ldflags $ldflags"
bins=(kube-apiserver kubelet kubectl etcd)

# pkgs maps each binary to the package it is built from.
declare -A pkgs=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[kubelet]=k8s.io/kubernetes/cmd/kubelet
	[kubectl]=k8s.io/kubernetes/cmd/kubectl
	[etcd]=go.etcd.io/etcd/server/v3
)

# missing lists the binaries to build: all of them when the cache was built
# from other versions, else those not there yet.
missing() {
	if [ "$(cat "$dir/VERSION" 2>/dev/null)" != "$stamp" ]; then
		echo "${bins[@]}"
		return
	fi
	for b in "${bins[@]}"; do [ -x "$dir/$b" ] || echo "$b"; done
}

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9 # one build at a time; a second caller waits and then finds them built
todo=($(missing))
if [ ${#todo[@]} -gt 0 ]; then
	echo "kube-binaries: building ${todo[*]} (kubernetes $kube, etcd $etcd) into $dir" >&2
	start=$SECONDS
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	for b in "${todo[@]}"; do
		CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/$b" "${pkgs[$b]}"
	done
	rm -f "$dir/VERSION" # a partial set is never taken for a whole one
	for b in "${todo[@]}"; do mv -f "$tmp/$b" "$dir/$b"; done
	echo "$stamp" >"$dir/VERSION"
	echo "kube-binaries: built in $((SECONDS - start))s" >&2
fi
echo "$dir"
