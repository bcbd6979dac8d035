# rollbackd — build, test and demo on a fresh Debian machine as root.
SHELL := /bin/bash
PREFIX ?= /usr/local
SWIFT_FLAGS ?=
# Debian packages the build needs.
BUILD_DEBS := libcurl4-openssl-dev libssl-dev libsystemd-dev pkg-config
# Debian packages `make deb` needs: debhelper builds the package, lintian checks it.
DEB_DEBS := debhelper dpkg-dev lintian
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
# The shells whose completions `make install` ships, each asked what TAB offers (PackagingTests).
TEST_DEBS += bash zsh fish
# docker-swarm against a real engine: Debian's dockerd, and the static busybox its test images are made of.
TEST_DEBS += docker.io busybox-static
# The man pages rendered with warnings on (PackagingTests).
TEST_DEBS += groff-base man-db
# systemd-analyze (unit checks), debootstrap + systemd-nspawn (the container integration test).
TEST_DEBS += systemd debootstrap systemd-container
# telemetry: a real SVG renderer for the incident charts (IncidentChartTests).
TEST_DEBS += librsvg2-bin
# fleet mode: a real etcd 3.4 cluster on loopback (EtcdClientTests; TestSupport's EtcdCluster; `make demo-fleet`)
# and etcdctl.
FLEET_DEBS := etcd-server etcd-client
TEST_DEBS += $(FLEET_DEBS)

# Installs the Debian packages of the list given that are missing (none installed: nothing is run).
define install-missing
@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
endef

.PHONY: all deps test-deps build release test test-release demo demo-fleet clean fuzz fuzz-build
.PHONY: lint format
.PHONY: install install-files uninstall man deb deb-deps

all: build

## deps: install the Debian packages the build needs, only those missing.
deps:
	$(call install-missing,$(BUILD_DEBS))

## test-deps: the servers and checkers the tests run against.
test-deps: deps
	$(call install-missing,$(TEST_DEBS))
	@for p in $(TEST_PIPS); do python3 -c "import importlib.metadata as m; m.version('$$p')" 2>/dev/null || \
	  pip install -q --disable-pip-version-check $$p; done

# Each build also builds swift-argument-parser's generate-manual next to the binary: tools/manpages.sh runs it
# on the binary to write rollbackd(8).
build: deps
	swift build $(SWIFT_FLAGS)
	swift build --product generate-manual $(SWIFT_FLAGS)

release: deps
	swift build -c release --static-swift-stdlib $(SWIFT_FLAGS)
	swift build -c release --static-swift-stdlib --product generate-manual $(SWIFT_FLAGS)

## test: every test, Core (deterministic) and System (real processes on loopback), then every fuzz target over
## its seed corpus once. It first builds the Debian package twice (make deb, lintian-clean; revisions 1 and 2),
## which the container test installs and upgrades.
test: test-deps deb-deps
	swift build --build-tests $(SWIFT_FLAGS)
	swift build --product generate-manual $(SWIFT_FLAGS)
	$(MAKE) --no-print-directory deb DEB_REVISION=1
	$(MAKE) --no-print-directory deb DEB_REVISION=2
	swift test --skip-build $(SWIFT_FLAGS)
	Tests/Fuzz/fuzz.sh build
	Tests/Fuzz/fuzz.sh replay

## fuzz: build the libFuzzer targets (Tests/Fuzz) and run each for FUZZ_SECONDS (default 60) from its seed corpus,
## or until FUZZ_RUNS executions if that comes first (the issue's campaign: FUZZ_SECONDS=3600 FUZZ_RUNS=10000000).
FUZZ_SECONDS ?= 60
fuzz-build: build
	Tests/Fuzz/fuzz.sh build

fuzz: fuzz-build
	Tests/Fuzz/fuzz.sh run $(FUZZ_SECONDS)

## test-release: every test against the static release binary `make install` ships, instead of the debug build.
test-release: release test-deps deb-deps
	swift build --build-tests $(SWIFT_FLAGS)
	$(MAKE) --no-print-directory deb DEB_REVISION=1
	$(MAKE) --no-print-directory deb DEB_REVISION=2
	ROLLBACKD_TEST_BINARY=.build/release/rollbackd swift test --skip-build $(SWIFT_FLAGS)

# The house style is .swift-format (4 spaces, 120 columns, the rules the code already follows); `swift format` comes
# with the toolchain. Neither target needs a build.
SWIFT_FORMAT_PATHS := Sources Tests Benchmarks Plugins

## lint: check every Swift file against .swift-format; changes nothing, fails on any finding.
lint:
	swift format lint --strict --recursive $(SWIFT_FORMAT_PATHS)

## format: rewrite every Swift file in place to .swift-format; `make lint` is clean after it.
format:
	swift format --in-place --recursive $(SWIFT_FORMAT_PATHS)

## demo: a bad release detected, rolled back to the known-good one and verified, on loopback (no root needed;
## about 30 s; `swift build` also builds rollbackd-demo-service). DEMO_FLAGS=--json for a summary.
demo: build
	.build/debug/rollbackd demo $(DEMO_FLAGS)

## demo-fleet: the same story on FLEET_HOSTS (3) hosts, each its own `rollbackd run`, one leader deciding for all
## on their summed evidence through a 3-member etcd on loopback; installs etcd-server and etcd-client from Debian
## when missing (about 60 s). DEMO_FLAGS=--json for a summary.
FLEET_HOSTS ?= 3
demo-fleet: build
	$(call install-missing,$(FLEET_DEBS))
	.build/debug/rollbackd demo --fleet $(FLEET_HOSTS) $(DEMO_FLAGS)

clean:
	rm -rf .build

## man: rollbackd(8) and thresholds.json(5) of the debug build into .build/man (tools/manpages.sh); read one with
## `man -l .build/man/man8/rollbackd.8`.
man: build
	sh tools/manpages.sh .build/debug/rollbackd .build/man $(DOCDIR)

## deb: .build/deb/rollbackd_VERSION_amd64.deb with debhelper (debian/), checked by lintian (no error, no warning).
## VERSION is tools/version.sh's with `-` as `+`/`.` (0.1.0-3-gHASH -> 0.1.0+3.gHASH) and DEB_REVISION (1) after
## it: a second build with DEB_REVISION=2 is an upgrade of the first. debian/changelog is written for the build.
DEB_REVISION ?= 1
DEB_OUT ?= .build/deb
deb-deps: deps
	$(call install-missing,$(DEB_DEBS))

deb: deb-deps
	@set -e; upstream=$$(sh tools/version.sh); \
	version=$$(echo "$$upstream" | sed -e 's/-/+/' -e 's/-/./g')-$(DEB_REVISION); \
	epoch=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)}; \
	{ echo "rollbackd ($$version) unstable; urgency=medium"; echo; \
	  echo "  * rollbackd $$upstream; its changes are in"; \
	  echo "    /usr/share/doc/rollbackd/changelog.gz."; echo; \
	  echo " -- $$(sed -n 's/^Maintainer: //p' debian/control)  $$(LC_ALL=C date -u -R -d @$$epoch)"; \
	} > debian/changelog; \
	SOURCE_DATE_EPOCH=$$epoch debian/rules binary DEB_OUT=$(DEB_OUT); \
	deb=$(DEB_OUT)/rollbackd_$${version}_amd64.deb; \
	echo "lintian $$deb"; lintian --fail-on error,warning --display-info $$deb; \
	echo "built $$deb"

## install: the release binary (static Swift runtime), the systemd units, the rollbackd user, the journal catalog
## and the default config. PREFIX (default /usr/local) and DESTDIR as usual; with DESTDIR set nothing is run on
## the build machine (no user, no catalog update, no daemon-reload): a package's scripts do that.
# Units go where systemd looks for locally installed units ($(PREFIX)/lib/systemd/system is in its search path for
# /usr/local and /usr), so /etc/systemd/system stays the administrator's: `systemctl edit` drop-ins there override
# ours and survive `make uninstall`. Any other PREFIX is not searched by systemd: then the units go to /etc.
BINDIR ?= $(PREFIX)/bin
SYSTEMD_LIBDIR = $(if $(filter /usr /usr/local,$(PREFIX)),$(PREFIX)/lib,/etc)
UNITDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),$(PREFIX)/lib/systemd/system,/etc/systemd/system)
SYSUSERSDIR ?= $(SYSTEMD_LIBDIR)/sysusers.d
CATALOGDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),$(PREFIX)/lib/systemd/catalog,/usr/lib/systemd/catalog)
CONFDIR ?= /etc/rollbackd
DOCDIR ?= $(PREFIX)/share/doc/rollbackd
INSTALL_BIN ?= .build/release/rollbackd
# Shell completions, where each shell looks for a package's (bash-completion's loader, zsh's fpath on Debian, fish's
# vendor directories), generated by the binary itself (swift-argument-parser) so they follow its commands.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/share/zsh/vendor-completions,$(PREFIX)/share/zsh/site-functions)
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
MANDIR ?= $(PREFIX)/share/man
UNITS := rollbackd.service rollbackd@.service rollbackd-exec.socket rollbackd-exec@.service

install: release
	$(MAKE) --no-print-directory install-files INSTALL_BIN=.build/release/rollbackd

## install-files: install without building (INSTALL_BIN names the binary); used by `install` and the container test.
install-files:
	@test -x "$(INSTALL_BIN)" || { echo "install: no binary at $(INSTALL_BIN) (make release first)" >&2; exit 1; }
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(CONFDIR)
	install -m 0755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/rollbackd
	@for u in $(UNITS); do \
	  sed -e 's|/usr/local/bin/rollbackd|$(BINDIR)/rollbackd|g' -e 's|/usr/local/share/doc/rollbackd|$(DOCDIR)|g' \
	    systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	  mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u && echo "installed $(DESTDIR)$(UNITDIR)/$$u"; \
	done
	install -m 0644 systemd/rollbackd.sysusers $(DESTDIR)$(SYSUSERSDIR)/rollbackd.conf
	install -d -m 0755 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	@# bash-completion sources the file: no #! line (lintian: bash-completion-with-hashbang).
	$(INSTALL_BIN) --generate-completion-script bash | sed '1{/^#!/d}' > $(DESTDIR)$(BASHCOMPDIR)/rollbackd
	$(INSTALL_BIN) --generate-completion-script zsh > $(DESTDIR)$(ZSHCOMPDIR)/_rollbackd
	$(INSTALL_BIN) --generate-completion-script fish > $(DESTDIR)$(FISHCOMPDIR)/rollbackd.fish
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/rollbackd $(DESTDIR)$(ZSHCOMPDIR)/_rollbackd \
	  $(DESTDIR)$(FISHCOMPDIR)/rollbackd.fish
	sh tools/manpages.sh $(INSTALL_BIN) $(DESTDIR)$(MANDIR) $(DOCDIR)
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -d -m 0755 $(DESTDIR)$(DOCDIR)/docs
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	install -d -m 0755 $(DESTDIR)$(DOCDIR)/monitoring
	install -m 0644 monitoring/* $(DESTDIR)$(DOCDIR)/monitoring/
	@if [ -f systemd/rollbackd.catalog ]; then \
	  install -d -m 0755 $(DESTDIR)$(CATALOGDIR) && \
	  install -m 0644 systemd/rollbackd.catalog $(DESTDIR)$(CATALOGDIR)/rollbackd.catalog && \
	  echo "installed $(DESTDIR)$(CATALOGDIR)/rollbackd.catalog"; fi
	@# The schema describes this version's format: always the shipped one.
	@if [ -f thresholds.schema.json ]; then \
	  install -m 0644 thresholds.schema.json $(DESTDIR)$(CONFDIR)/thresholds.schema.json && \
	  echo "installed $(DESTDIR)$(CONFDIR)/thresholds.schema.json"; fi
	@# The config is the operator's: never overwritten.
	@fresh=""; \
	if [ -e $(DESTDIR)$(CONFDIR)/thresholds.json ]; then \
	  echo "kept the existing $(DESTDIR)$(CONFDIR)/thresholds.json (the shipped default is $(DOCDIR)/thresholds.json)"; \
	else \
	  install -m 0640 thresholds.json $(DESTDIR)$(CONFDIR)/thresholds.json && fresh=$(CONFDIR)/thresholds.json && \
	  echo "installed $(DESTDIR)$(CONFDIR)/thresholds.json"; \
	fi; \
	install -m 0644 thresholds.json $(DESTDIR)$(DOCDIR)/thresholds.json; \
	if [ -z "$(DESTDIR)" ]; then sh systemd/post-install.sh $(SYSUSERSDIR)/rollbackd.conf $$fresh; fi

## uninstall: remove what install put there, except the config, the state and the rollbackd user.
uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	  systemctl disable --now rollbackd.service rollbackd-exec.socket 2>/dev/null || true; fi
	rm -f $(DESTDIR)$(BINDIR)/rollbackd $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) \
	  $(DESTDIR)$(SYSUSERSDIR)/rollbackd.conf $(DESTDIR)$(CATALOGDIR)/rollbackd.catalog \
	  $(DESTDIR)$(CONFDIR)/thresholds.schema.json $(DESTDIR)$(BASHCOMPDIR)/rollbackd \
	  $(DESTDIR)$(ZSHCOMPDIR)/_rollbackd $(DESTDIR)$(FISHCOMPDIR)/rollbackd.fish \
	  $(DESTDIR)$(MANDIR)/man8/rollbackd.8 $(DESTDIR)$(MANDIR)/man5/thresholds.json.5
	rm -rf $(DESTDIR)$(DOCDIR)
	@if [ -z "$(DESTDIR)" ]; then \
	  command -v journalctl >/dev/null && journalctl --update-catalog || true; \
	  [ -d /run/systemd/system ] && systemctl daemon-reload || true; fi
	@echo "kept $(CONFDIR)/ (your config), /var/lib/rollbackd/ (state) and the rollbackd user and group"
