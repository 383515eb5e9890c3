#!/usr/bin/env bash
# Ordering mutation check: every Acquire, Release, AcqRel and SeqCst in the
# ring and wakeup code is weakened to Relaxed, and every fence deleted, one
# site at a time; each mutant runs the loom tests. A site whose mutant
# passes is reported as NOT CAUGHT: it needs a test, a weaker ordering, or
# a comment saying why it stays.
#
#   loom-tests/mutate.sh            all sites but claims.rs (see below)
#   loom-tests/mutate.sh slot.rs    sites in one file
#   MUTATE_JUSTIFIED=1 loom-tests/mutate.sh   also run the justified sites
#
# Lines marked `// loom: not modelled` are skipped (code loom cannot run,
# such as the membarrier half of the asymmetric fence). A site whose comment
# just above says why loom "cannot catch" weakening it is reported as
# justified rather than missed; such a site cannot fail the check either way,
# so its mutant is only run (all models, the slowest case) when asked.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/loom}"
# claims.rs (the repair protocol: two dozen sites, each a rebuild and the
# repair models at three preemptions) is left out of the default run to keep
# CI under its time budget; check it on demand with `mutate.sh claims.rs`.
files=(src/slot.rs src/spsc.rs src/mpmc.rs src/record.rs src/byte_ring.rs src/wait.rs src/role.rs src/header.rs src/barrier.rs src/futex.rs)
if [ $# -gt 0 ]; then files=("${@/#/src/}"); fi

backup=$(mktemp -d)
restore() { for f in "${files[@]}"; do cp "$backup/$(basename "$f")" "$f"; done; rm -rf "$backup"; }
for f in "${files[@]}"; do cp "$f" "$backup/"; done
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

justified() { # file line: does the comment just above explain the site?
    sed -n "$(( $2 > 10 ? $2 - 10 : 1 )),$2p" "$1" | grep -q "cannot catch"
}

total=0; caught=0; missed=(); kept=()
while IFS=$'\t' read -r file line kind; do
    [ -n "$file" ] || continue
    total=$((total + 1))
    printf '%-16s %4s  %-20s ' "$file" "$line" "$kind"
    if [ -z "${MUTATE_JUSTIFIED:-}" ] && justified "$file" "$line"; then
        echo "justified in a comment (not run)"
        kept+=("$file:$line $kind")
        continue
    fi
    cp "$backup/$(basename "$file")" "$file"
    mutate "$file" "$line" "$kind"
    # Only the models that run the mutated file, one test binary at a time,
    # cheapest first, stopping at the first that fails: the repair models
    # before the rest of the MPMC models, as they fail fast.
    case "$file" in
        src/spsc.rs|src/role.rs|src/header.rs) runs=("--test spsc") ;;
        src/claims.rs) runs=("--test mpmc dead") ;;
        src/mpmc.rs) runs=("--test mpmc dead" "--test mpmc") ;;
        src/record.rs|src/byte_ring.rs) runs=("--test bytes") ;;
        *) runs=("--test spsc" "--test bytes" "--test mpmc dead" "--test mpmc") ;;
    esac
    survived=true
    for run in "${runs[@]}"; do
        # shellcheck disable=SC2086 # each run is a list of words
        if ! (cd loom-tests && timeout 900 cargo test --release -q $run >/dev/null 2>&1); then
            survived=false
            break
        fi
    done
    if $survived; then
        if justified "$backup/$(basename "$file")" "$line"; then
            echo "not caught, justified in a comment"
            kept+=("$file:$line $kind")
        else
            echo "NOT CAUGHT"
            missed+=("$file:$line $kind")
        fi
    else
        echo "caught"
        caught=$((caught + 1))
    fi
    cp "$backup/$(basename "$file")" "$file"
done <<< "$sites"

echo
echo "$caught of $total ordering sites caught by the loom tests; ${#kept[@]} justified; ${#missed[@]} missed"
for m in "${kept[@]}"; do echo "  justified: $m"; done
for m in "${missed[@]}"; do echo "  MISSED: $m"; done
[ ${#missed[@]} -eq 0 ]
