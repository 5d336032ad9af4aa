#!/usr/bin/env bash
# A moeblaze sweep as a Slurm array job (README "Sweeps on many machines"): each array task runs
# one slice of the sweep with `bench --shard i/n` on one GPU; a task that is requeued or was cut
# off by its time limit continues its slice with --resume. Only the CLI is used. From a built
# checkout (npm ci && npm run build), submit the array, then the merge after every task ended:
#
#   jid=$(sbatch --parsable docs/ci/slurm-shards.sh)
#   sbatch --dependency=afterany:$jid --wrap 'npx moeblaze merge sweep/shard-* --out sweep/all'
#
# merge refuses (exit 2) while a slice is missing or unfinished and names it: rerun that task
# (sbatch --array=<i> docs/ci/slurm-shards.sh) and merge again.
#SBATCH --job-name=moeblaze-sweep
#SBATCH --array=1-8
#SBATCH --gpus=1
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=moeblaze-shard-%a.log
set -euo pipefail

SWEEP=(--preset moeblaze-paper)
# The number of shards: the size of --array above, written out so that rerunning one task
# (sbatch --array=3 …) still runs slice 3 of 8.
n=8
i=${SLURM_ARRAY_TASK_ID}
out=sweep/shard-$i

if [ -f "$out/results.json" ]; then
  npx moeblaze bench --resume "$out"
else
  npx moeblaze bench "${SWEEP[@]}" --shard "$i/$n" --out "$out"
fi
