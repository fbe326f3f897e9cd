"""Cost of the ``segment`` stage's parts on generated data: pseudo-label generation, one U-Net epoch and the
U-Net's prediction per slice, beside a plain classifier forward for a ratio.

    OMP_NUM_THREADS=1 python Testing/benchmarks/bench_segment.py                       # 900 slices, 128 px, 5 channels
    OMP_NUM_THREADS=1 python Testing/benchmarks/bench_segment.py --slices 300 --size 96 --threads 2

Data: ``--slices`` generated 2D phantoms (:func:`WSSSCamLib.data.synthetic.synthetic_batch`, lesions in about
half of them) with ``--channels`` channels, at ``--size`` px (the U-Net's input), classifier input at
``--classifier-size`` px. Parts, each timed after one warm-up where it helps:

* pseudo-labels: the classifier's Grad-CAM of every slice (the study's CAM engine, resized to the slice's grid),
  thresholded at p95 with an ignore band of 0.1 and labelled (:func:`WSSSCamLib.study.pseudo_labels.label_slices`);
* one U-Net epoch (:func:`WSSSCamLib.training.segmentation.train_segmentation`, batch 16, flips), and one epoch of
  the 3D option over the same slices as stacks of ``--stack`` slices cut into windows of ``--depth``
  (:func:`WSSSCamLib.training.segmentation.depth_windows`, batch 2; ``segmentation.dims: 3``);
* U-Net prediction per slice (:func:`WSSSCamLib.inference.segmentation.slice_segmentation`, bilinear back to
  the native grid) against a plain classifier forward per slice (``small-cnn``, same batches).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=900)
    parser.add_argument("--size", type=int, default=128, help="U-Net input side (segmentation.size)")
    parser.add_argument("--classifier-size", type=int, default=96)
    parser.add_argument("--native", type=int, default=256, help="the slices' native side (predictions resized to it)")
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--stack", type=int, default=30, help="3D option: slices per generated case")
    parser.add_argument("--depth", type=int, default=16, help="3D option: slices per training window")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import torch.nn.functional as F

    from WSSSCamLib.cams import CamEngine
    from WSSSCamLib.data.synthetic import synthetic_batch
    from WSSSCamLib.inference.segmentation import slice_segmentation
    from WSSSCamLib.inference.volume_cams import slice_cams
    from WSSSCamLib.masks import Threshold, apply_threshold, threshold_cuts
    from WSSSCamLib.models.zoo import build_model
    from WSSSCamLib.study.config import SegmentationFilterSpec
    from WSSSCamLib.study.pseudo_labels import label_slices, labels_to_grid, uncertain_pixels
    from WSSSCamLib.training.segmentation import SegmentationTrainConfig, depth_windows, train_segmentation

    batch = synthetic_batch(args.slices, (args.native, args.native), seed=0)
    native = batch.images.repeat(1, args.channels, 1, 1)
    images = F.interpolate(native, size=(args.size, args.size), mode="bilinear", align_corners=False)
    small = F.interpolate(native, size=(args.classifier_size,) * 2, mode="bilinear", align_corners=False)
    classifier = build_model("small-cnn", args.channels, 2).eval()
    engine = CamEngine(classifier)
    threshold = Threshold.parse("p95")
    chunks = range(0, args.slices, args.batch_size)

    started = time.perf_counter()
    labels = []
    for start in chunks:
        part = small[start : start + args.batch_size]
        maps, probability = slice_cams(engine, part, ["grad-cam"], 1, (args.native, args.native))
        m = maps["grad-cam"]
        uncertain = uncertain_pixels([m], [threshold_cuts(m, threshold)], 0.1)
        made, _, _ = label_slices(
            apply_threshold(m, threshold),
            uncertain,
            batch.labels[start : start + args.batch_size],
            probability,
            SegmentationFilterSpec(),
        )
        labels.append(labels_to_grid(made, args.size))
    pseudo_seconds = time.perf_counter() - started
    labels = torch.cat(labels)

    config = SegmentationTrainConfig(epochs=1, batch_size=args.batch_size, device="cpu", seed=0)
    started = time.perf_counter()
    model, _ = train_segmentation(images, labels, config)
    epoch_seconds = time.perf_counter() - started
    windows = [
        depth_windows(images[s : s + args.stack], labels[s : s + args.stack], args.depth)
        for s in range(0, args.slices, args.stack)
    ]
    stacks, stack_labels = torch.cat([w for w, _ in windows]), torch.cat([t for _, t in windows])
    started = time.perf_counter()
    train_segmentation(stacks, stack_labels, SegmentationTrainConfig(epochs=1, batch_size=2, device="cpu", seed=0))
    epoch_3d_seconds = time.perf_counter() - started

    def timed(function, data: torch.Tensor) -> float:
        """Seconds per slice of ``function`` over ``data`` in batches, after one warm-up batch."""
        function(data[: args.batch_size])
        began = time.perf_counter()
        for start in chunks:
            function(data[start : start + args.batch_size])
        return (time.perf_counter() - began) / args.slices

    def segment(part):
        return slice_segmentation(model, part, (args.native, args.native), 2)

    def classify(part):
        with torch.inference_mode():
            return classifier(part)

    predict_seconds = timed(segment, images)
    classify_seconds = timed(classify, small)
    print(
        f"{args.slices} slices, {args.channels} channels, U-Net {args.size} px, classifier {args.classifier_size} px, "
        f"native {args.native} px, {args.threads} thread(s)"
    )
    print(
        f"pseudo-labels (Grad-CAM + p95 + band + labels): {pseudo_seconds:.2f} s, {1e3 * pseudo_seconds / args.slices:.1f} ms/slice"
    )
    print(f"one U-Net epoch (batch {args.batch_size}): {epoch_seconds:.2f} s")
    print(
        f"one 3D U-Net epoch ({len(stacks)} windows of {args.depth} slices from stacks of {args.stack}, batch 2): "
        f"{epoch_3d_seconds:.2f} s, {epoch_3d_seconds / epoch_seconds:.1f}x the 2D epoch"
    )
    print(
        f"U-Net prediction: {1e3 * predict_seconds:.2f} ms/slice; classifier forward: {1e3 * classify_seconds:.2f} ms/slice; "
        f"ratio {predict_seconds / classify_seconds:.1f}x"
    )


if __name__ == "__main__":
    main()
