// Package realkube runs a real Kubernetes 1.32 next to Ballast, for tests
// (test/kube) and benchmarks (test/bench) alike, without changing anything
// on the machine outside a temp dir: etcd and kube-apiserver on 127.0.0.1
// with a throwaway PKI (StartCluster), and the kubelet (StartKubelet) with
// its root, certificates, logs and volume plugins in a dir of its own, no
// QoS cgroups, no iptables chains, no swap check, and the kernel settings
// and /var/log/containers it insists on kept inside a mount namespace of
// its own; a check after it stops says so if the machine changed anyway.
//
// The binaries are the ones hack/kube-binaries.sh builds from the Go module
// proxy (kubelet, kube-apiserver, kubectl and etcd, pinned by
// test/kube/tools/go.mod) into a cache directory, named by the environment
// variable BALLAST_KUBE_BINARIES. Every process is stopped by its PID when
// the test or benchmark that started it ends.
//
// It is a package of the main module that test/kube (a module of its own)
// imports through its replace directive, so that the one copy of the
// kubelet runner serves both.
package realkube
