#!/usr/bin/env bash
# Instructions and locked instructions per put and per get, one thread, warm, counted by
# callgrind: noise-free figures to track beside the timed ones of `shmq bench`
# (docs/benchmarks.md, "Instructions per call").
#
# For shmq (Queue::try_put / try_get_into, and try_get, which allocates), the Vyukov ring and the
# floor of `shmq bench`, at 8 and 64 bytes: the example `put_get` (crates/shmq-cli/examples)
# makes WARMUP put/get pairs, then COUNT more through functions that are never inlined
# (`measured_put_*`, `measured_get_*`). Each figure is one callgrind run with
# `--toggle-collect` on one of those functions, so it counts exactly the COUNT calls of that
# function and everything they call, and nothing of the warm-up:
#   - instructions: callgrind's total Ir / COUNT;
#   - locked instructions: callgrind's per-instruction execution counts (--dump-instr=yes)
#     joined with `objdump -d` of each object that ran: the executions of every `lock`-prefixed
#     instruction and of every `xchg` with a memory operand (locked without the prefix), / COUNT.
#     `mfence` executions are counted apart as fences.
#
# Run from anywhere in the repository:  scripts/instructions.sh
# Environment: SIZES (default "8 64"), WARMUP (2000), COUNT (10000), VERBOSE=1 (which locked
# instructions ran, with their functions). Needs valgrind (apt-get install valgrind), objdump,
# python3.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
SIZES=${SIZES:-"8 64"}
WARMUP=${WARMUP:-2000}
COUNT=${COUNT:-10000}
for tool in valgrind objdump python3; do
    command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is not installed" >&2; exit 1; }
done
cargo build --quiet --release -p shmq-cli --example put_get
BIN=target/release/examples/put_get
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for size in $SIZES; do
    for mech in shmq shmq_vec vyukov floor; do
        for op in put get; do
            fn=$mech
            # shmq_vec differs from shmq in its gets only: its puts are measured_put_shmq.
            [ "$mech/$op" = shmq_vec/put ] && fn=shmq
            valgrind --tool=callgrind --toggle-collect="*::measured_${op}_${fn}" \
                --dump-instr=yes --compress-pos=no --compress-strings=no \
                --callgrind-out-file="$OUT/$mech.$size.$op" \
                "$BIN" "$mech" "$size" "$WARMUP" "$COUNT" 2>"$OUT/log" ||
                { cat "$OUT/log" >&2; exit 1; }
        done
    done
done
python3 - "$OUT" "$COUNT" "$SIZES" "${VERBOSE:-0}" <<'PY'
import collections, re, subprocess, sys

out, count, sizes, verbose = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4] == "1"
MECHS = ["shmq", "shmq_vec", "vyukov", "floor"]

def executions(path):
    """Total Ir, and executions per (object, address), from a callgrind file whose positions
    are absolute instruction addresses (--dump-instr=yes --compress-pos=no)."""
    per = collections.Counter()
    ob, skip, total = None, False, None
    for line in open(path):
        if line.startswith("ob="):
            ob = line[3:].strip()
        elif line.startswith("calls="):
            skip = True  # the next cost line is the call's inclusive cost, not an instruction's
        elif line.startswith("totals:") or line.startswith("summary:"):
            total = int(line.split()[1])
        elif line.startswith("0x"):
            parts = line.split()
            if skip:
                skip = False
                continue
            per[(ob, int(parts[0], 16))] += int(parts[-1])
    return total, per

disassembly = {}

def instructions(obj):
    """address -> (function, instruction text) for every instruction of `obj`."""
    if obj not in disassembly:
        text = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", obj],
                              check=True, capture_output=True, text=True).stdout
        table, fn = {}, "?"
        for line in text.splitlines():
            m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
            if m:
                fn = m.group(1)
                continue
            m = re.match(r"^\s*([0-9a-f]+):\s+(.*)$", line)
            if m:
                table[int(m.group(1), 16)] = (fn, m.group(2).strip())
        disassembly[obj] = table
    return disassembly[obj]

def kind(insn):
    words = insn.split()
    if not words:
        return None
    if "lock" in words[:2]:
        return "locked"
    if words[0].startswith("xchg") and "(" in insn:
        return "locked"
    if words[0] == "mfence":
        return "fence"
    return None

results, details = {}, []
for size in sizes:
    for mech in MECHS:
        for op in ["put", "get"]:
            total, per = executions(f"{out}/{mech}.{size}.{op}")
            locked = fences = 0
            for (obj, addr), n in sorted(per.items()):
                table = instructions(obj)
                if addr not in table:
                    sys.exit(f"{obj}: no instruction at {addr:#x}: the join is wrong")
                fn, insn = table[addr]
                k = kind(insn)
                if k == "locked":
                    locked += n
                elif k == "fence":
                    fences += n
                if k:
                    details.append(f"  {mech:<8} {size:>3} B {op}: {n / count:4.2f} x {insn:<40} in {fn}")
            results[(mech, size, op)] = (total / count, locked / count, fences / count)

print(f"one thread, warm ({count} calls measured per figure); instructions (Ir) and locked "
      "instructions (lock-prefixed or xchg with memory) per call")
print(f"{'mechanism':<10} {'size':>5} {'put Ir':>8} {'get Ir':>8} {'put+get':>8} "
      f"{'put lock':>8} {'get lock':>8} {'fences':>6}")
for size in sizes:
    for mech in MECHS:
        (pi, pl, pf), (gi, gl, gf) = results[(mech, size, "put")], results[(mech, size, "get")]
        print(f"{mech:<10} {size:>5} {pi:8.1f} {gi:8.1f} {pi + gi:8.1f} {pl:8.2f} {gl:8.2f} {pf + gf:6.2f}")
if verbose:
    print("\nlocked instructions and fences executed, per call:")
    print("\n".join(details))
PY
