#!/usr/bin/env bash
# Gates a submission on the committed lavapipe baseline: runs a small benchmark sweep (about
# 2 minutes on 2 cores) and compares it with reports/baselines/lavapipe-quick.json. Memory is
# exact (exit 3 on MEM+). Speed fails too (exit 3 on SLOWER), judged on what a busy shared machine
# cannot move: each strategy's step time over zero-buffer's, timed pair by pair in the same run,
# and the GEMM-ceiling fraction; absolute times are shown, gated only with --absolute-speed (two runs drift apart
# even on an idle machine: docs/design.md#gate-verdicts). Pass --advisory-speed to report speed without failing on it.
#
#   .ci/gate.sh                     gate (exit 0 pass, 3 regression, 1/2/4 tool errors)
#   .ci/gate.sh --update-baseline   also replace the baseline with this run (says so; commit it)
#
# Extra arguments go to `moeblaze gate`. The sweep routes through a strong skew (zipf:3), so
# the expert loads, and with them every buffer size, cannot move with float rounding.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BASELINE=reports/baselines/lavapipe-quick.json
# The baseline was made with exactly this sweep: change the two together (--update-baseline).
SWEEP=(--adapter llvmpipe --skew zipf:3 --experts 4,8 --top-k 1,2 --tokens 256 --hidden 32 --ffn 64
  --warmup 1 --min-samples 15 --max-time 0.5 --noise-target 5%)

# lavapipe on the calling thread: its worker threads wait on each other at every dispatch, and a
# busy machine stretches those waits more for strategies with more dispatches, which no same-run
# ratio cancels. Part of the testbed fingerprint; the baseline was made with it too.
export LP_NUM_THREADS=0

if [ ! -f dist/commands/gate.js ] || [ ! -f dist/commands/bench.js ]; then npm run build; fi

out=$(mktemp -d "${TMPDIR:-/tmp}/moeblaze-gate.XXXXXX")
trap 'rm -rf "$out"' EXIT

echo "== benchmark: moeblaze bench ${SWEEP[*]}"
# The bench table goes to a file: the gate's table below says everything the gate decides on.
node bin/run.js bench "${SWEEP[@]}" --out "$out" >"$out/bench.txt"

echo "== gate: memory exact, speed by same-run ratios, against $BASELINE"
node bin/run.js gate --baseline "$BASELINE" --current "$out/results.json" "$@"
