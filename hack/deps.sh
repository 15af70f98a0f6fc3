#!/usr/bin/env bash
# Installs the packages Ballast needs to run pods: containerd (with ctr), runc
# and the CNI plugins; and for the tests: iproute2 (network cleanup), etcd,
# kubectl and systemd-analyze. BALLAST_NO_TEST_DEPS=1 skips the test-only ones.
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v ctr >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
command -v ip >/dev/null || need+=(iproute2)
# etcd (3.4, Debian's) for the tests of an external etcd cluster.
[ -n "${BALLAST_NO_TEST_DEPS:-}" ] || command -v etcd >/dev/null || need+=(etcd-server)
# kubectl: the tests drive the API with the real kubectl (1.32 is preinstalled
# on these machines; Debian's kubernetes-client is an old fallback).
[ -n "${BALLAST_NO_TEST_DEPS:-}" ] || command -v kubectl >/dev/null || need+=(kubernetes-client)
# systemd-analyze checks the package's units (PID 1 need not be systemd).
[ -n "${BALLAST_NO_TEST_DEPS:-}" ] || command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages: ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q "${need[@]}"
fi
