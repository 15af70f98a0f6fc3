#!/usr/bin/env bash
# Builds Ballast's .deb with nfpm (packaging/nfpm.yaml), run at a pinned
# version from the Go module proxy, and checks its systemd units with
# systemd-analyze verify when it is installed.
#
#   hack/package.sh VERSION BINARY IMAGES_DIR OUT_DIR
#
# VERSION is the package version (a leading "v" is dropped; a version that
# does not start with a digit, such as a commit, becomes 0.0~VERSION).
# BINARY is the static ballast binary (make build); IMAGES_DIR holds
# pause.tar and hello.tar (make images). It prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
if [ $# -ne 4 ]; then
	echo "usage: $0 VERSION BINARY IMAGES_DIR OUT_DIR" >&2
	exit 2
fi
version=${1#v}
case $version in
[0-9]*) ;;
*) version="0.0~$version" ;;
esac
version=${version//-/\~} # a Debian version's "-" starts the revision
binary=$(realpath "$2")
images=$(realpath "$3")
out=$4
mkdir -p "$out"
if file_out=$(od -An -c -N4 "$binary" 2>/dev/null) && [[ $file_out != *E*L*F* ]]; then
	echo "$binary is not an ELF binary" >&2
	exit 1
fi
for f in pause.tar hello.tar; do
	[ -f "$images/$f" ] || { echo "$images/$f missing: make images" >&2; exit 1; }
done
if command -v systemd-analyze >/dev/null; then
	# The units as installed, beside the system's own units (targets they
	# name) and the binary their ExecStart runs. systemd-analyze exits 0 on
	# a unit it only warns about: any message is a failure.
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	mkdir -p "$root/usr/bin" "$root/lib/systemd"
	cp -a /lib/systemd/system "$root/lib/systemd/"
	cp "$binary" "$root/usr/bin/ballast"
	cp packaging/*.service "$root/lib/systemd/system/"
	if ! msgs=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --root="$root" --man=no \
		"$root/lib/systemd/system/ballast-node.service" "$root/lib/systemd/system/ballast.service" 2>&1) || [ -n "$msgs" ]; then
		echo "systemd-analyze verify: the units are not clean:" >&2
		echo "$msgs" >&2
		exit 1
	fi
else
	echo "systemd-analyze not found (apt-get install systemd): units not verified" >&2
fi
deb="$out/ballast_${version}_amd64.deb"
BALLAST_DEB_VERSION=$version BALLAST_BINARY=$binary BALLAST_IMAGES=$images \
	go run "$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$deb" >&2
echo "$deb"
