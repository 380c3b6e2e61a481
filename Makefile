# The two set-up commands are `make run` and `make test` (see README.md).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

# llama-cpp-python compiles from source here (about 6 minutes on 2 cores, once; pip
# caches the wheel). A portable x86-64 build: `native` would also enable AMX, whose
# kernels crash where the OS does not grant AMX tile state (seen in this sandbox).
ifeq ($(shell uname -m),x86_64)
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
endif
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

# Debian packages the tests start for real; installed when one is missing.
SYSTEM_PACKAGES := postgresql redis-server nginx-light chromium
SYSTEM_BINARIES := /usr/lib/postgresql/*/bin/initdb /usr/bin/redis-server /usr/sbin/nginx /usr/bin/chromium

.PHONY: run test install system-packages web web-test aisdk-app interop-clients bench clean

run: $(BIN)/.installed
	$(BIN)/tokenrelay serve $(ARGS)

test: $(BIN)/.installed system-packages web-test aisdk-app interop-clients
	$(BIN)/pytest $(PYTEST_ARGS)

# The chat page: sources in web/, built into the package (committed, so `make run`
# needs no npm). `make web` rebuilds it; `make test` runs its unit tests.
web:
	cd web && npm ci --no-audit --no-fund && npm run build

web-test:
	cd web && npm ci --no-audit --no-fund && npm test

# The React page tests/e2e/test_aisdk.py drives: the AI SDK's useChat against tokenrelay.
aisdk-app:
	cd tests/e2e/aisdk_app && npm ci --no-audit --no-fund && npm run build

# The Node SSE clients tests/integration/test_node_clients.py runs against tokenrelay.
interop-clients:
	cd tests/interop && npm ci --no-audit --no-fund

system-packages:
	@if ! ls $(SYSTEM_BINARIES) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	  else \
	    echo "Missing: sudo apt-get install $(SYSTEM_PACKAGES) (the tests that need them are skipped)"; \
	  fi; \
	fi

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test,bench]'
	touch $@

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV)
