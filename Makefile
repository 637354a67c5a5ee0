GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/warren-mesh/warren/cli.Version=$(VERSION) -X github.com/warren-mesh/warren/cli.Commit=$(COMMIT)
STATICCHECK_VERSION := v0.8.2
# grpcnotrace drops grpc's golang.org/x/net/trace: its init registers
# /debug/requests on http.DefaultServeMux and links html/template, whose
# reflective method calls keep every exported method of every type in the
# binary (the Envoy protos' included): 8 MB of the binary and of what an
# agent maps. We never serve DefaultServeMux.
TAGS      := grpcnotrace

.PHONY: all build dev test unit e2e lint generate check-generate bench fuzz packages e2e-long

all: build

# The binary is static (no cgo), as the packages are: Go's own resolver and
# user lookups, no libc mapped into every agent.
build:
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o bin/warren ./cmd/warren

dev: build
	./bin/warren dev

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

generate:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	PATH="$(GOBIN):$$PATH" protoc --proto_path=rpc/pb --go_out=paths=source_relative:rpc/pb --go-grpc_out=paths=source_relative:rpc/pb rpc/pb/warren.proto

# check-generate fails when the committed generated code is stale.
check-generate: generate
	git diff --exit-code -- rpc/pb

test: lint build
	$(GO) test -tags $(TAGS) -race -count=1 -timeout 15m -p 2 ./...

bench: build
	$(GO) run ./bench -warren ./bin/warren

# fuzz runs every fuzz target for a bounded time (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRegistration$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzHandle$$' -fuzztime $(FUZZTIME) ./dns/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRules$$' -fuzztime $(FUZZTIME) ./acl/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAgentRequests$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadConfig$$' -fuzztime $(FUZZTIME) ./config/

# e2e-long runs many randomized fault-injection rounds against a multi-host
# cluster in network namespaces (needs root, iproute2 and nftables) and
# prints a summary table. E2E_ROUNDS sets the round count, E2E_SEED the seed.
E2E_ROUNDS ?= 20
e2e-long:
	WARREN_E2E_ROUNDS=$(E2E_ROUNDS) WARREN_E2E_SEED=$(E2E_SEED) $(GO) test -race -count=1 -timeout 2h -run '^TestRobustLong$$' -v ./test/e2e/

# packages: warren_VERSION_ARCH.deb and warren-VERSION.RPMARCH.rpm for each
# arch in dist/, built by packaging/ with nfpm. The binaries are static PIE
# (no cgo, so arm64 needs no cross compiler) and stripped.
PKG_ARCHES ?= amd64 arm64
packages:
	@set -e; for arch in $(PKG_ARCHES); do \
	  mkdir -p bin/linux_$$arch; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -tags $(TAGS) -trimpath -buildmode=pie \
	    -ldflags "-s -w $(LDFLAGS)" -o bin/linux_$$arch/warren ./cmd/warren; \
	  $(GO) run ./packaging -version "$(VERSION)" -arch $$arch -bin bin/linux_$$arch/warren -out dist; \
	done
