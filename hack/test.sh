#!/usr/bin/env bash
# Runs every test: go vet, gofmt, unit tests (with -race) and the end-to-end
# tests, which start their own containerd and need root.
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
unformatted=$(gofmt -l cmd internal hack images test)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" $unformatted >&2
	exit 1
fi
pkgs=$(go list ./... | grep -v -e /test/e2e -e /test/bench)
go test -race -count=1 -timeout 15m $pkgs
go test -count=1 -timeout 30m -p 1 ./test/e2e/...
# Ballast's node against a real kube-apiserver 1.32 (Node,RBAC, NodeRestriction)
# and the real kubectl: test/kube, a module of its own. The control plane is
# built from the Go module proxy on the first run (long) and cached after.
kube_bins=$(hack/kube-binaries.sh)
(cd test/kube && go vet ./... && BALLAST_KUBE_BINARIES="$kube_bins" go test -count=1 -timeout 30m ./...)
