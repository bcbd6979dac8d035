#!/usr/bin/env bash
# libFuzzer targets for rollbackd's parsers of outside input (issue 16).
#
#   Tests/Fuzz/fuzz.sh build            compile every target into .build/fuzz/ (swiftc -sanitize=fuzzer,address)
#   Tests/Fuzz/fuzz.sh replay           run each target over its seed corpus once (what `make test` does)
#   Tests/Fuzz/fuzz.sh run [SECONDS]    fuzz each target for SECONDS (FUZZ_SECONDS, default 60); new inputs go to
#                                       .build/fuzz/corpus/<target>, crashes to .build/fuzz/crashes/
#
# The targets are Tests/Fuzz/Targets/<name>.swift, each one `LLVMFuzzerTestOneInput` over RollbackCore, which is
# compiled here with the fuzzer's coverage instrumentation and AddressSanitizer (RealModule, which it depends on,
# without). Seeds are Tests/Fuzz/corpus/<name>/ (kept in the repository, with a regression input for every crash
# found); a target whose seeds are shared files names them in Tests/Fuzz/corpus/<name>.seeds (paths from the
# repository root, globs allowed). `swift build` must have run once (it fetches swift-numerics).
set -euo pipefail

SELF=$(readlink -f "$0")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
OUT=$REPO/.build/fuzz
TARGETS_DIR=$REPO/Tests/Fuzz/Targets
CORPUS=$REPO/Tests/Fuzz/corpus
NUMERICS=$REPO/.build/checkouts/swift-numerics/Sources
SANITIZE=${FUZZ_SANITIZE:-fuzzer,address}
# A crash's report is libFuzzer's and AddressSanitizer's; Swift's own backtracer would only get in their way.
export SWIFT_BACKTRACE=enable=no
# Leaks inside the standard library's Regex construction are not rollbackd's (lsan.supp says which and why).
export LSAN_OPTIONS=suppressions=$REPO/Tests/Fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}

die() { echo "fuzz.sh: $*" >&2; exit 1; }

targets() { for f in "$TARGETS_DIR"/*.swift; do basename "$f" .swift; done; }

cmd_build() {
    [ -d "$NUMERICS/RealModule" ] || die "no swift-numerics checkout at $NUMERICS: run swift build first"
    mkdir -p "$OUT/modules"
    local shims=$NUMERICS/_NumericsShims/include
    # RealModule: plain (not the code under test).
    swiftc -parse-as-library -module-name RealModule -wmo -O -I "$shims" \
        -emit-module -emit-module-path "$OUT/modules/RealModule.swiftmodule" \
        -c "$NUMERICS"/RealModule/*.swift -o "$OUT/modules/RealModule.o"
    # RollbackCore: instrumented.
    mapfile -t core < <(find "$REPO/Sources/RollbackCore" -name '*.swift' | sort)
    swiftc -parse-as-library -module-name RollbackCore -wmo -Onone -gline-tables-only -sanitize="$SANITIZE" \
        -I "$OUT/modules" -I "$shims" \
        -emit-module -emit-module-path "$OUT/modules/RollbackCore.swiftmodule" \
        -c "${core[@]}" -o "$OUT/modules/RollbackCore.o"
    local t
    for t in $(targets); do
        swiftc -parse-as-library -module-name "fuzz_$t" -Onone -g -sanitize="$SANITIZE" \
            -I "$OUT/modules" -I "$shims" "$TARGETS_DIR/$t.swift" \
            "$OUT/modules/RollbackCore.o" "$OUT/modules/RealModule.o" -o "$OUT/fuzz-$t" 2> >(grep -v 'Cannot export local symbol' >&2)
        echo "built $OUT/fuzz-$t"
    done
}

# The seed inputs of a target: its directory plus the files its .seeds list names.
seeds() {
    local t=$1 dir=$OUT/seeds/$1
    rm -rf "$dir" && mkdir -p "$dir"
    [ -d "$CORPUS/$t" ] && cp "$CORPUS/$t"/* "$dir"/ 2>/dev/null || true
    if [ -f "$CORPUS/$t.seeds" ]; then
        local pattern f
        while read -r pattern; do
            case "$pattern" in '' | '#'*) continue ;; esac
            for f in $REPO/$pattern; do
                [ -f "$f" ] && cp "$f" "$dir/$(echo "${f#"$REPO"/}" | tr '/' '_')"
            done
        done <"$CORPUS/$t.seeds"
    fi
    echo "$dir"
}

cmd_replay() {
    local t dir n
    for t in $(targets); do
        [ -x "$OUT/fuzz-$t" ] || die "$OUT/fuzz-$t is missing: Tests/Fuzz/fuzz.sh build"
        dir=$(seeds "$t")
        n=$(find "$dir" -type f | wc -l)
        [ "$n" -gt 0 ] || die "$t: no seed inputs"
        mkdir -p "$OUT/crashes"
        "$OUT/fuzz-$t" -runs=0 -artifact_prefix="$OUT/crashes/replay-$t-" "$dir" >"$OUT/replay-$t.log" 2>&1 ||
            { tail -n 40 "$OUT/replay-$t.log" >&2; die "$t: an input of its corpus fails (log: $OUT/replay-$t.log)"; }
        echo "replayed $t: $n inputs, no failure"
    done
}

cmd_run() {
    local seconds=${1:-${FUZZ_SECONDS:-60}} t dir
    mkdir -p "$OUT/crashes"
    for t in $(targets); do
        [ -x "$OUT/fuzz-$t" ] || die "$OUT/fuzz-$t is missing: Tests/Fuzz/fuzz.sh build"
        dir=$(seeds "$t")
        mkdir -p "$OUT/corpus/$t"
        echo "fuzzing $t for ${seconds}s"
        "$OUT/fuzz-$t" "$OUT/corpus/$t" "$dir" -max_total_time="$seconds" -print_final_stats=1 \
            -artifact_prefix="$OUT/crashes/$t-" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
            >"$OUT/run-$t.log" 2>&1 || { tail -n 60 "$OUT/run-$t.log" >&2; die "$t: crash or hang (log: $OUT/run-$t.log)"; }
        grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)|^#[0-9]+.*DONE' "$OUT/run-$t.log" |
            sed "s/^/  $t: /" || true
    done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    build) cmd_build ;;
    replay) cmd_replay ;;
    run) cmd_run "$@" ;;
    *) sed -n '2,14p' "$SELF" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
