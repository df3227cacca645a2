#!/usr/bin/env bash
# Regenerate the golden jute vectors in jute-schemas/golden/ with the real
# Apache ZooKeeper 3.9.5 Java classes (see jute-schemas/golden/README.md).
#
# Needs: Java 17+, Maven 3.8+ (network access to Maven Central on first run),
# python3 for the final check. Works from any directory. Idempotent: the output
# depends only on the generator source, so a second run produces identical bytes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROJECT=compat-tests/java/golden-gen
OUT=jute-schemas/golden

for tool in java mvn; do
    command -v "$tool" >/dev/null 2>&1 || { echo "gen-golden: '$tool' not found on PATH" >&2; exit 1; }
done

echo "gen-golden: building $PROJECT" >&2
# Maven's output is only shown when the build fails (mvn 3.8 -q still prints colour resets).
if ! MVN_LOG="$(mvn -q -B -Dstyle.color=never -f "$PROJECT/pom.xml" package 2>&1)"; then
    printf '%s\n' "$MVN_LOG" >&2
    echo "gen-golden: maven build failed" >&2
    exit 1
fi

CP="$PROJECT/target/classes:$(cat "$PROJECT/target/classpath.txt")"

# Generate into a scratch directory first so a failure never leaves a half-written tree.
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
java -Dfile.encoding=UTF-8 -Duser.language=en -Duser.country=US -cp "$CP" \
    ferrokeeper.golden.GoldenGen "$TMP"

# Replace every generated file (README.md and other non-JSON files are kept).
mkdir -p "$OUT"
find "$OUT" -mindepth 2 -type f -name '*.json' -delete
find "$OUT" -mindepth 1 -type d -empty -delete
cp -R "$TMP"/. "$OUT"/

if command -v python3 >/dev/null 2>&1; then
    python3 scripts/check-golden.py "$OUT"
else
    echo "gen-golden: python3 not found, skipping scripts/check-golden.py" >&2
fi
