# presenced — build, test and install. See README.md; `make run` and `make check` are the set-up.

PREFIX ?= /usr/local
SYSCONFDIR ?= $(PREFIX)/etc
LOCALSTATEDIR ?= /var
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

CC ?= cc
CLANG ?= clang
PYTHON ?= /usr/bin/python3
FUZZ_SECONDS ?= 10

# Debian 12 packages: what building needs, and what the tests add.
DEB_BUILD := gcc make pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev \
             libevent-dev libjson-c-dev libcurl4-openssl-dev liblmdb-dev libssl-dev libnats-dev
DEB_TEST := clang libclang-rt-14-dev python3 python3-websockets python3-pytest \
            python3-prometheus-client python3-cryptography python3-selenium chromium \
            chromium-driver lmdb-utils perl curl openssl man-db nats-server

# What `make run` adds for the README's first device (a WebSocket client, curl).
DEB_TRY := python3-websockets curl

# libnats is cnats 3.4 (the cluster's engine client, cluster/); its libuv adapter is the header
# nats/adapters/libuv.h, compiled into cluster/engine_uv.c, so nothing more links.
PKGS := libwebsockets libuv libevent json-c libcurl lmdb openssl libnats
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# What /__version__ names as "source" unless source_url is configured: the repository's origin
# remote (without any user:password@; a remote that is a local path becomes a file:// URL),
# else the tree built; set it when packaging:
# make SOURCE_URL=https://...
SOURCE_URL ?= $(or $(shell git remote get-url origin 2>/dev/null | sed -E 's|//[^/@]*@|//|; s|^/|file:///|'),file://$(CURDIR))
BUILD_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -Wno-format-nonliteral
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g $(WARN) \
               -DPRESENCED_COMMIT='"$(COMMIT)"' -DPRESENCED_BUILD='"$(BUILD_DATE)"' \
               -DPRESENCED_SOURCE='"$(SOURCE_URL)"' \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS ?= -O2
LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -levent -luv
SAN_FLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

# worker/ has a folder per concern (session/, device/, appservice/, web/, identity/, push/).
LIB_SRC := $(wildcard common/*.c) $(wildcard shm/*.c) $(wildcard worker/*.c) \
           $(wildcard worker/*/*.c) $(wildcard cluster/*.c) \
           $(filter-out master/main.c,$(wildcard master/*.c))
MAIN_SRC := master/main.c
HEADERS := $(wildcard */*.h) $(wildcard worker/*/*.h)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=build/asan/tools/%)

# presencectl(1), the operator's command line: a client of the admin endpoint that links common/
# (the configuration reader of the server) and none of the server's processes.
CTL_SRC := $(wildcard clients/presencectl/*.c)
CTL_LIBS := $(shell pkg-config --libs libcurl json-c openssl 2>/dev/null)
COMMON_SRC := $(wildcard common/*.c)

OBJ := $(LIB_SRC:%.c=build/obj/%.o)
ASAN_OBJ := $(LIB_SRC:%.c=build/asan/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/tests/%)
ASAN_UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

.PHONY: all deps deps-test node-deps run demo check unit unit-asan integration fuzz install clean bench bench-cluster \
        bench-instructions bench-million

all: deps
	@$(MAKE) --no-print-directory build/presenced build/presencectl

deps:
	@$(call deb_install,$(DEB_BUILD))

deps-test:
	@$(call deb_install,$(DEB_BUILD) $(DEB_TEST))

# Installs the Debian packages of $(1) that are missing (as root, or through sudo).
define deb_install
missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages:$$missing"; \
  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
  $$sudo apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
fi
endef

build/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(BASE_CFLAGS) $(CFLAGS) -c $< -o $@

build/asan/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "CC (asan) $<"
	@$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -c $< -o $@

build/libpresenced.a: $(OBJ)
	ar rcs $@ $^

build/asan/libpresenced.a: $(ASAN_OBJ)
	ar rcs $@ $^

build/presenced: build/obj/master/main.o build/libpresenced.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

build/asan/presenced: build/asan/obj/master/main.o build/asan/libpresenced.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LIBS)

build/libcommon.a: $(COMMON_SRC:%.c=build/obj/%.o)
	ar rcs $@ $^

build/asan/libcommon.a: $(COMMON_SRC:%.c=build/asan/obj/%.o)
	ar rcs $@ $^

build/presencectl: $(CTL_SRC) $(wildcard clients/presencectl/*.h) build/libcommon.a
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $(CTL_SRC) build/libcommon.a $(CTL_LIBS)

build/asan/presencectl: $(CTL_SRC) $(wildcard clients/presencectl/*.h) build/asan/libcommon.a
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -o $@ $(CTL_SRC) build/asan/libcommon.a $(CTL_LIBS)

TEST_HEADERS := tests/unit/tap.h tests/unit/scratch_store.h $(wildcard tests/tools/*.h)

build/tests/%: tests/unit/%.c $(TEST_HEADERS) build/libpresenced.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< build/libpresenced.a $(LIBS)

build/asan/tests/%: tests/unit/%.c $(TEST_HEADERS) build/asan/libpresenced.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -o $@ $< build/asan/libpresenced.a $(LIBS)

# Helpers the integration tests run beside the server.
build/asan/tools/%: tests/tools/%.c $(TEST_HEADERS) build/asan/libpresenced.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -o $@ $< build/asan/libpresenced.a $(LIBS)

# libFuzzer targets link only the parser they exercise and what it needs.
FUZZ_DEPS := common/config.c common/addr.c common/log.c common/json_strict.c common/origin.c \
             common/b64url.c common/id_key.c common/id_assertion.c common/id_support.c \
             common/id_verify.c common/jwk.c common/jwt.c common/notification.c common/uuid.c \
             common/form.c common/next_path.c common/push_crypto.c common/push_subscription.c \
             common/vapid.c common/retry_after.c \
             common/utf8.c common/ws_frame.c \
             common/oidc_doc.c common/public_key.c common/hex.c common/file_read.c \
             worker/device/device_msg.c \
             cluster/record.c cluster/jsapi.c cluster/node_record.c cluster/inbox.c \
             shm/app.c shm/grant.c shm/outbox.c shm/web_session.c shm/store.c shm/push_sub.c \
             shm/device_key.c common/app_rules.c \
             common/clock.c common/grow.c
build/fuzz/%: tests/fuzz/%.c build/fuzzobj/libfuzzdeps.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) $(BASE_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined -o $@ $< \
	  build/fuzzobj/libfuzzdeps.a $(shell pkg-config --libs json-c openssl libcurl lmdb)

# Those sources compiled once for all the targets (each compiled them all again: 12 targets
# made some 340 compilations), instrumented as -fsanitize=fuzzer does, without its main.
build/fuzzobj/libfuzzdeps.a: $(FUZZ_DEPS:%.c=build/fuzzobj/%.o)
	ar rcs $@ $^

build/fuzzobj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "CC (fuzz) $<"
	@$(CLANG) $(BASE_CFLAGS) -O1 -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

run: all
	@$(call deb_install,$(DEB_TRY))
	@mkdir -p var
	./build/presenced -f -c etc/presenced.conf

# The chat room demo (examples/chat): presenced as `make run` has it, the app provisioned with
# presencectl, the chat on http://127.0.0.1:$(DEMO_PORT)/.
DEB_DEMO := python3
DEMO_PORT ?= 8290
demo: all
	@$(call deb_install,$(DEB_TRY) $(DEB_DEMO))
	@mkdir -p var
	$(PYTHON) examples/chat/demo.py -c etc/presenced.conf --port $(DEMO_PORT)

unit: $(UNIT_BIN)
	prove --exec '' $(UNIT_BIN)

unit-asan: $(ASAN_UNIT_BIN)
	ASAN_OPTIONS=detect_leaks=1 prove --exec '' $(ASAN_UNIT_BIN)

# The outside peers of the tests (tests/node/package.json), installed from the committed lock.
# Install scripts stay off; browserid-crypto's own packaging step is the one its require() needs
# (its postinstall also runs a browser bundler that fails on Node.js 20).
NODE_STAMP := tests/node/node_modules/.installed
node-deps: $(NODE_STAMP)
$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  { echo "make: Node.js 20 and npm are needed by the tests (node, npm on PATH)"; exit 1; }
	cd tests/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cd tests/node && node node_modules/browserid-crypto/scripts/package.js >/dev/null
	@touch $@

integration: build/asan/presenced build/asan/presencectl $(TOOL_BIN) $(NODE_STAMP)
	PRESENCED_BIN=$(CURDIR)/build/asan/presenced PRESENCED_TOOLS=$(CURDIR)/build/asan/tools \
	  PRESENCECTL_BIN=$(CURDIR)/build/asan/presencectl \
	  $(PYTHON) -m pytest -q tests/integration

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  name=$$(basename $$f); mkdir -p build/fuzz/corpus/$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 build/fuzz/corpus/$$name \
	     tests/fuzz/corpus/$$name 2>build/fuzz/$$name.log || { tail -40 build/fuzz/$$name.log; exit 1; }; \
	done

# Everything check runs is built first, with a job per core; the tests then run one at a time.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check: deps-test
	@$(MAKE) --no-print-directory -j$(JOBS) build/presenced build/presencectl build/asan/presenced \
	  build/asan/presencectl $(UNIT_BIN) $(ASAN_UNIT_BIN) $(FUZZ_BIN) $(TOOL_BIN)
	@$(MAKE) --no-print-directory unit unit-asan
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory integration

build/tools/%: tests/tools/%.c $(TEST_HEADERS) build/libpresenced.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< build/libpresenced.a $(LIBS)

build/bench/id_bench build/bench/app_seed build/bench/push_bench build/bench/conn_dump \
  build/bench/store_update: build/bench/%: bench/%.c $(TEST_HEADERS) build/libpresenced.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< build/libpresenced.a $(LIBS)

# What one write transaction costs at a size (bench/README.md): it wraps libc's writes to count
# LMDB's, hence -ldl.
build/bench/commit_bench: bench/commit_bench.c $(TEST_HEADERS) build/libpresenced.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< build/libpresenced.a $(LIBS) -ldl

# The load generator is a client: it links nothing of the server.
build/bench/loadgen: bench/loadgen.c bench/ws_client.c bench/ws_client.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ bench/loadgen.c bench/ws_client.c -lssl -lcrypto

# What OpenSSL keeps per idle TLS connection, by allocating line (bench/README.md).
build/bench/tls_probe: bench/tls_probe.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ bench/tls_probe.c -lssl -lcrypto

# What `make bench` adds: the broker it is compared with, the plots, the instruction counter.
DEB_BENCH := mosquitto python3-matplotlib valgrind

bench: deps-test
	@$(call deb_install,$(DEB_BENCH))
	@$(MAKE) --no-print-directory build/presenced $(TOOL_SRC:tests/tools/%.c=build/tools/%) \
	  build/bench/id_bench build/bench/app_seed build/bench/push_bench build/bench/conn_dump \
	  build/bench/loadgen
	$(PYTHON) bench/run.py

# A million authenticated devices at once on this machine (bench/million.py; about 20 minutes, and
# 5 more the first time, to make the assertions it keeps in build/bench/million/).
bench-million: deps-test
	@$(MAKE) --no-print-directory build/presenced build/bench/app_seed build/bench/conn_dump \
	  build/bench/loadgen
	$(PYTHON) bench/million.py

# What the cluster adds: status and notify figures on three nodes on the engine (three
# nats-servers) as ratios to one node, in the same run (SPEC 8; a few minutes).
bench-cluster: deps-test
	@$(MAKE) --no-print-directory build/presenced build/tools/engine_probe
	$(PYTHON) bench/cluster.py

# Instructions per status update and per Mosquitto QoS 1 publish under callgrind: deterministic,
# so it can run on a busy machine (about 4 minutes).
bench-instructions: deps-test
	@$(call deb_install,$(DEB_BENCH))
	@$(MAKE) --no-print-directory build/presenced build/bench/loadgen build/bench/store_update
	$(PYTHON) bench/instructions.py

install: build/presenced build/presencectl
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR)
	install -m 755 build/presenced $(DESTDIR)$(PREFIX)/sbin/presenced
	install -m 755 build/presencectl $(DESTDIR)$(PREFIX)/bin/presencectl
	install -m 644 man/presencectl.1 $(DESTDIR)$(MANDIR)/man1/presencectl.1
	install -m 644 man/presenced.8 $(DESTDIR)$(MANDIR)/man8/presenced.8
	install -m 644 man/presenced.conf.5 $(DESTDIR)$(MANDIR)/man5/presenced.conf.5
	install -m 644 man/presence.7 $(DESTDIR)$(MANDIR)/man7/presence.7
	sed -e 's|^data_dir .*|data_dir $(LOCALSTATEDIR)/lib/presenced|' \
	    -e 's|^pid_file .*|pid_file /run/presenced/presenced.pid|' \
	    -e 's|^dev_issuer .*|dev_issuer off|' \
	    etc/presenced.conf > $(DESTDIR)$(SYSCONFDIR)/presenced.conf.new
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/presenced.conf ]; then \
	  echo "kept $(SYSCONFDIR)/presenced.conf; the new default is presenced.conf.new"; \
	else mv $(DESTDIR)$(SYSCONFDIR)/presenced.conf.new $(DESTDIR)$(SYSCONFDIR)/presenced.conf; fi
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    etc/presenced.service > $(DESTDIR)$(UNITDIR)/presenced.service

clean:
	rm -rf build
