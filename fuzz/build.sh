#!/bin/sh
# Build the loader fuzzer: fuzz/build.sh [OUT]  (default: fuzz/build/fuzz_load)
# Needs clang with libFuzzer (Debian: clang-19 + libclang-rt-19-dev).
# FUZZ_CC overrides the compiler; EXTRA_CFLAGS adds flags (e.g. -fprofile-instr-generate).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rt="$here/../cosmoext/runtime"
out=${1:-"$here/build/fuzz_load"}
cc=${FUZZ_CC:-$(command -v clang-19 || command -v clang)}
mkdir -p "$(dirname "$out")"
flags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=undefined -DCX_FUZZ=1 -I$rt -Wall -Wno-unused-function ${EXTRA_CFLAGS:-}"
# cxload.c and cxtls_dynamic.c are included by the harness itself; cxbase.c's
# cx_machine is renamed so the harness can pick the machine per input.
# shellcheck disable=SC2086
$cc $flags -Dcx_machine=cx_machine_native -c "$rt/cxbase.c" -o "$out.cxbase.o"
# The loader's sources: sources.txt minus what needs Python or serves only
# images at run time (module.c, cxhost.c, cxdl.c, closures), minus the two
# the harness includes and cxbase.c (built above).
srcs=""
for f in $(grep -v '^#' "$rt/sources.txt"); do
  case "$f" in
    module.c|cxhost.c|cxdl.c|cxclosure.c|cxpyclosure.c|cxload.c|cxtls_dynamic.c|cxbase.c) ;;
    *) srcs="$srcs $rt/$f" ;;
  esac
done
# shellcheck disable=SC2086
$cc $flags -no-pie -o "$out" "$here/fuzz_load.c" "$out.cxbase.o" $srcs
rm -f "$out.cxbase.o"
echo "$out"
