#!/usr/bin/env bash
# One device call that measures and checks the GEMM engine (docs/performance.md, session 5):
#   bash .gpu-engine/remote.sh bash tools/engine-check.sh [quick]
# Writes at most 6 files under $OUT (the device tool returns 8). Each step's compile warnings
# (Dawn's "deprecated builtin" for subgroupMatrixStore) are filtered out of the logs.
set -uo pipefail
out=${OUT:-/tmp/engine-check}
mkdir -p "$out"
quiet() { grep -v "warning\|deprecated\|\^\^\|subgroupMatrix\|Compilation log\|^$\|Warning"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
cat dist/build-info.json >> "$out/card.txt" 2>/dev/null || true
# 1. Dense 8192³ through the engine, robust and not (the first two figures).
node tools/gemm-bench.mjs --only project-dense,vec-128x128-k64,scalar-128x128-k64,vec-128x128-k32-s2,vec-64x128-k32-s2,vec-64x128-k64,simt-f32-4096 2>&1 | quiet | tee "$out/dense.txt"
node tools/gemm-bench.mjs --no-robustness --only project-dense,vec-128x128-k64,scalar-128x128-k64,vec-128x128-k32-s2 2>&1 | quiet | tee -a "$out/dense.txt"
# 2. zero-buffer at conf4: per kernel, then the step (bench also measures the ceilings).
node bin/run.js profile --preset moeblaze-conf4 --dtype f16 --impl zero-buffer 2>&1 | quiet | tee "$out/profile-conf4.txt"
node bin/run.js bench --preset moeblaze-conf4 --dtype f16 --impl zero-buffer --max-time 2 2>&1 | quiet | tee "$out/bench-conf4.txt"
node bin/run.js bench --preset fine-64 --dtype f16 --impl zero-buffer --max-time 2 2>&1 | quiet | tee "$out/bench-fine64.txt"
[ "${1:-}" = quick ] && exit 0
# 3. Every strategy on the edge grid against float64, real intrinsics.
node bin/run.js verify --dtype f16 --gemm subgroup-matrix 2>&1 | quiet | tee "$out/verify-f16-subgroup-matrix.log"
