// Package bench holds Ballast's node agent benchmark (run it with
// `make bench`): on one private containerd (test/e2e/harness), the time from
// writing manifest files to every pod serving HTTP, against raw CRI calls
// doing the same, for 1 and 20 pods, and the agent's idle CPU and RSS with 50
// pods; the mirror pod and API server benchmarks; and streaming through
// `ballast up` with the real kubectl (exec round trip, port-forward
// throughput); and building a cluster: `ballast init` on a fresh data dir to
// its Node Ready, `ballast join` to the second Node Ready. Side by side with
// the real kubelet and kube-apiserver 1.32 (test/realkube runs them): a
// start order chain and a bad edit, streaming through kube-apiserver, pod
// start. See docs/benchmarks.md for the method and the recorded figures.
package bench
