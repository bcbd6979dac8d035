# rollbackd — build, test and demo on a fresh Debian machine as root.
SHELL := /bin/bash
PREFIX ?= /usr/local
SWIFT_FLAGS ?=
# Debian packages the build needs.
BUILD_DEBS := libcurl4-openssl-dev libsystemd-dev pkg-config
# Debian packages the system tests start for real (servers on loopback).
TEST_DEBS := python3
# sampling: a real Prometheus server, openssl for a TLS test certificate.
TEST_DEBS += prometheus openssl
# Executors (issue 5): real nginx and HAProxy, systemctl for the systemd-unit boundary, git for tags and config.
TEST_DEBS += nginx haproxy systemd git
# PyPI packages the tests use as independent checkers.
TEST_PIPS := jsonschema
# sampling: application instances exposing real metrics, and the reference exposition parser.
TEST_PIPS += prometheus-client
# notify: a real systemd-journald (started by the tests) and journalctl; the independent Standard Webhooks verifier.
TEST_DEBS += systemd
TEST_PIPS += standardwebhooks

.PHONY: all deps test-deps build release test demo clean

all: build

## deps: install the Debian packages the build needs, only those missing.
deps:
	@missing=""; for p in $(BUILD_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

## test-deps: the servers and checkers the tests run against.
test-deps: deps
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	@for p in $(TEST_PIPS); do python3 -c "import importlib.metadata as m; m.version('$$p')" 2>/dev/null || \
	  pip install -q --disable-pip-version-check $$p; done

build: deps
	swift build $(SWIFT_FLAGS)

release: deps
	swift build -c release --static-swift-stdlib $(SWIFT_FLAGS)

## test: every test, Core (deterministic) and System (real processes on loopback).
test: test-deps
	swift build --build-tests $(SWIFT_FLAGS)
	swift test --skip-build $(SWIFT_FLAGS)

## demo: for now, validate the shipped table and print it.
demo: build
	.build/debug/rollbackd check thresholds.json

clean:
	rm -rf .build
