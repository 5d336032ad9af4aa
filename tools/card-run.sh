#!/usr/bin/env bash
# The card figures issues 26, 27, 29 and 30 need, in one device call (docs/performance.md).
# Here: commit, `npm run build`, `bash ../shared/gpu/pack.sh`, then copy the anchor beside the
# bundle: `cp ../shared/anchors/torch_moe.py .gpu/`. On the device (carry [".gpu"]):
#   bash tools/card-run.sh [engine|all|final]   (about 9½ minutes; each step is cut at its limit and saves what it has)
# `engine` runs only the engine's figures (dense variants, zero-buffer's profile and steps);
# `final` (about 9 minutes) the anchor at conf4 and fine-64, the default engine's dense product
# its diagnostics and warp-specialized variants (one also without robustness), every strategy at conf4 and fine-64, the per-kernel profile of zero-buffer,
# ScatterMoE and megablocks-grouped at conf4, docs/paper.md's SiLU sweep, and verify's edge grid
# at f16 on the real intrinsics (each step cut at its limit);
# `deepseek` (about 7 minutes) the anchor and every strategy at deepseek-v3-like-layer, checked;
# `paper` (about 6 minutes) docs/paper.md's speed sweep, `tune` at conf4 and the driver check of the other three.
# Everything lands in $OUT/card.tgz; bench folders resume with `bench --resume DIR`.
set -u
what=${1:-all}
W=/tmp/card-run; mkdir -p "$W"
here=$(cd "$(dirname "$0")/.." && pwd)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$W/card.txt"; cat "$here/dist/build-info.json" >> "$W/card.txt" 2>/dev/null
# Dawn's compile warnings (the deprecated subgroupMatrixStore form) out of every log.
quiet() { grep -v "warning\|deprecated\|\^\^\|subgroupMatrix\|Compilation log\|^$\|Warning"; }
export -f quiet
# Everything so far into $OUT/card.tgz (at most 8 files come back): after each step, so a call cut at its limit still returns what it measured.
save() { tar czf "${OUT:-/tmp}/card.tgz" -C "$W" . 2>/dev/null; }
export -f save
export W
# The PyTorch anchor in the same lease: anchor SECONDS IMPLS CONFIGS...
anchor() { ( cd "$W" && timeout "$1" python3 "$here/.gpu/torch_moe.py" --impls $2 --configs "${@:3}" --no-selfcheck --out "$W/torch.jsonl" > "$W/torch.txt" 2>&1 ); echo "torch exit $?"; }
# The edge grid of verify on the real intrinsics, one invocation per shape (the lavapipe grid's).
edge_grid() {
  for shape in "40 12 20 1 1" "50 16 24 6 1" "30 8 12 4 4" "96 16 16 64 8" "1 10 14 5 2" "131 67 69 7 3" \
               "60 20 36 5 2 --activation silu" "64 16 16 8 1 --skew zipf:30" "1000 200 264 8 2 --capacity-factor 1.25" \
               "131 67 69 7 3 --routing balanced" "300 16 24 2 2" "600 64 72 3 2"; do
    set -- $shape
    node bin/run.js verify --dtype f16 --gemm subgroup-matrix --tokens $1 --hidden $2 --ffn $3 --experts $4 --top-k $5 "${@:6}" 2>&1 | quiet
  done
}
export -f edge_grid
if [ "$what" = final ]; then
  anchor 30 torch-sorted moeblaze-conf4 fine-64; save
  bash "$here/.gpu/remote.sh" bash -c "
  timeout -s INT 170 node bin/run.js bench --preset moeblaze-conf4 --dtype f16 --max-time 1 --out $W/moeblaze-conf4-f16 > $W/conf4.log 2>&1; echo conf4-exit=\$?; save
  timeout -s INT 105 node bin/run.js bench --preset fine-64 --dtype f16 --max-time 1 --out $W/fine-64-f16 > $W/fine64.log 2>&1; echo fine64-exit=\$?; save
  timeout 50 node tools/gemm-bench.mjs --only project-dense,stage-once-128x128-k64,no-multiply-128x128-k64,fragments-once-128x128-k64,stage-once-128x256-k32,spec-128x128-k32-p4,spec-128x128-k16-p4,spec-64x128-k32-p4 2>&1 | quiet > $W/dense.txt; echo dense-exit=\$?
  timeout 20 node tools/gemm-bench.mjs --no-robustness --only project-dense,spec-128x128-k32-p4 2>&1 | quiet >> $W/dense.txt; echo dense-off-exit=\$?; save
  timeout 60 node bin/run.js profile --preset moeblaze-conf4 --dtype f16 --impl zero-buffer --impl scattermoe --impl megablocks-grouped --json > $W/profile-conf4.json 2> $W/profile-conf4.err; echo profile-exit=\$?; save
  timeout -s INT \${PAPER_S:-70} node bin/run.js bench --preset moeblaze-conf4 --dtype f16 --activation silu --top-k 1,2,4 --impl zero-buffer --impl megablocks --max-time 1 --out $W/paper-conf4-silu > $W/paper-silu.log 2>&1; echo paper-silu-exit=\$?; save
  timeout 50 bash -c edge_grid > $W/verify-f16-subgroup-matrix-grid.log 2>&1; echo grid-exit=\$?; save
  "
  tar czf "${OUT:-/tmp}/card.tgz" -C "$W" .
  cat "$W/card.txt"; tail -n 6 "$W/torch.txt"; cat "$W/dense.txt"; grep -c '│ pass' "$W/verify-f16-subgroup-matrix-grid.log"; grep -i 'fail\|mismatch\|error:' "$W/verify-f16-subgroup-matrix-grid.log" | head -5; tail -n 2 "$W/profile-conf4.err"; grep -A21 'strategy ' "$W/conf4.log" "$W/fine64.log" | grep '│ [a-z]' | cut -c1-120; tail -n 14 "$W/paper-silu.log" | cut -c1-150
  exit 0
fi
if [ "$what" = paper ]; then
  bash "$here/.gpu/remote.sh" bash -c "
  for act in silu swiglu; do timeout -s INT \${PAPER_S:-110} node bin/run.js bench --preset moeblaze-conf4 --dtype f16 --activation \$act --top-k 1,2,4 --impl zero-buffer --impl megablocks --max-time 1 --out $W/paper-conf4-\$act > $W/paper-\$act.log 2>&1; echo paper-\$act-exit=\$?; done
  timeout 60 node bin/run.js tune --preset moeblaze-conf4 --dtype f16 --out $W/tuning-conf4.json > $W/tune-conf4.txt 2>&1; echo tune-exit=\$?; save
  for s in megablocks tutel gshard; do timeout 45 node bin/run.js profile --preset moeblaze-conf4 --dtype f16 --impl \$s --driver-check --json > $W/driver-check-\$s.json 2> $W/driver-check-\$s.err; echo driver-\$s-exit=\$?; done
  "
  tar czf "${OUT:-/tmp}/card.tgz" -C "$W" .
  tail -n 18 "$W"/paper-*.log | cut -c1-170
  exit 0
fi
if [ "$what" = deepseek ]; then
  anchor 40 torch-sorted deepseek-v3-layer
  bash "$here/.gpu/remote.sh" bash -c "
  timeout -s INT \${DEEPSEEK_S:-420} node bin/run.js bench --preset deepseek-v3-like-layer --dtype f16 --max-time 1 --out $W/deepseek-v3-like-layer-f16 > $W/deepseek.log 2>&1; echo deepseek-exit=\$?
  "
  tar czf "${OUT:-/tmp}/card.tgz" -C "$W" .
  cat "$W/card.txt"; tail -n 6 "$W/torch.txt"; tail -n 22 "$W/deepseek.log" | cut -c1-170
  exit 0
fi
anchor 60 "torch-sorted torch-capacity" moeblaze-conf4 fine-64 deepseek-v3-layer
bash "$here/.gpu/remote.sh" bash -c "
  timeout 80 node tools/gemm-bench.mjs --only \${DENSE:-project-dense,vec-128x128-k32-s2,vec-128x256-k32,vec-64x128-k64,vec-64x128-k32-s2,unguarded-128x128-k64,always-128x128-k64,simt-f32-4096} 2>&1 | quiet > $W/dense.txt; echo dense-exit=\$?
  timeout 25 node tools/gemm-bench.mjs --toggles vulkan_use_buffer_robust_access_2,enable_integer_range_analysis_in_robustness --only project-dense,vec-128x256-k32 2>&1 | quiet >> $W/dense.txt; echo dense-tint-exit=\$?
  timeout 40 node tools/gemm-bench.mjs --no-robustness --only \${DENSE_OFF:-project-dense,vec-128x128-k32-s2,vec-128x256-k32,always-128x128-k64} 2>&1 | quiet >> $W/dense.txt; echo dense-off-exit=\$?
  timeout 50 node bin/run.js profile --preset moeblaze-conf4 --dtype f16 --impl zero-buffer 2>&1 | quiet > $W/profile-conf4.txt; echo profile-exit=\$?
  [ $what = engine ] && timeout -s INT 70 node bin/run.js bench --preset moeblaze-conf4 --dtype f16 --impl zero-buffer --max-time 2 --out $W/engine-conf4 > $W/engine-conf4.log 2>&1
  [ $what = engine ] && timeout -s INT 50 node bin/run.js bench --preset fine-64 --dtype f16 --impl zero-buffer --max-time 2 --out $W/engine-fine64 > $W/engine-fine64.log 2>&1
  [ $what = engine ] && exit 0
  timeout 60 node bin/run.js verify --dtype f16 --gemm subgroup-matrix 2>&1 | quiet > $W/verify-f16-subgroup-matrix.log; echo verify-exit=\$?
  timeout -s INT 110 node bin/run.js bench --preset moeblaze-conf4 --dtype f16 --max-time 1 --out $W/moeblaze-conf4-f16 > $W/conf4.log 2>&1; echo conf4-exit=\$?
  timeout -s INT 65 node bin/run.js bench --preset fine-64 --dtype f16 --max-time 1 --out $W/fine-64-f16 > $W/fine64.log 2>&1; echo fine64-exit=\$?
  timeout -s INT 90 node bin/run.js bench --preset deepseek-v3-like-layer --dtype f16 --max-time 1 --out $W/deepseek-v3-like-layer-f16 > $W/deepseek.log 2>&1; echo deepseek-exit=\$?
"
tar czf "${OUT:-/tmp}/card.tgz" -C "$W" .
cat "$W/card.txt"; tail -n 12 "$W/torch.txt"; cat "$W/dense.txt"; grep -h -A14 'strategy ' "$W"/*.log | cut -c1-200 | head -60
