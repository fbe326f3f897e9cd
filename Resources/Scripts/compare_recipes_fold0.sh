#!/usr/bin/env bash
# Fold 0 of the LGG cross-validation: small-cnn vs small-cnn-dilated, with and without test-time fusion,
# at two thresholds fixed a priori (README "Finer CAMs"). Run from the folder that holds runs/.
set -e
for model in lgg lgg-dilated; do
  for thr in t=0.50 p95; do
    for tta in none flip; do
      extra=""; [ "$tta" = flip ] && extra="--tta-scales 1,1.25 --tta-flip"
      wssscam predict --manifest runs/lgg_fold0_test.json --checkpoint runs/$model/fold0/model.pt \
        --out runs/compare/$model-$thr-$tta --methods grad-cam,layer-cam,layer-cam-fused --threshold $thr --empty-when-negative \
        --progress none $extra > /dev/null
    done
  done
done
