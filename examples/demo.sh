#!/usr/bin/env bash
# The main job: fetch a real extension (ujson 6.1.0, C + C++ double-conversion)
# from PyPI, build it into ujson.cosmoext with cosmoext, and import it in a
# plain CPython through the .cosmoext finder (no dlopen of the image).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
work=$(mktemp -d /tmp/cosmoext-demo.XXXXXX)
python3 -m pip download -q --no-deps --no-binary :all: ujson==6.1.0 -d "$work"
tar -xzf "$work"/ujson-6.1.0.tar.gz -C "$work"
src="$work/ujson-6.1.0/src/ujson"
dc="$src/deps/double-conversion/double-conversion"
cosmoext build-ext --name ujson -o "$work/out/ujson.cosmoext" \
  -I "$src" -I "$dc" -D 'UJSON_VERSION="6.1.0"' -D _GNU_SOURCE \
  "$dc"/*.cc "$src/dconv_wrapper.cc" "$src/ujson.c" "$src/encode.c" "$src/decode.c"
cosmoext inspect "$work/out/ujson.cosmoext" | head -4
cd "$work/out"
python3 - <<'PY'
import ujson
doc = {"name": "cosmoext", "list": [1, 2.5, "x", None, True], "big": 1e300}
text = ujson.dumps(doc, sort_keys=True)
assert ujson.loads(text) == doc, text
print(f"imported {ujson.__file__} (ujson {ujson.__version__}); round trip OK: {text}")
PY
