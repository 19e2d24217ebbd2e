#!/bin/sh
# Rebuild the pages' vendored scripts (courier, console, proposition) from the npm registry, exactly as locked.
#   cd web/vendor && ./build.sh
# Needs node >= 20 and npm. Writes api/static/vendor/ (served by `custody serve`) and
# tests/api/vendor/axe.min.js (the accessibility checker the browser test injects), with the
# licence of every package bundled. No CDN is involved at run time.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
OUT=../../api/static/vendor
mkdir -p "$OUT" ../../tests/api/vendor
npx esbuild crypto.entry.mjs --bundle --format=esm --minify --legal-comments=none \
  --target=es2022 --outfile="$OUT/crypto.js"
npx esbuild zxing.entry.mjs --bundle --format=esm --minify --legal-comments=none \
  --target=es2022 --outfile="$OUT/zxing.js"
npx esbuild qr.entry.mjs --bundle --format=esm --minify --legal-comments=none \
  --target=es2022 --outfile="$OUT/qr.js"
# libsodium.js carries its wasm inside the script: the proposition page's one extra file.
npx esbuild sodium.entry.mjs --bundle --format=esm --minify --legal-comments=none \
  --target=es2022 --outfile="$OUT/sodium.js"
# pako's deflate: labels signed on the proposition page are compressed as zlib.compress(x, 9).
npx esbuild zlib.entry.mjs --bundle --format=esm --minify --legal-comments=none \
  --target=es2022 --outfile="$OUT/zlib.js"
cp node_modules/zxing-wasm/dist/reader/zxing_reader.wasm "$OUT/zxing_reader.wasm"
cp node_modules/axe-core/axe.min.js ../../tests/api/vendor/axe.min.js
cp node_modules/axe-core/LICENSE ../../tests/api/vendor/axe-core.LICENSE
: > "$OUT/LICENSES.txt"
for p in hash-wasm @noble/ciphers @noble/ed25519 @noble/hashes cborg zxing-wasm uqr \
  libsodium-wrappers libsodium pako; do
  v=$(node -p "require('./node_modules/$p/package.json').version")
  printf '==== %s %s (npm) ====\n' "$p" "$v" >> "$OUT/LICENSES.txt"
  cat node_modules/$p/LICENSE* >> "$OUT/LICENSES.txt"
  printf '\n' >> "$OUT/LICENSES.txt"
done
sha256sum "$OUT/crypto.js" "$OUT/zxing.js" "$OUT/qr.js" "$OUT/zxing_reader.wasm" "$OUT/sodium.js" \
  "$OUT/zlib.js" > "$OUT/SHA256SUMS"
