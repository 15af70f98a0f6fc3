// Package kube runs Ballast's node against a real Kubernetes 1.32 control
// plane: etcd and kube-apiserver (with --authorization-mode=Node,RBAC and the
// NodeRestriction admission plugin) built by hack/kube-binaries.sh, and the
// real kubectl; and a real kubelet 1.32 against Ballast's own server
// (kubelet_test.go), kept by its flags and a mount namespace of its own from
// changing anything on the machine. The processes are run by the main
// module's test/realkube, which test/bench shares. It is a module of its own
// (test/kube) so that Kubernetes' pinned versions never mix with the main
// module's; the control plane's own build module is test/kube/tools.
//
// Run it as hack/test.sh does:
//
//	BALLAST_KUBE_BINARIES=$(hack/kube-binaries.sh) \
//	    sh -c 'cd test/kube && go test -count=1 -timeout 30m ./...'
//
// Without BALLAST_KUBE_BINARIES (or without root, containerd, runc and the CNI
// plugins) the tests are skipped, or fail when CI=true.
package kube
