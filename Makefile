# CASP3R build and test entry points. POSIX make; `make test` runs every test.
.POSIX:
.SUFFIXES:

GO = go
BIN = bin
PKG = ./cmd/casp3r

all: build

# Static binary for this machine: a single node. build-cluster adds the
# cluster engine (several nodes serving one domain, NATS embedded): about
# 11 MB more binary and 5 MB more memory, so it is a build of its own.
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/casp3r $(PKG)

build-cluster:
	CGO_ENABLED=0 $(GO) build -tags cluster -o $(BIN)/casp3r-cluster $(PKG)

# Run a server for localhost on the embedded defaults, with its data in
# ./data (created on the first run).
run: build
	test -f data/casp3r.toml || $(BIN)/casp3r init --data data --domain localhost --listen 127.0.0.1
	$(BIN)/casp3r serve --data data

# Raspberry Pi binaries: 64-bit (arm64) and 32-bit (armv7).
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -o $(BIN)/casp3r-linux-arm64 $(PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -o $(BIN)/casp3r-linux-armv7 $(PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags cluster -o $(BIN)/casp3r-cluster-linux-arm64 $(PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -tags cluster -o $(BIN)/casp3r-cluster-linux-armv7 $(PKG)

# Everything: static checks, unit tests, then the interop tier (real clients
# against a real casp3r binary; see test/interop).
test: vet unit interop

vet:
	$(GO) vet ./...
	$(GO) vet -tags cluster ./cmd/...
	$(GO) vet -tags integration ./test/... ./bench/compare/...

unit:
	$(GO) test -race -count=1 ./...
	# allocation counts, which the race detector distorts
	$(GO) test -count=1 -run Allocs ./internal/...

# Set CASP3R_REQUIRE_INTEROP=1 to fail instead of skip when a client
# (slixmpp, go-sendxmpp, node, qemu) is missing.
interop:
	$(GO) test -tags integration -count=1 -timeout 20m -parallel 4 ./test/... ./bench/compare/...

clean:
	rm -rf $(BIN)

.PHONY: all build build-cluster run cross test vet unit interop clean
