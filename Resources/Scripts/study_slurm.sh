#!/bin/bash
# A WSSSCam study on a SLURM cluster: train per fold, map per case shard (and retrain per fold), (and train the pseudo-label / supervised U-Nets per fold), then one report.
#
#   sbatch --array=0-4 Resources/Scripts/study_slurm.sh train  study.yaml 5   # one fold per task
#   sbatch --array=0-7 --dependency=afterok:<train job id> Resources/Scripts/study_slurm.sh cams study.yaml 8
#   sbatch --array=0-4 --dependency=afterok:<train job id> Resources/Scripts/study_slurm.sh retrain study.yaml 5  # if filtered_retraining
#   sbatch --array=0-4 --dependency=afterok:<cams job id> Resources/Scripts/study_slurm.sh segment study.yaml 5  # if segmentation: one fold per task
#   sbatch --dependency=afterok:<cams (and segment) job id> Resources/Scripts/study_slurm.sh report study.yaml 1
#
# Every task writes into the configuration's output folder (a shared file system); finished work
# is never recomputed, so a failed or pre-empted task is simply submitted again. Under Slicer, replace
# `wssscam` by `Slicer --no-main-window --python-script Resources/Scripts/run_wssscam.py`.
#SBATCH --job-name=wssscam
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
#SBATCH --output=wssscam-%A_%a.log
set -euo pipefail
stage="$1"; config="$2"; shards="${3:-1}"
index="${SLURM_ARRAY_TASK_ID:-0}"
if [ "$stage" = "report" ]; then
    wssscam study "$config" --stages report --quiet
else
    wssscam study "$config" --stages "$stage" --shard "$index/$shards" --quiet
fi
