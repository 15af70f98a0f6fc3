#!/usr/bin/env bash
# Runs Ballast's tests in stages; with no argument, every stage in order
# (what `make test` and .ci/run do):
#
#   lint         no tracked file over 5 MB, gofmt, go vet, staticcheck
#   unit         go test -race of everything outside test/, as an unprivileged
#                user with containerd, ctr, runc, etcd and kubectl out of PATH
#                and CI=true: a unit test needs none of them (see
#                internal/testutil), and may not skip for want of them
#   integration  tests that need root or a real service: the files tagged
#                `//go:build integration` beside their package, and test/integration
#   e2e          test/e2e: a real containerd, the real ballast binary and kubectl
#   kube         test/kube: the node against a real kube-apiserver 1.32
#
# Every stage but lint and unit needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

# staticcheck, at a release that supports go.mod's Go version, from the Go
# module proxy; installed once into the cache.
STATICCHECK_VERSION=v0.8.2
# The largest file the repository may track.
MAX_FILE_BYTES=$((5 * 1024 * 1024))

cache=${XDG_CACHE_HOME:-$HOME/.cache}/ballast

lint() {
	local big
	big=$(git ls-files -z | xargs -0 -r stat -c '%s %n' -- 2>/dev/null | awk -v max="$MAX_FILE_BYTES" '$1 > max')
	if [ -n "$big" ]; then
		echo "tracked files over $MAX_FILE_BYTES bytes (build outputs and archives belong in bin/ or the cache, not in git):" >&2
		echo "$big" >&2
		return 1
	fi
	local unformatted
	unformatted=$(gofmt -l cmd internal hack images test)
	if [ -n "$unformatted" ]; then
		echo "gofmt needed on:" $unformatted >&2
		return 1
	fi
	go vet ./...
	go vet -tags integration ./...
	local sc=$cache/staticcheck-$STATICCHECK_VERSION/staticcheck
	if [ ! -x "$sc" ]; then
		GOBIN=$(dirname "$sc") go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	fi
	"$sc" -tags integration ./...
	(cd test/kube && go vet ./... && "$sc" ./...)
}

unit() {
	local pkgs path_dir
	pkgs=$(go list ./... | grep -v -e '/test/')
	# PATH without the services, so a unit test that runs one fails.
	path_dir=$(mktemp -d)
	local d f
	for d in ${PATH//:/ }; do
		for f in "$d"/*; do
			[ -e "$f" ] || continue
			case ${f##*/} in containerd* | ctr | runc | etcd* | kubectl) continue ;; esac
			[ -e "$path_dir/${f##*/}" ] || ln -s "$f" "$path_dir/${f##*/}"
		done
	done
	local drop=()
	if [ "$(id -u)" = 0 ]; then
		# A user namespace in which this process is uid and gid 65534
		# (nobody), with no capabilities, mapped to root outside so that
		# files stay reachable (the Go caches stay shared).
		drop=(unshare --user --map-user=65534 --map-group=65534 --)
		if ! "${drop[@]}" true; then
			echo "cannot drop root for the unit tests: unshare --user failed (user namespaces disabled?)" >&2
			return 1
		fi
	fi
	local rc=0
	"${drop[@]}" env PATH="$path_dir" CI=true go test -race -count=1 -timeout 10m $pkgs || rc=$?
	rm -rf "$path_dir"
	return $rc
}

integration() {
	local tagged
	tagged=$(grep -rl --include='*_test.go' '^//go:build integration' cmd internal | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
	go test -race -count=1 -timeout 20m -p 1 -tags integration $tagged ./test/integration/...
}

e2e() {
	go test -count=1 -timeout 30m -p 1 ./test/e2e/...
}

kube() {
	# Ballast's node against a real kube-apiserver 1.32 (Node,RBAC,
	# NodeRestriction) and the real kubectl: test/kube, a module of its
	# own. The control plane is built from the Go module proxy on the first
	# run (long) and cached after.
	local kube_bins
	kube_bins=$(hack/kube-binaries.sh)
	(cd test/kube && BALLAST_KUBE_BINARIES="$kube_bins" go test -count=1 -timeout 30m ./...)
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(lint unit integration e2e kube)
for s in "${stages[@]}"; do
	case $s in
	lint | unit | integration | e2e | kube) ;;
	*)
		echo "unknown stage $s; stages: lint unit integration e2e kube" >&2
		exit 2
		;;
	esac
done
for s in "${stages[@]}"; do
	echo "=== $s" >&2
	"$s"
done
