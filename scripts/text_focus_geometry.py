"""Measure where a model's edit signs put their text, for its qwenimage.json "text_focus" (pipelines/text_focus.py).

    python scripts/text_focus_geometry.py --pairs data/mini/edit-place-eval [--n 50] [--border 32]

Reads the target pictures of synth edit pairs drawn in the model's training layout (a synth output folder, e.g.
`qwenimage synth --config configs/synth/mini_edit_pairs_mono_eval.yaml ...`), runs OCR on each and prints the mean
and spread of its one line's box height (`line_height`) and left edge (`left`), in pixels: the same OCR boxes that
text_focus finds on a user's picture, so the two are mapped onto each other.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def target_images(folder: Path, n: int) -> list[Image.Image]:
    """The first `n` edit targets (key.png beside key.source.png) of a synth folder's shards or loose files."""
    images = []
    for shard in sorted(folder.rglob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".png") and not member.name.endswith(".source.png"):
                    images.append(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                    if len(images) == n:
                        return images
    for path in sorted(folder.rglob("*.png")):
        if not path.name.endswith(".source.png") and path.with_name(path.stem + ".source.png").is_file():
            images.append(Image.open(path).convert("RGB"))
            if len(images) == n:
                break
    return images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, required=True, help="a synth output folder of edit pairs")
    parser.add_argument("--n", type=int, default=50, help="pictures to measure (default 50)")
    parser.add_argument("--border", type=int, default=32,
                        help="white pixels added around each picture before OCR, so a box that would reach past the "
                             "canvas edge is not cut there (a 40-px CJK line's box starts left of the pen's margin; "
                             "default 32)")
    args = parser.parse_args()
    from PIL import ImageOps

    from qwenimage.ocr import OcrEngine

    images = target_images(args.pairs, args.n)
    if not images:
        raise SystemExit(f"no edit targets (key.png beside key.source.png) under {args.pairs}")
    ocr, heights, lefts = OcrEngine(), [], []
    for image in images:
        lines = ocr.read(ImageOps.expand(image, args.border, fill=(255, 255, 255))).lines
        if len(lines) == 1:
            box = np.asarray(lines[0].box) - args.border                                # [4, 2] canvas pixels
            heights.append(np.ptp(box[:, 1]))
            lefts.append(box[:, 0].min())
    if not heights:
        raise SystemExit("OCR read no single-line picture")
    print(f"{len(heights)} of {len(images)} pictures read as one line; canvas {images[0].width}x{images[0].height}")
    print(f"line_height {np.mean(heights):.1f} +- {np.std(heights):.1f} px, left {np.mean(lefts):.1f} +- "
          f"{np.std(lefts):.1f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
