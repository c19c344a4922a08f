#!/usr/bin/env bash
# check-install.sh BUILD_DIR SOURCE_DIR [CFLAGS] - install into a temporary prefix, then build and
# run an outside program twice: once with `pkg-config --cflags --libs rdmatrain`, once with CMake's
# find_package(rdmatrain). Fails if either cannot build or run. CFLAGS: what the consumer needs to
# load this build of the library (the sanitizer flags of a sanitized build).
set -euo pipefail
build=$1
src=$2
cflags=${3:-}
work=$(mktemp -d /tmp/rdt-install.XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*/ | head -1)

# shellcheck disable=SC2086 # cflags is a list of flags
PKG_CONFIG_PATH="$libdir/pkgconfig" cc $cflags -o "$work/consumer_pc" "$src/tests/install/consumer.c" \
    $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs rdmatrain)
LD_LIBRARY_PATH="$libdir" "$work/consumer_pc"

mkdir -p "$work/proj"
cp "$src/tests/install/consumer.c" "$work/proj/"
cp "$src/tests/install/CMakeLists.txt.in" "$work/proj/CMakeLists.txt"
cmake -S "$work/proj" -B "$work/proj/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
    -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$cflags" >/dev/null
cmake --build "$work/proj/build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/proj/build/consumer_cmake"
echo "1 passed, 0 failed"
