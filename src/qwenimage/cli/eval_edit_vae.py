"""`qwenimage eval edit` and `qwenimage eval vae`: argument parsing and the two runs (registered by eval_cmd.py).

    qwenimage eval edit --pairs DIR_OR_MANIFEST [--edited DIR] [--out DIR]
    qwenimage eval edit --suite text-edit --build DIR [--n 48 --size 512]
    qwenimage eval edit --suite text-edit --model DIR [--n 48 --size 512 --steps 30 --cfg 4] [--out DIR]
    qwenimage eval edit --suite text-edit --through-vae DIR [--n 48 --size 512] [--keep-unedited [T]] [--out DIR]
    qwenimage eval vae --model DIR [--images DIR] [--n 16] [--size 256] [--out DIR]
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from qwenimage.dtypes import DTYPES
from qwenimage.pipelines.keep import DEFAULT_KEEP_THRESHOLD

EDIT_HELP = """Edit consistency of (source, edited[, mask]) pairs: PSNR / SSIM / mean CIEDE2000 ΔE outside the
edited region, the global pixel shift (sub-pixel phase correlation) and, for pairs with a new_text, OCR of
that text inside the region. Pairs: a folder of ID.source.png, ID.edited.png[, ID.mask.png], or a JSONL
manifest (DIR/pairs.jsonl or a .jsonl file), or a synth run's edit pairs written with format: folder.
--suite text-edit builds synthetic ground-truth pairs (--build). With --suite or --pairs, --model edits the
sources with each pair's instruction and scores the edits (resumable); --through-vae scores the ground truth
after a round trip through a VAE: the ceiling of any edit model that draws through it. Writes results.json and
report.html to --out. See docs/eval/edit_vae.md."""

VAE_HELP = """VAE fidelity: reconstruct photos and synthetic text images through the model's VAE (encode, posterior
mode, decode) and report PSNR, SSIM and the OCR accuracy of the reconstructed text against the original's
known text. Writes results.json and report.html to --out. See docs/eval/edit_vae.md."""


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _languages(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="weights and activations (fp32 on CPU)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_edit_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edit", help="edit consistency of (source, edited[, mask]) pairs",
                       description=EDIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default=None, metavar="DIR_OR_MANIFEST", help="pairs to score")
    p.add_argument("--edited", type=Path, default=None, metavar="DIR",
                   help="score DIR/ID.png (another editor's outputs) instead of the pairs' edited images")
    p.add_argument("--suite", choices=["text-edit"], default=None, help="the synthetic text-edit suite")
    p.add_argument("--build", type=Path, default=None, metavar="DIR", help="with --suite: write its ground truth")
    p.add_argument("--model", type=Path, default=None, metavar="DIR",
                   help="with --suite or --pairs: edit the sources with each pair's instruction")
    p.add_argument("--through-vae", type=Path, default=None, metavar="DIR",
                   help="with --suite or --pairs: score the ground-truth edits reconstructed by this VAE (a pipeline folder "
                        "or a VAE folder): the best any edit model drawing through that VAE can score")
    p.add_argument("--n", type=_positive, default=48, help="suite pairs (default 48)")
    p.add_argument("--size", type=int, default=512, help="suite image side, a multiple of 16 (default 512)")
    p.add_argument("--lang", type=_languages, default=("en", "zh"), help="suite languages (default en,zh)")
    p.add_argument("--steps", type=_positive, default=30, help="sampling steps with --model (default 30)")
    p.add_argument("--cfg", type=float, default=4.0, help="true CFG scale with --model; 1 turns it off (4)")
    p.add_argument("--seed", type=int, default=0, help="seed of pair i's edit: seed + i (default 0)")
    p.add_argument("--batch-size", type=_positive, default=1, help="edits per pipeline call (default 1)")
    p.add_argument("--keep-unedited", type=float, nargs="?", const=DEFAULT_KEEP_THRESHOLD, default=None, metavar="T",
                   help="with --model: keep the source's pixels outside the area the edit changed (as in "
                        f"qwenimage edit; {DEFAULT_KEEP_THRESHOLD} without a value); with --through-vae: the "
                        "ceiling of such edits")
    p.add_argument("--text-focus", action="store_true",
                   help="with --model: edit each pair's quoted old text on the model's own canvas, found by OCR and "
                        "scaled to the size the model writes text, then paste it back (as in qwenimage edit)")
    p.add_argument("--no-ocr", action="store_true", help="skip the OCR of the new text")
    p.add_argument("--out", type=Path, default=Path("outputs/eval-edit"), help="results folder")
    _device_options(p)
    p.set_defaults(run=run_eval_edit)


def add_vae_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vae", help="VAE reconstruction fidelity (PSNR, SSIM, OCR of text)",
                       description=VAE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="pipeline folder (DIR/vae) or VAE folder")
    p.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="your photos instead of scikit-image's (NAME.txt beside an image: its text)")
    p.add_argument("--n", type=_positive, default=16, help="photos (at most) and synth text images (default 16)")
    p.add_argument("--size", type=int, default=256, help="image side, a multiple of the VAE factor (default 256)")
    p.add_argument("--seed", type=int, default=0, help="first seed of the text renders (default 0)")
    p.add_argument("--batch-size", type=_positive, default=8, help="images per VAE call (default 8)")
    p.add_argument("--no-ocr", action="store_true", help="skip OCR (PSNR and SSIM only)")
    p.add_argument("--out", type=Path, default=Path("outputs/eval-vae"), help="results folder")
    _device_options(p)
    p.set_defaults(run=run_eval_vae)


def _flags(args: argparse.Namespace, names: list[str]) -> list[str]:
    parts = []
    for name in names:
        value = getattr(args, name)
        if value is True:
            parts.append(f"--{name.replace('_', '-')}")
        elif value not in (None, False):
            value = ",".join(value) if isinstance(value, tuple) else value
            parts += [f"--{name.replace('_', '-')}", str(value)]
    return parts


def edit_command(args: argparse.Namespace) -> str:
    """The command with every setting that mattered spelled out (defaults included)."""
    if args.pairs is not None and args.model is not None:
        names = ["pairs", "model", "steps", "cfg", "seed", "batch_size", "keep_unedited", "text_focus", "dtype",
                 "no_ocr", "out"]
    elif args.pairs is not None and args.through_vae is not None:
        names = ["pairs", "through_vae", "keep_unedited", "dtype", "no_ocr", "out"]
    elif args.pairs is not None:
        names = ["pairs", "edited", "no_ocr", "out"]
    elif args.build is not None:
        names = ["suite", "build", "n", "size", "lang"]
    elif args.through_vae is not None:
        names = ["suite", "through_vae", "n", "size", "lang", "keep_unedited", "dtype", "no_ocr", "out"]
    else:
        names = ["suite", "model", "n", "size", "lang", "steps", "cfg", "seed", "batch_size", "keep_unedited",
                 "text_focus", "dtype", "no_ocr", "out"]
    return shlex.join(["qwenimage", "eval", "edit", *_flags(args, names)])


def vae_command(args: argparse.Namespace) -> str:
    names = ["model", "images", "n", "size", "seed", "batch_size", "dtype", "no_ocr", "out"]
    return shlex.join(["qwenimage", "eval", "vae", *_flags(args, names)])


def _device_and_dtype(args: argparse.Namespace):
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype]
    return device, (torch.float32 if device == "cpu" else dtype)


def run_eval_edit(args: argparse.Namespace) -> int:
    from qwenimage.eval.edit import format_summary, score_pairs, write_edit_report
    from qwenimage.eval.edit_pairs import read_pairs
    from qwenimage.eval.text_edit_suite import TextEditSuiteConfig, build_text_edit_pairs, write_suite
    from qwenimage.ocr import OcrEngine

    if (args.pairs is None) == (args.suite is None):
        raise ValueError("give either --pairs DIR_OR_MANIFEST or --suite text-edit")
    modes = [name for name in ("build", "model", "through_vae") if getattr(args, name) is not None]
    if args.pairs is not None and args.build is not None:
        raise ValueError("--build goes with --suite text-edit, not with --pairs")
    if args.keep_unedited is not None and args.model is None and args.through_vae is None:
        raise ValueError("--keep-unedited goes with --model DIR or --through-vae DIR")
    if args.text_focus and args.model is None:
        raise ValueError("--text-focus goes with --model DIR")
    if args.suite is not None:
        config = TextEditSuiteConfig(n=args.n, size=args.size, languages=args.lang)
        if len(modes) != 1:
            raise ValueError("--suite text-edit needs one of --build DIR (write the ground truth), --model DIR (edit "
                             "it) or --through-vae DIR (its VAE ceiling)")
        if args.build is not None:
            manifest = write_suite(build_text_edit_pairs(config), args.build)
            print(f"{config.n} text-edit pairs in {args.build} ({manifest.name}); score them with "
                  f"qwenimage eval edit --pairs {args.build}")
            return 0
        pairs = _edit_with_model(args, config) if args.model is not None else _vae_ceiling(args, config)
    elif len(modes) > 1:
        raise ValueError("give one of --model DIR or --through-vae DIR with --pairs, not both")
    elif modes and args.edited is not None:
        raise ValueError("--edited scores another editor's outputs; it does not go with --model or --through-vae")
    elif args.model is not None:
        pairs = _edit_with_model(args, None)
    elif args.through_vae is not None:
        pairs = _vae_ceiling(args, None)
    else:
        pairs = read_pairs(args.pairs, args.edited)
    ocr = None if args.no_ocr else OcrEngine()
    records, thumbs = score_pairs(pairs, ocr, progress=not args.no_progress)
    settings = {"pairs": args.pairs, "edited": args.edited, "suite": args.suite, "model": args.model,
                "through_vae": args.through_vae, "keep_unedited": args.keep_unedited,
                "text_focus": args.text_focus, "n": len(pairs),
                "ocr": not args.no_ocr}
    results = write_edit_report(args.out, records, thumbs, settings, edit_command(args))
    print(format_summary(results["summary"]))
    print(f"results.json and report.html in {args.out}")
    return 0


def _pairs_to_edit(args: argparse.Namespace, config):
    """(pairs, where they are): the suite's, built in OUT/suite on the first run (`config`), or --pairs."""
    from qwenimage.eval.edit_generate import SUITE_DIR, ensure_suite
    from qwenimage.eval.edit_pairs import read_pairs

    if config is None:
        return read_pairs(args.pairs), args.pairs
    return ensure_suite(args.out / SUITE_DIR, config), args.out / SUITE_DIR


def _edit_with_model(args: argparse.Namespace, config):
    from qwenimage.eval.edit_generate import EDITED_DIR, EditSampling, generate_edits
    from qwenimage.eval.edit_pairs import read_pairs
    from qwenimage.pipelines.loading import load_pipeline

    sampling = EditSampling(steps=args.steps, cfg=args.cfg, seed=args.seed, batch_size=args.batch_size,
                            keep_unedited=args.keep_unedited, text_focus=args.text_focus)
    if not args.model.is_dir():
        raise ValueError(f"--model {args.model}: no such folder")
    pairs, where = _pairs_to_edit(args, config)
    device, dtype = _device_and_dtype(args)
    pipe = load_pipeline(args.model, dtype=dtype, device=device)
    generate_edits(pipe, pairs, args.out / EDITED_DIR, sampling, progress=not args.no_progress)
    return read_pairs(where, edited_dir=args.out / EDITED_DIR)


def _vae_ceiling(args: argparse.Namespace, config):
    from qwenimage.eval.edit_generate import EDITED_DIR, reconstruct_edits
    from qwenimage.eval.edit_pairs import read_pairs
    from qwenimage.eval.vae import load_vae

    if not args.through_vae.is_dir():
        raise ValueError(f"--through-vae {args.through_vae}: no such folder")
    pairs, where = _pairs_to_edit(args, config)
    device, dtype = _device_and_dtype(args)
    vae = load_vae(args.through_vae, dtype=dtype, device=device)
    reconstruct_edits(vae, pairs, args.out / EDITED_DIR, progress=not args.no_progress,
                      keep_unedited=args.keep_unedited)
    return read_pairs(where, edited_dir=args.out / EDITED_DIR)


def run_eval_vae(args: argparse.Namespace) -> int:
    from qwenimage.eval.vae import evaluate_vae, format_summary, load_vae, vae_samples, write_vae_report

    device, dtype = _device_and_dtype(args)
    vae = load_vae(args.model, dtype=dtype, device=device)
    if args.size % vae.spatial_factor:
        raise ValueError(f"--size {args.size} is not a multiple of the VAE factor {vae.spatial_factor}")
    samples = vae_samples(args.n, args.size, args.seed, args.images)
    result = evaluate_vae(vae, samples, ocr=False if args.no_ocr else None, batch_size=args.batch_size,
                          keep_reconstructions=True, progress=not args.no_progress)
    settings = {"model": str(args.model), "images": None if args.images is None else str(args.images), "n": args.n,
                "size": args.size, "seed": args.seed, "dtype": str(dtype).removeprefix("torch."), "device": device}
    write_vae_report(args.out, samples, result, settings, vae_command(args))
    print(format_summary(result["summary"]))
    print(f"results.json and report.html in {args.out}")
    return 0
