# The two commands a fresh machine needs: `make demo` and `make test`.
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test lint demo bench fuzz clean

all: build

# -buildvcs=true: stanch version names the commit even where GOFLAGS
# turns VCS stamping off.
build:
	$(GO) build -buildvcs=true -o bin/stanch ./cmd/stanch

# Starts the local PostgreSQL (when this machine has one) so the runner's
# tests run on both stores; without it those tests say why they skip.
test:
	@bash -c 'source .ci/postgres.sh; start_postgres || echo "make test: PostgreSQL unavailable; its tests will be skipped" >&2; \
		exec $(GO) test -race -count=1 ./...'

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

demo:
	$(GO) run ./cmd/stanch demo

# Figures are measured here, never asserted by tests; the table is also
# written to docs/benchmarks.md. Starts the local PostgreSQL (when this
# machine has one) for the PostgreSQL table; without it the table says so.
bench:
	@bash -c 'source .ci/postgres.sh; start_postgres || echo "make bench: PostgreSQL unavailable; its table will say so" >&2; \
		exec $(GO) run ./bench -out docs/benchmarks.md'
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Runs every fuzz target for FUZZTIME each (go test -fuzz takes one target at
# a time).
FUZZTIME ?= 60s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf bin
