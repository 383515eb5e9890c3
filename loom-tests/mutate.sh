#!/usr/bin/env bash
# Ordering mutation check: every Acquire, Release, AcqRel and SeqCst in the
# ring, wakeup and repair code is weakened to Relaxed, and every fence
# deleted, one site at a time; each mutant runs the loom models of its file.
# A site whose mutant passes is reported as NOT CAUGHT: it needs a model, a
# weaker ordering, or a structured justification (below). Exit status 1 if
# any site is not caught and not justified.
#
#   loom-tests/mutate.sh            every file below
#   loom-tests/mutate.sh lease.rs   sites in one file (or peers/claims: a folder)
#   MUTATE_JUSTIFIED=1 loom-tests/mutate.sh   also run the justified sites
#   MUTATE_FULL=1 loom-tests/mutate.sh        run every mutant, cache or not
#   loom-tests/mutate.sh --update-cache       refresh loom-tests/mutants.cache
#
# Cached results. A full run takes about 17 minutes, most of CI's time, so
# the outcome of every mutant is kept in loom-tests/mutants.cache (plain
# text: one line per site with its line of code and its outcome, one key
# per mutated file). A run uses a file's cached outcomes only while the key
# recorded for it equals the key of the tree it runs on; otherwise it runs
# that file's mutants and says how to refresh. The unmutated models run on
# every call whatever the cache holds: they check the code as it is.
#
# The key of a mutated file is a hash of everything its mutants' outcomes
# depend on: this script (how sites are found, mutated and run), the
# LOOM_MAX_PREEMPTIONS bound, Cargo.toml, Cargo.lock, build.rs, .cargo/ and
# rust-toolchain(.toml) where they exist (profiles, flags), every file under src/
# (the loom build compiles the whole crate: a mutant is the whole program
# with one line changed, and any other file can change what the models see
# of it, so no per-site or per-file slice of src/ is a sound key without a
# dependence analysis we do not have), shmring-async's sources (the
# `async` models run its reactor against the core's wakeup code), and
# every file under loom-tests/ except the model binaries this file's
# mutants never run (binaries_for). The reactor itself has no ordering to
# mutate: its table is under a mutex and its control word is Relaxed (see
# async/src/reactor.rs); the orderings its protocol relies on are the
# core's (hook.rs, wait.rs, barrier.rs, futex.rs), whose mutants run the
# `async` models too.
# So an edit anywhere in src/, even a comment, re-runs every mutant, and an
# edit to one model file re-runs only the files whose mutants run it. Not
# in the key: the version of the installed compiler, unless a
# rust-toolchain file pins it (loom explores the interleavings of the
# program's own atomic operations, which are calls into loom; no compiler
# can reorder or remove them), and MUTATE_JUSTIFIED (justified sites are
# recorded as not run, and that mode never reads the cache).
#
# After a change under src/ or loom-tests/ (or to Cargo.lock), refresh and
# commit the cache, or CI runs the stale files' mutants itself:
#
#   loom-tests/mutate.sh --update-cache && git add loom-tests/mutants.cache
#
# It re-runs only the files whose key changed (MUTATE_FULL=1: all), keeps
# the other files' blocks, and writes the cache even when a site is not
# caught (recorded as NOT-CAUGHT, so CI keeps failing on it until fixed).
#
# Lines marked `// loom: not modelled` are skipped: code loom does not run
# (the membarrier half of the asymmetric fence) or that is the model of the
# kernel itself. A site is justified when the comment block right above it
# (or its own line) holds
#
#   // ordering-justified(<limit>): <the happens-before argument>
#
# where <limit> names one of loom's modelling limits that hides the
# execution needing the ordering (an unknown name is an error):
#
#   load-buffering   loom lets a load read only stores already made in its
#                    schedule; the C++ model also lets it read a store that
#                    is made later (load buffering), which some orderings
#                    exist to exclude.
#
# "The models do not do X" is not a limit: write the model. A justified
# site cannot fail the check either way, so its mutant is only run (all its
# models, the slowest case) when asked.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg shmring_loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/loom}"
limits=(load-buffering)
cache=loom-tests/mutants.cache
update=false
if [ "${1:-}" = --update-cache ]; then update=true; shift; fi
# Read the cache unless every mutant is asked for.
use_cache=true
if [ -n "${MUTATE_FULL:-}" ] || [ -n "${MUTATE_JUSTIFIED:-}" ]; then use_cache=false; fi
names=(format/slot.rs rings/spsc rings/mpmc rings/byte_ring rings/broadcast
    peers/claims platform/lease.rs wait.rs peers/role.rs format/header.rs
    platform/barrier.rs platform/futex.rs hook.rs)
if [ $# -gt 0 ]; then names=("$@"); fi
# A name is a folder under src/ (every file in it), or a file's path under
# src/ or any unique tail of it (`lease.rs`, `mpmc/repair.rs`).
files=()
for n in "${names[@]}"; do
    if [ -d "src/$n" ]; then
        mapfile -t found < <(find "src/$n" -name '*.rs' | LC_ALL=C sort)
    else
        mapfile -t found < <(find src -path "*/$n" -name '*.rs' | LC_ALL=C sort)
        [ ${#found[@]} -le 1 ] || { echo "$n names ${#found[@]} files under src/: give more of its path"; exit 2; }
    fi
    [ ${#found[@]} -ge 1 ] || { echo "no file $n under src/"; exit 2; }
    files+=("${found[@]}")
done

backup=$(mktemp -d)
restore() { for f in "${files[@]}"; do cp "$backup/$f" "$f"; done; rm -rf "$backup"; }
for f in "${files[@]}"; do mkdir -p "$backup/$(dirname "$f")"; cp "$f" "$backup/$f"; done
trap restore EXIT

# One line per site: file, line number, what the mutant does.
sites=$(python3 - "${files[@]}" <<'PY'
import re, sys
for path in sys.argv[1:]:
    prev = ""
    for n, line in enumerate(open(path), 1):
        code = line.split("//")[0]
        marked = "loom: not modelled" in line or "loom: not modelled" in prev
        prev = line
        if marked:
            continue
        if re.search(r"\bfence\(", code) and "compiler_fence" not in code:
            print(f"{path}\t{n}\tdelete-fence")
        elif re.search(r"Ordering::(Acquire|Release|AcqRel|SeqCst)", code):
            for m in re.finditer(r"Ordering::(Acquire|Release|AcqRel|SeqCst)", code):
                print(f"{path}\t{n}\t{m.group(1)}->Relaxed")
PY
)

mutate() { # file line kind
    python3 - "$@" <<'PY'
import re, sys
path, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(path).read().split("\n")
line = lines[n - 1]
if kind == "delete-fence":
    line = re.sub(r"(crate::sync::)?fence\(Ordering::\w+\);", "", line)
else:
    old = kind.split("->")[0]
    line = line.replace(f"Ordering::{old}", "Ordering::Relaxed", 1)
lines[n - 1] = line
open(path, "w").write("\n".join(lines))
PY
}

# The justification of a site: the limit its marker names, "unknown:<name>"
# for a name not in `limits`, or nothing.
justification() { # file line
    python3 - "$1" "$2" "${limits[@]}" <<'PY'
import re, sys
path, n, limits = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
lines = open(path).read().split("\n")
block = [lines[n - 1]]
i = n - 2
while i >= 0 and lines[i].strip().startswith("//"):
    block.append(lines[i])
    i -= 1
for line in block:
    m = re.search(r"// ordering-justified\(([\w-]+)\):\s*\S", line)
    if m:
        print(m.group(1) if m.group(1) in limits else "unknown:" + m.group(1))
        break
PY
}

# The test binaries whose models run a file's code, first to last.
binaries_for() {
    case "$1" in
        */spsc.rs|*/spsc/*) echo spsc runtime ;;
        */role.rs|*/header.rs) echo spsc ;;
        */claims.rs|*/claims/*|*/lease.rs) echo repair ;;
        */mpmc.rs|*/mpmc/*) echo repair mpmc runtime ;;
        */byte_ring.rs|*/byte_ring/*) echo bytes repair request_reply ;;
        */broadcast/*) echo broadcast runtime ;;
        */hook.rs) echo async ;;
        *) echo spsc bytes repair mpmc broadcast async request_reply runtime ;;
    esac
}

# The cache key of a mutated file (see the header): computed before any
# mutation, from the files as they are in the tree.
key_for() { # file
    local bins
    bins=" $(binaries_for "$1") "
    {
        echo "mutated $1"
        echo "LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS"
        local inputs=(Cargo.toml Cargo.lock src loom-tests async/Cargo.toml async/src) p
        for p in build.rs .cargo rust-toolchain rust-toolchain.toml; do
            if [ -e "$p" ]; then inputs+=("$p"); fi
        done
        find "${inputs[@]}" -type f \
                ! -path "$cache" ! -path 'loom-tests/target/*' | LC_ALL=C sort |
            while IFS= read -r p; do
                if [[ "$p" =~ ^loom-tests/tests/([^/]+)\.rs$ ]] &&
                    [[ "$bins" != *" ${BASH_REMATCH[1]} "* ]]; then
                    continue
                fi
                printf '== %s %s\n' "$p" "$(sha256sum <"$p" | cut -c1-64)"
            done
    } | sha256sum | cut -c1-16
}

# A cached outcome of one site, "outcome<TAB>detail", or nothing.
cached() { # file line kind
    [ -f "$cache" ] || return 0
    awk -F'\t' -v f="$1" -v l="$2" -v k="$3" \
        '$1 == "site" && $2 == f && $3 == l && $4 == k { print $5 "\t" $6; exit }' "$cache"
}

build() { # binaries...
    local args=()
    for b in "$@"; do args+=(--test "$b"); done
    (cd loom-tests && cargo test --release -q --no-run "${args[@]}" >/dev/null 2>&1)
}

binary() { # name: the newest test executable of that name
    find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name "$1-*" \
        -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2
}

# Every model of the binaries needed runs once unmutated (each must pass:
# a failing baseline would make every mutant look caught), timed, so that
# each mutant runs the fastest models first. The times are kept for the
# same sources (a later call, e.g. for one file, reuses them).
needed=$(for f in "${files[@]}"; do binaries_for "$f"; done | tr ' ' '\n' | sort -u | tr '\n' ' ')
# shellcheck disable=SC2086
build $needed || { echo "the loom models do not build"; exit 1; }
sources=$(find src async/src loom-tests/tests -name '*.rs' | sort | xargs cat | sha256sum | cut -c1-16)
times="$CARGO_TARGET_DIR/loom-model-times-$sources"
for b in $needed; do
    grep -q " $b " "$times" 2>/dev/null && continue
    bin=$(binary "$b")
    echo "running the $b models unmutated"
    # shellcheck disable=SC2016
    "$bin" --list 2>/dev/null | sed -n 's/: test$//p' |
        xargs -P 2 -I{} bash -c '
            start=$(date +%s%N)
            if ! timeout 1800 "$1" --exact "$3" >/dev/null 2>&1; then
                echo "FAILS UNMUTATED: $2 $3" >&2; exit 255
            fi
            echo "$(( ($(date +%s%N) - start) / 1000000 )) $2 $3"' _ "$bin" "$b" {} >>"$times.new" ||
        { rm -f "$times.new"; echo "a model fails without any mutation"; exit 1; }
    cat "$times.new" >>"$times"; rm -f "$times.new"
done
sort -n "$times" | awk '{ printf "  %6.1f s  %s %s\n", $1 / 1000, $2, $3 }'

# Which files' cached outcomes hold for this tree.
declare -A key hit
stale=()
for f in "${files[@]}"; do
    key[$f]=$(key_for "$f")
    hit[$f]=false
    if $use_cache && [ -f "$cache" ] &&
        grep -qxF "$(printf 'file\t%s\t%s' "$f" "${key[$f]}")" "$cache"; then
        hit[$f]=true
        echo "cached: $f (key ${key[$f]}): its mutants' outcomes are read from $cache"
    else
        stale+=("$f")
        echo "not cached: $f (key ${key[$f]}): its mutants run now"
    fi
done
results=$(mktemp)
trap 'restore; rm -f "$results"' EXIT
record() { # file line kind outcome detail
    printf 'site\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" \
        "$(sed -n "${2}p" "$backup/$1" | sed 's/^[[:space:]]*//' | tr '\t' ' ')" >>"$results"
}

total=0; caught=0; missed=(); kept=()
while IFS=$'\t' read -r file line kind; do
    [ -n "$file" ] || continue
    total=$((total + 1))
    printf '%-16s %4s  %-20s ' "$file" "$line" "$kind"
    why=$(justification "$backup/$file" "$line")
    if [[ "$why" == unknown:* ]]; then
        echo "NOT JUSTIFIED: no such loom limit '${why#unknown:}'"
        missed+=("$file:$line $kind (unknown limit ${why#unknown:})")
        record "$file" "$line" "$kind" NOT-CAUGHT "unknown-limit:${why#unknown:}"
        continue
    fi
    if [ -z "${MUTATE_JUSTIFIED:-}" ] && [ -n "$why" ]; then
        echo "justified: $why (not run)"
        kept+=("$file:$line $kind [$why]")
        record "$file" "$line" "$kind" justified "$why"
        continue
    fi
    if ${hit[$file]}; then
        outcome=""; detail=""
        IFS=$'\t' read -r outcome detail <<<"$(cached "$file" "$line" "$kind")" || true
        case "$outcome" in
            caught)
                echo "caught by $detail (cached)"
                caught=$((caught + 1)) ;;
            survived-justified)
                echo "not caught, justified: $detail (cached)"
                kept+=("$file:$line $kind [$detail]") ;;
            NOT-CAUGHT)
                echo "NOT CAUGHT (cached)"
                missed+=("$file:$line $kind") ;;
            *)
                # The key matched, so the sites did too; a cache edited by
                # hand may not: count the site as missed, not as caught.
                echo "NOT CAUGHT: no outcome for this site in $cache under a matching key"
                missed+=("$file:$line $kind (missing from $cache)") ;;
        esac
        [ -z "$outcome" ] || record "$file" "$line" "$kind" "$outcome" "$detail"
        continue
    fi
    cp "$backup/$file" "$file"
    mutate "$file" "$line" "$kind"
    # Only the models that run the mutated file, fastest first whichever
    # binary they are in, one at a time, stopping at the first that fails.
    read -ra bins <<<"$(binaries_for "$file")"
    survived=true; by=""
    if ! build "${bins[@]}"; then
        survived=false; by="the compiler"
    fi
    for entry in $(sort -n "$times" | awk -v bs=" ${bins[*]} " 'index(bs, " " $2 " ") { print $2 ":" $3 }'); do
        $survived || break
        b=${entry%%:*}
        if ! timeout 1800 "$(binary "$b")" --exact "${entry#*:}" >/dev/null 2>&1; then
            survived=false; by="$b::${entry#*:}"
        fi
    done
    if $survived; then
        if [ -n "$why" ]; then
            echo "not caught, justified: $why"
            kept+=("$file:$line $kind [$why]")
            record "$file" "$line" "$kind" survived-justified "$why"
        else
            echo "NOT CAUGHT"
            missed+=("$file:$line $kind")
            record "$file" "$line" "$kind" NOT-CAUGHT -
        fi
    else
        echo "caught by $by"
        caught=$((caught + 1))
        record "$file" "$line" "$kind" caught "${by// /-}"
    fi
    cp "$backup/$file" "$file"
done <<< "$sites"

# --update-cache: this run's blocks replace those of the same files; the
# other files' blocks stay. Blocks are sorted by file, for readable diffs.
if $update; then
    new=$(mktemp)
    {
        echo "# Outcomes of loom-tests/mutate.sh's ordering mutants, read while a file's"
        echo "# key matches the tree (mutate.sh's header says what the key covers)."
        echo "# Written by: loom-tests/mutate.sh --update-cache. Do not edit by hand."
        echo "# site<TAB>file<TAB>line<TAB>mutant<TAB>outcome<TAB>caught by | limit<TAB>code"
        python3 - "$cache" "$results" "$(for f in "${files[@]}"; do printf '%s=%s\n' "$f" "${key[$f]}"; done)" <<'PY'
import os, sys
cache, results, keyed = sys.argv[1], sys.argv[2], sys.argv[3]
keys = dict(l.split("=", 1) for l in keyed.splitlines() if l)
blocks = {}
try:
    for line in open(cache):
        parts = line.rstrip("\n").split("\t")
        # Blocks of files no longer in the tree go.
        if parts[0] in ("file", "site") and parts[1] not in keys and os.path.exists(parts[1]):
            blocks.setdefault(parts[1], []).append(line.rstrip("\n"))
except FileNotFoundError:
    pass
for f, k in keys.items():
    blocks[f] = [f"file\t{f}\t{k}"]
for line in open(results):
    blocks[line.split("\t")[1]].append(line.rstrip("\n"))
for f in sorted(blocks):
    print()
    print("\n".join(blocks[f]))
PY
    } >"$new"
    cat "$new" >"$cache"; rm -f "$new"
    echo "wrote $cache (${#stale[@]} of ${#files[@]} files' mutants run); commit it"
elif [ ${#stale[@]} -gt 0 ] && $use_cache; then
    echo "${#stale[@]} file(s) had no cached outcomes for this tree. To record them:"
    echo "  loom-tests/mutate.sh --update-cache && git add $cache"
fi

echo
echo "$caught of $total ordering sites caught by the loom models; ${#kept[@]} justified; ${#missed[@]} missed"
for m in "${kept[@]}"; do echo "  justified: $m"; done
for m in "${missed[@]}"; do echo "  MISSED: $m"; done
[ ${#missed[@]} -eq 0 ]
