#!/usr/bin/env bash
# The card figures issues 26, 27, 29 and 30 still need, in one device call (docs/performance.md,
# "Session 5"). Here: commit, `npm run build`, `bash ../shared/gpu/pack.sh`, then copy the anchor
# beside the bundle: `cp ../shared/anchors/torch_moe.py .gpu/`. On the device (carry [".gpu"]):
#   bash tools/card-run.sh            (about 9 minutes; each step is cut at its limit and saves what it has)
# Everything lands in $OUT/card.tgz; bench folders resume with `bench --resume DIR`.
set -u
W=/tmp/card-run; mkdir -p "$W"
here=$(cd "$(dirname "$0")/.." && pwd)
( cd "$W" && timeout 70 python3 "$here/.gpu/torch_moe.py" --configs moeblaze-conf4 fine-64 deepseek-v3-layer --impls torch-sorted torch-capacity --no-selfcheck --out "$W/torch.jsonl" > "$W/torch.txt" 2>&1 ); echo "torch exit $?"
bash "$here/.gpu/remote.sh" bash -c "
  timeout 80 node bin/run.js verify --dtype f16 --gemm subgroup-matrix > $W/verify-f16-subgroup-matrix.log 2>&1; echo verify-exit=\$?
  timeout -s INT 140 node bin/run.js bench --preset moeblaze-conf4 --dtype f16 --max-time 1 --out $W/moeblaze-conf4-f16 > $W/conf4.log 2>&1; echo conf4-exit=\$?
  timeout -s INT 80 node bin/run.js bench --preset fine-64 --dtype f16 --max-time 1 --out $W/fine-64-f16 > $W/fine64.log 2>&1; echo fine64-exit=\$?
  timeout -s INT 125 node bin/run.js bench --preset deepseek-v3-like-layer --dtype f16 --max-time 1 --out $W/deepseek-v3-like-layer-f16 > $W/deepseek.log 2>&1; echo deepseek-exit=\$?
"
tar czf "${OUT:-/tmp}/card.tgz" -C "$W" .
tail -n 12 "$W/torch.txt"; grep -h -A14 'strategy ' "$W/conf4.log" "$W/fine64.log" "$W/deepseek.log" | cut -c1-200 | head -60
