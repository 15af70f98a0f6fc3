#!/usr/bin/env bash
# Builds the Kubernetes control plane that test/kube runs Ballast's node
# against, from the Go module proxy: kube-apiserver and kubectl from
# k8s.io/kubernetes and etcd from go.etcd.io/etcd/server/v3, at the versions
# pinned in test/kube/tools/go.mod. The binaries are cached in
#   ${KUBE_BINARIES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ballast/kube-<version>}
# and the build is skipped when they are already there (a cold build takes
# tens of minutes of CPU). Prints the directory on stdout; progress goes to
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
bins=(kube-apiserver kubectl etcd)

have() {
	[ "$(cat "$dir/VERSION" 2>/dev/null)" = "$stamp" ] || return 1
	for b in "${bins[@]}"; do [ -x "$dir/$b" ] || return 1; done
}

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9 # one build at a time; a second caller waits and then finds them built
if ! have; then
	echo "kube-binaries: building kube-apiserver, kubectl ($kube) and etcd ($etcd) into $dir" >&2
	start=$SECONDS
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kubectl \
		go.etcd.io/etcd/server/v3
	mv "$tmp/server" "$tmp/etcd" # go names the main package of .../server/v3 "server"
	for b in "${bins[@]}"; do mv -f "$tmp/$b" "$dir/$b"; done
	echo "$stamp" >"$dir/VERSION"
	echo "kube-binaries: built in $((SECONDS - start))s" >&2
fi
echo "$dir"
