#!/usr/bin/env bash
# Installs libshmq for C and C++ programs: libshmq.so and libshmq.a into PREFIX/lib, shmq.h and
# shmq.hpp into PREFIX/include, shmq.pc into PREFIX/lib/pkgconfig. Then:
#   cc app.c $(pkg-config --cflags --libs shmq)
#
#   crates/shmq-ffi/install.sh [--prefix PREFIX] [--lib-dir DIR]
#
# PREFIX defaults to /usr/local. Without --lib-dir it builds the library first
# (cargo build --release -p shmq-ffi) and installs target/release's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix=/usr/local
lib_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --lib-dir) lib_dir="$2"; shift 2 ;;
    *) echo "usage: $0 [--prefix PREFIX] [--lib-dir DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$lib_dir" ]; then
  (cd "$here" && cargo build --release -p shmq-ffi)
  lib_dir="$(cd "$here" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/../../Cargo.toml" | head -n 1)"
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 755 "$lib_dir/libshmq.so" "$prefix/lib/"
install -m 644 "$lib_dir/libshmq.a" "$prefix/lib/"
install -m 644 "$here/include/shmq.h" "$here/include/shmq.hpp" "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/shmq.pc.in" > "$prefix/lib/pkgconfig/shmq.pc"
echo "installed libshmq $version into $prefix"
