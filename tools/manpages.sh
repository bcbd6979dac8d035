#!/bin/sh
# rollbackd(8) and thresholds.json(5) for the binary BIN, into OUTDIR/man8 and OUTDIR/man5:
#   rollbackd.8        swift-argument-parser's generate-manual run on BIN (every subcommand, argument and option,
#                      from the binary itself, so the page cannot drift from the code), with man/rollbackd.8.tail
#                      (environment, files, exit statuses, examples) in place of the generator's EXIT STATUS;
#   thresholds.json.5  man/thresholds.json.5 (a test checks it against thresholds.schema.json).
# The version is BIN's own; the date is SOURCE_DATE_EPOCH's (Debian's builds set it), else the last commit's, else
# today's. DOCDIR is where the docs are installed. GENERATE_MANUAL names the generator (default: next to BIN).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd -P)
if [ $# -ne 3 ]; then
    echo "usage: tools/manpages.sh BIN OUTDIR DOCDIR" >&2
    exit 2
fi
bin=$1 out=$2 docdir=$3
gen=${GENERATE_MANUAL:-$(dirname "$bin")/generate-manual}
if [ ! -x "$gen" ]; then
    echo "tools/manpages.sh: no generate-manual at $gen (swift build --product generate-manual builds it)" >&2
    exit 1
fi
version=$("$bin" --version)
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -u -d "@$epoch" +%Y-%m-%d)
mdocdate=$(LC_ALL=C date -u -d "@$epoch" '+%B %-d, %Y')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$gen" "$bin" --section 8 --date "$date" --output-directory "$tmp"
mkdir -p "$out/man8" "$out/man5"
# The generated page up to its EXIT STATUS, then ours; .Os names the version. The generator also documents the
# hidden test-only subcommands: only those `rollbackd --help` lists stay.
shown=" $("$bin" --help | sed -n '/^SUBCOMMANDS:/,/^$/s/^  \([a-z][a-z-]*\).*/\1/p' | tr '\n' ' ') "
sed -e '/^\.Sh "EXIT STATUS"/,$d' -e "s|^\.Os\$|.Os rollbackd $version|" "$tmp/rollbackd.8" |
    awk -v shown="$shown" '
        # A subcommand is ".It Em NAME", its abstract, and its own ".Bl" ... ".El" list.
        skip && /^\.Bl/ { depth++ }
        skip && /^\.El/ { if (--depth == 0) { skip = 0 }; next }
        skip { next }
        /^\.It Em / && index(shown, " " $3 " ") == 0 { skip = 1; depth = 0; next }
        { print }' >"$tmp/page"
sed -e "s|@DOCDIR@|$docdir|g" "$root/man/rollbackd.8.tail" >>"$tmp/page"
mv "$tmp/page" "$out/man8/rollbackd.8"
sed -e "s|@DATE@|$mdocdate|" -e "s|@VERSION@|$version|" -e "s|@DOCDIR@|$docdir|g" "$root/man/thresholds.json.5" \
    >"$out/man5/thresholds.json.5"
chmod 0644 "$out/man8/rollbackd.8" "$out/man5/thresholds.json.5"
