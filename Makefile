# Every target is what CI runs too (.ci/run calls `make ci`).
.PHONY: help demo test test-rust bench dist dist-check fmt fmt-check lint header check-generated ci cli bench-peers sim

help:            ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

demo:            ## the routing demo on the embedded store (no Redis needed); DEMO_ARGS="--redis URL" for Redis
	cargo run --locked --quiet -p stateful-route --example demo -- $(DEMO_ARGS)

test:            ## every test suite (installs redis-server if missing, starts it on a free port)
	tests/run-all.sh

test-rust:       ## only the Rust core's tests
	STATEFUL_ROUTE_SUITES=rust tests/run-all.sh

cli:             ## the operator CLI and dashboard (target/release/stateful-route)
	cargo build --locked --release -p stateful-route --features cli --bin stateful-route

sim:             ## the fleet simulator in virtual time: PRESET=steady|scale-up|rolling-restart|chaos|big SEED=1 SIM_ARGS=...
	cargo run --locked --release --quiet -p stateful-route --features sim --bin stateful-route-sim -- --preset $(or $(PRESET),steady) --seed $(or $(SEED),1) $(SIM_ARGS)

bench:           ## the core's benchmarks (criterion + Redis throughput); figures go into BENCHMARKS.md
	tests/bench.sh

bench-peers:     ## every row of the peers table (core, Python, Node, Go vs hand-written routers) in one run; JSON in target/
	tests/bench-peers.sh

dist:            ## release artifacts into target/dist/: wheel, sdist, npm tarball, C package, Go library
	tests/dist.sh

dist-check:      ## make dist, then install each artifact with no Rust toolchain on PATH and run a scenario
	tests/dist-check.sh

fmt:             ## format everything
	cargo fmt --all

fmt-check:       ## fail if anything is not formatted
	cargo fmt --all -- --check

lint:            ## clippy with warnings as errors (the whole workspace; the core with its tests and benches)
	cargo clippy --locked --workspace -- -D warnings
	cargo clippy --locked -p stateful-route --all-targets -- -D warnings
	cargo clippy --locked -p stateful-route --all-targets --features cli,sim -- -D warnings

header:          ## regenerate the C header (include/stateful_route.h) with the pinned cbindgen
	bindings/c/check-header.sh --write

check-generated: ## fail if a committed generated file (C header, node/index.d.ts) is stale
	bindings/c/check-header.sh
	node/check-generated.sh

ci: fmt-check lint check-generated test  ## what .ci/run runs
