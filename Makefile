# Ballast's build, test and benchmark entry points. See README.md.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/ballast-dev/ballast/internal/cli.Version=$(VERSION) -X github.com/ballast-dev/ballast/internal/cli.Commit=$(COMMIT)

.PHONY: build images example deps test lint test-unit test-integration test-e2e test-kube fuzz chaos bench bench-fleet package docs clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ballast ./cmd/ballast

# The example's images, built locally (no registry needed).
images: bin/images/pause.tar bin/images/hello.tar
bin/images/%.tar: images/%/main.go internal/imagebuild/imagebuild.go
	@mkdir -p bin/images
	$(GO) run ./hack/mkimage -program ./images/$* -ref ballast.local/$*:v1 -o $@
bin/images/hello.tar: $(wildcard images/hello/toolbox/*.go)

# Installs what is missing, builds, and runs `ballast node` on examples/manifests.
example:
	hack/example.sh

# Installs what the tests need (containerd, runc, CNI plugins).
deps:
	hack/deps.sh

# Every test (as root): hack/test.sh's stages lint, unit, fuzz,
# integration, e2e, chaos (one minute) and kube, in that order. The targets
# below run one or two of them.
test: deps
	hack/test.sh

# bin/ballast_<version>_amd64.deb: the static binary, the systemd units
# (checked with systemd-analyze verify), the default /etc/ballast/config.yaml
# and the sandbox image; built with nfpm (hack/package.sh).
package: build images
	hack/package.sh $(VERSION) bin/ballast bin/images bin

# Regenerates what comes from the command definitions: the CLI reference
# (docs/cli) and the default configuration file (packaging/config.yaml).
docs:
	$(GO) run ./hack/gendocs -docs docs/cli -config packaging/config.yaml

# No file over 5 MB tracked, gofmt, go vet, staticcheck.
lint:
	hack/test.sh lint

# lint, then the unit tests: they need no root, containerd, etcd or kubectl.
test-unit:
	hack/test.sh lint unit

# Tests that need root and a real containerd, etcd or kubectl.
test-integration: deps
	hack/test.sh integration

# End-to-end tests: the ballast binary on a real containerd, with kubectl.
test-e2e: deps
	hack/test.sh e2e

# The node against a real kube-apiserver 1.32 (built on first use).
test-kube: deps
	hack/test.sh kube

# Every fuzz target for FUZZTIME each (default 5s; make fuzz FUZZTIME=1m).
fuzz:
	hack/test.sh fuzz

# The chaos suite for CHAOS_DURATION (default 30m); CHAOS_SEED=N replays
# the schedule a failure printed. Results: docs/node-agent.md.
CHAOS_DURATION ?= 30m
chaos: deps
	CHAOS_DURATION=$(CHAOS_DURATION) hack/test.sh chaos

# The benchmarks (docs/benchmarks.md). Those side by side with the real
# kubelet and kube-apiserver 1.32 need them: hack/kube-binaries.sh builds
# them from the Go module proxy the first time (about 7 minutes on 2 cores)
# and caches them in ~/.cache/ballast.
bench: deps build
	@echo "bench: the kubelet, kube-apiserver, kubectl and etcd 1.32 for the side-by-side benchmarks (hack/kube-binaries.sh: built on first use, ~7 min, then cached)"
	BALLAST_KUBE_BINARIES=$$(hack/kube-binaries.sh) $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 45m ./test/bench/

# The fleet benchmark (docs/benchmarks.md): a simulated fleet against
# ballast server, two of them, and kube-apiserver 1.32, each on a 3-member
# etcd. Long (about an hour at the default sizes); FLEET_* variables set it.
bench-fleet: deps
	BALLAST_KUBE_BINARIES=$$(hack/kube-binaries.sh) $(GO) test -count=1 -run '^$$' -bench Fleet -benchtime 1x -timeout 6h ./test/fleet/

clean:
	rm -rf bin
