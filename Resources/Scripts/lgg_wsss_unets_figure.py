"""README figure (Resources/Screenshots/lgg_wsss_unets.png): held-out LGG slices of fold 0 with the reference
and the segments of the LGG WSSS runs' U-Nets. Run from the folder that holds runs/lgg-wsss, runs/lgg-wsss-e30 and
runs/lgg-wsss-3d (the 3D U-Net runs through the same predict path, over the case's stack):

    python Resources/Scripts/lgg_wsss_unets_figure.py ../shared/data/lgg-flair-dev Resources/Screenshots/lgg_wsss_unets.png

Rule: the first three held-out cases of fold 0 in the folds file's order; per case the slice with the largest
reference lesion (a figure choice, no number depends on it)."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from WSSSCamLib.data.datasets import load_case, read_decathlon
from WSSSCamLib.inference.segmentation import volume_segmentation
from WSSSCamLib.training.checkpoint import load_checkpoint

torch.set_num_threads(1)
dataset = read_decathlon(sys.argv[1])
fold0 = json.load(open("runs/lgg-wsss/folds.json"))["folds"][0][:3]
networks = [
    ("pseudo-label U-Net, 15 epochs", "runs/lgg-wsss/segment/pseudo-label/fold0/model.pt"),
    ("pseudo-label U-Net, 30 epochs", "runs/lgg-wsss-e30/segment/pseudo-label/fold0/model.pt"),
    ("pseudo-label 3D U-Net, 30 epochs", "runs/lgg-wsss-3d/segment/pseudo-label/fold0/model.pt"),
    ("supervised U-Net, 30 epochs", "runs/lgg-wsss-e30/segment/supervised/fold0/model.pt"),
]
models = [(name, *load_checkpoint(path, device="cpu")) for name, path in networks]
by_id = {c.case_id: c for c in dataset.cases}
fig, axes = plt.subplots(len(fold0), 1 + len(models), figsize=(3.2 * (1 + len(models)), 3.4 * len(fold0)))
for row, case_id in enumerate(fold0):
    loaded = load_case(by_id[case_id])
    reference = loaded.mask.array > 0  # K x J x I
    k = int(reference.reshape(reference.shape[0], -1).sum(1).argmax())
    flair = loaded.image.array[1, k]
    masks = [volume_segmentation(loaded.image, model, card, device="cpu").mask[k].numpy() for _, model, card in models]
    panels = [("FLAIR + reference", None)] + [(name, m) for (name, _, _), m in zip(models, masks)]
    for col, (title, mask) in enumerate(panels):
        ax = axes[row, col]
        ax.imshow(flair, cmap="gray")
        ax.contour(reference[k], levels=[0.5], colors="lime", linewidths=1.2)
        if mask is not None:
            ax.imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.5)
            inter = (mask & reference[k]).sum()
            dice = 2 * inter / max(mask.sum() + reference[k].sum(), 1)
            title = f"{title}\nDice {dice:.2f}"
        ax.set_title(title if row == 0 or mask is not None else f"{case_id}\nslice {k}", fontsize=9)
        if col == 0:
            ax.set_title(f"{case_id}, slice {k}\nFLAIR, reference (green)", fontsize=9)
        ax.axis("off")
fig.suptitle("Held-out cases of fold 0: U-Net segments (red) and the reference (green)", fontsize=11)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=80)
print("written", sys.argv[2])
