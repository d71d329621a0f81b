#!/bin/bash
# Installs the build into a scratch prefix, then builds and runs a consumer
# program three times: through pkg-config, through find_package(lariat), and
# from a C-only CMake project against the static library.
set -euo pipefail
build_dir=$1
source_dir=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix
cmake --install "$build_dir" --prefix "$prefix" > /dev/null
libdir=$(dirname "$(find "$prefix" -name liblariat.so | head -n1)")

export PKG_CONFIG_PATH=$libdir/pkgconfig
cc -o "$scratch/consumer_pc" "$source_dir/tests/install/consumer.c" \
  $(pkg-config --cflags --libs lariat)
LD_LIBRARY_PATH=$libdir "$scratch/consumer_pc"

cmake -S "$source_dir/tests/install" -B "$scratch/cmake" \
  -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$scratch/cmake" > /dev/null
LD_LIBRARY_PATH=$libdir "$scratch/cmake/consumer"

cmake -S "$source_dir/tests/install/static" -B "$scratch/static" \
  -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$scratch/static" > /dev/null
# Linked statically: it must not need liblariat.so.
if ldd "$scratch/static/consumer_static" | grep -q liblariat; then
  echo "consumer_static links liblariat.so"; exit 1
fi
"$scratch/static/consumer_static"
readelf -d "$libdir/liblariat.so" | grep -q 'SONAME.*liblariat.so.[0-9]'
echo "install, pkg-config, find_package, C-only static and SONAME: ok"
