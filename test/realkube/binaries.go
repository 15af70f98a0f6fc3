package realkube

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// BinariesEnv names the directory of the Kubernetes binaries that
// hack/kube-binaries.sh printed.
const BinariesEnv = "BALLAST_KUBE_BINARIES"

// FindBinaries returns the directory of the Kubernetes binaries, or why
// there is none with each of need (default: kube-apiserver and etcd).
func FindBinaries(need ...string) (string, error) {
	if len(need) == 0 {
		need = []string{"kube-apiserver", "etcd"}
	}
	dir := os.Getenv(BinariesEnv)
	if dir == "" {
		return "", fmt.Errorf("%s is not set: run with %s=$(hack/kube-binaries.sh), as hack/test.sh and make bench do", BinariesEnv, BinariesEnv)
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s: no %s (hack/kube-binaries.sh builds it): %v", BinariesEnv, b, err)
		}
	}
	return dir, nil
}

// Binaries returns the directory of the Kubernetes binaries, or skips tb
// (fails it when CI=true) when FindBinaries finds none.
func Binaries(tb testing.TB, need ...string) string {
	tb.Helper()
	dir, err := FindBinaries(need...)
	why := ""
	if err != nil {
		why = err.Error()
	}
	testutil.Need(tb, why)
	return dir
}
