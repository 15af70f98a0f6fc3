# Ballast's build, test and benchmark entry points. See README.md.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/ballast-dev/ballast/internal/cli.Version=$(VERSION)

.PHONY: build images example deps test test-unit test-e2e bench bench-fleet clean

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

# Every test: vet, formatting, unit tests with -race, end-to-end tests against a real containerd.
test: deps
	hack/test.sh

bench: deps build
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/

# The fleet benchmark (docs/benchmarks.md): a simulated fleet against
# ballast server, two of them, and kube-apiserver 1.32, each on a 3-member
# etcd. Long (about an hour at the default sizes); FLEET_* variables set it.
bench-fleet: deps
	BALLAST_KUBE_BINARIES=$$(hack/kube-binaries.sh) $(GO) test -count=1 -run '^$$' -bench Fleet -benchtime 1x -timeout 6h ./test/fleet/

clean:
	rm -rf bin
