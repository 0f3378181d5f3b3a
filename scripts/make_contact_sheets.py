"""Contact sheets for the README: a 4x3 grid of OCR-verified samples per strategy, into docs/synth/<strategy>.png.

    python scripts/make_contact_sheets.py [--out docs/synth --size 512 --seed 0 --work /tmp/synth-sheets]

Runs one small `qwenimage synth` job per strategy (languages zh,en, OCR threshold 0.8) and keeps every PNG
under --max-kb (the grid is quantised to a dithered palette, then shrunk, when it would be larger).
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

from PIL import Image

from qwenimage.synth.job import MIX, SynthJob, parse_weights
from qwenimage.synth.report import collect_cells, contact_sheet
from qwenimage.synth.runner import RunOptions, run_job


def save_under(sheet: Image.Image, path: Path, max_bytes: int) -> int:
    """Save as PNG, palette-quantised and then scaled down until it fits in max_bytes; returns the size."""
    candidates = [sheet, _palette(sheet)]
    while True:
        for image in candidates:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
            if buffer.tell() <= max_bytes:
                path.write_bytes(buffer.getvalue())
                return buffer.tell()
        sheet = sheet.resize((sheet.width * 9 // 10, sheet.height * 9 // 10), Image.Resampling.LANCZOS)
        candidates = [_palette(sheet)]


def _palette(image: Image.Image) -> Image.Image:
    """256 colours (median cut) with Floyd-Steinberg dithering, so photo gradients do not band."""
    palette = image.quantize(256, method=Image.Quantize.MEDIANCUT)
    return image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/synth"))
    parser.add_argument("--strategies", default=",".join(sorted(MIX)))
    parser.add_argument("--lang", default="zh,en")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--thumb", type=int, default=256)
    parser.add_argument("--max-kb", type=int, default=480)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="keep the job folders here (default: temporary)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    if args.work is not None:
        make_sheets(args, args.work)
        return
    with tempfile.TemporaryDirectory(prefix="synth-sheets-") as work:
        make_sheets(args, Path(work))


def make_sheets(args: argparse.Namespace, work: Path) -> None:
    cells_per_sheet = args.columns * args.rows
    for strategy in args.strategies.split(","):
        job = SynthJob(count=cells_per_sheet, strategies={strategy: 1.0}, languages=parse_weights(args.lang, "lang"),
                       width=args.size, height=args.size, seed=args.seed, shard_size=cells_per_sheet)
        run_job(job, work / strategy, RunOptions(workers=args.workers, report_samples=0))
        cells = collect_cells(job, work / strategy, cells_per_sheet)[strategy]
        size = save_under(contact_sheet(cells, args.columns, args.thumb), args.out / f"{strategy}.png",
                          args.max_kb * 1024)
        print(f"{args.out / strategy}.png: {len(cells)} samples, {size // 1024} KB")


if __name__ == "__main__":
    main()
