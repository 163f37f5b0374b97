#!/usr/bin/env bash
# Installs every build and test dependency from Debian packages, then builds
# jetmoe.cpp into build/ (Release). Re-running only rebuilds what changed.
#   scripts/setup.sh            install + build
#   SKIP_APT=1 scripts/setup.sh build only
#   JETMOE_CMAKE_ARGS="..."     extra arguments for CMake's configure step
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache   # toolchain: Ninja + ccache keep 2-core rebuilds short
  nlohmann-json3-dev                          # JSON: config.json, safetensors headers, index files
  libcli11-dev                                # command-line parsing and --help
  googletest libgtest-dev libgmock-dev        # tests
  libsentencepiece-dev pkg-config             # tokenizer.model loading; the tokenizer benchmark's baseline
  clang libclang-rt-dev                       # fuzz/: libFuzzer + sanitizers for the tokenizer fuzz target
  libbenchmark-dev                            # bench/: kernel micro-benchmarks
  libcpp-httplib-dev                          # jetmoe serve: HTTP/1.1 server (thread per connection, chunked SSE)
)

# tests/server talks to `jetmoe serve` with the official openai npm client;
# Node.js comes from Debian unless the machine already has one.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

if [ "${SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

# The openai client at the version package-lock.json pins (npm registry).
if [ ! -d tests/server/node_modules/openai ] || [ tests/server/package-lock.json -nt tests/server/node_modules/.package-lock.json ]; then
  npm ci --prefix tests/server --no-audit --no-fund --loglevel=error
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${JETMOE_CMAKE_ARGS:-}
ninja -C build
