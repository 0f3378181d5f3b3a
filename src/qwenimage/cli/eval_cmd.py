"""`qwenimage eval`: text-rendering accuracy (text), run comparison (compare), the prompt suites (suites).

    qwenimage eval text --model DIR --suite en-words [--n 50 --size 512 --steps 30 --cfg 4 --batch-size 4]
    qwenimage eval text --images DIR --suite en-words,zh-chars     # files named by sample id: en-words-0007.png
    qwenimage eval text --oracle --suite en-words                  # plain renders of the expected texts
    qwenimage eval compare RUN_A RUN_B [--html compare.html]
    qwenimage eval suites [--write]

Metrics, suites and the folder contract: docs/eval/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from qwenimage.cli.eval_edit_vae import add_edit_parser, add_vae_parser
from qwenimage.cli.model_args import add_model_arguments, scheduler_overrides
from qwenimage.dtypes import DTYPES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate text rendering (and, from issue 12 part B, edits and the VAE)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = p.add_subparsers(dest="eval_command", metavar="TASK", required=True)
    _add_text(tasks)
    _add_compare(tasks)
    _add_suites(tasks)
    add_edit_parser(tasks)  # issue 12 part B: eval edit, eval vae (cli/eval_edit_vae.py)
    add_vae_parser(tasks)


# ---- eval text ------------------------------------------------------------------------------------------------
def _add_text(tasks) -> None:
    p = tasks.add_parser("text", help="OCR accuracy of rendered text on a prompt suite",
                         description="Generate a suite's images with our pipeline (--model), take them from a "
                                     "folder (--images: files named by sample id, .png/.jpg/.webp) or draw the "
                                     "expected texts plainly (--oracle); read them with OCR and score. Resumable: "
                                     "rerun with the same --out to continue.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="diffusers-layout model folder: generate with our pipeline")
    source.add_argument("--images", type=Path, help="folder of images made by anything, named by sample id")
    source.add_argument("--oracle", action="store_true", help="score plain renders of the expected texts")
    p.add_argument("--suite", action="append", required=True, metavar="NAME[,NAME]",
                   help="en-words, en-phrases, multi-region, long-text, zh-chars, zh-phrases, or words:PATH.txt "
                        "(an en-words-style suite from a word file); repeatable")
    p.add_argument("--n", type=int, default=None, help="only the first N samples of each suite")
    p.add_argument("--split", default="all", choices=["all", "dev", "test"], help="suite split (default all)")
    p.add_argument("--size", default=None, metavar="N|WxH", help="image size (default: each sample's, 1024)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps (--model)")
    p.add_argument("--cfg", type=float, default=4.0, help="true CFG scale, negative prompt ' ' (--model; 1: off)")
    p.add_argument("--seed", type=int, default=0, help="sample i of a suite uses seed + i")
    p.add_argument("--template", default=None, metavar='"... {text} ..."',
                   help="re-word every prompt around its expected text, e.g. 'a sign that says \"{text}\"' "
                        "(one-text suites; default: the suite's own wordings)")
    p.add_argument("--batch-size", type=int, default=1, help="requests per pipeline call")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="weights dtype (fp32 on CPU)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default outputs/eval/<suites>-<time>); an existing run is resumed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(p.add_argument_group("loading and sampling (--model; as in qwenimage generate)"))
    p.set_defaults(run=run_text)


def run_text(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from qwenimage.eval import report, text_run
    from qwenimage.eval.suites import load_suite, reword, select
    from qwenimage.ocr import OcrEngine

    names = [name.strip() for spec in args.suite for name in spec.split(",") if name.strip()]
    samples = [s for name in names for s in select(load_suite(name), args.n, args.split)]
    if args.template:
        samples = reword(samples, args.template)
    if args.batch_size < 1 or args.steps < 1:
        raise ValueError(f"--batch-size ({args.batch_size}) and --steps ({args.steps}) must be at least 1")
    settings = _settings(args, names)
    images = text_run.find_images(args.images, samples) if args.images else None
    generate = _generator(args, settings) if images is None else None
    stem = "+".join(name.replace(":", "-").replace("/", "-") for name in names)
    out = args.out or Path("outputs/eval") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = text_run.start_run(out, settings, _command(args, names), args.n)
    with tqdm(total=len(samples), desc="eval text", unit="sample", disable=args.no_progress) as bar:
        counts = text_run.run_samples(samples, out, OcrEngine(), generate=generate, images=images,
                                      batch_size=args.batch_size, progress=bar.update)
    records = text_run.load_records(out, samples)
    results = report.write_results(out, run, records)
    page = report.write_report(out, results, records)
    print(f"{counts['generated']} generated, {counts['scored']} scored, {counts['skipped']} already done")
    for suite, summary in results["suites"].items():
        m = summary["metrics"]
        print(f"{suite:<14} n={summary['n']:<4} exact match {_fmt(m['exact_match'])}  1-NED {_fmt(m['ned'])}"
              f"  char F1 {_fmt(m['char_f1'])}")
    print(f"results: {out / 'results.json'}\nreport:  {page}")
    return 0


def _fmt(metric: dict) -> str:
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


def _settings(args: argparse.Namespace, names: list[str]):
    from qwenimage.cli.synth_cmd import parse_size
    from qwenimage.eval.text_run import TextEvalSettings

    source = "model" if args.model else "images" if args.images else "oracle"
    return TextEvalSettings(suites=names, source=source, model=str(args.model) if args.model else None,
                            images=str(args.images) if args.images else None, split=args.split,
                            size=parse_size(args.size) if args.size else None, steps=args.steps, cfg=args.cfg,
                            seed=args.seed, dtype=args.dtype, template=args.template or None,
                            revision=args.revision, quantize=args.quantize, scheduler=scheduler_overrides(args) or None,
                            cache_threshold=args.cache_threshold or None)


def _generator(args: argparse.Namespace, settings):
    from qwenimage.eval.generation import oracle_generator, pipeline_generator

    if args.oracle:
        return oracle_generator(settings)
    import torch

    from qwenimage.pipelines import load_pipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype] if device != "cpu" else torch.float32  # half precision on CPU is slow
    pipe = load_pipeline(args.model, dtype=dtype, device=device, revision=settings.revision,
                         quantize=settings.quantize)
    if args.compile:
        pipe.compile()
    return pipeline_generator(pipe, settings)


def _command(args: argparse.Namespace, names: list[str]) -> str:
    """The command with every setting spelled out (defaults included)."""
    source = f"--model {args.model}" if args.model else f"--images {args.images}" if args.images else "--oracle"
    parts = [f"qwenimage eval text {source} --suite {','.join(names)}", f"--split {args.split}"]
    parts += [f"--n {args.n}"] if args.n else []
    parts += [f"--size {args.size}"] if args.size else []
    if args.model:
        parts += [f"--steps {args.steps} --cfg {args.cfg} --batch-size {args.batch_size} --dtype {args.dtype}"]
    parts += [f"--seed {args.seed}"] if not args.images else []
    parts += [f"--template {shlex.quote(args.template)}"] if args.template else []
    if args.model:
        parts += [f"--revision {args.revision}"] if args.revision else []
        parts += [f"--quantize {args.quantize}"] if args.quantize else []
        parts += ["--compile"] if args.compile else []
        parts += [f"--scheduler {shlex.quote(item)}" for item in args.scheduler]
        parts += [f"--cache-threshold {args.cache_threshold}"] if args.cache_threshold else []
    return " ".join(parts + ([f"--out {args.out}"] if args.out else []))


# ---- eval compare ---------------------------------------------------------------------------------------------
def _add_compare(tasks) -> None:
    p = tasks.add_parser("compare", help="two text-eval runs side by side, with significance",
                         description="Compare two `eval text` runs on the sample ids they share: A, B, B - A with "
                                     "a paired bootstrap 95% interval, significant when it excludes zero.")
    p.add_argument("run_a", type=Path, metavar="RUN_A", help="run folder (the baseline)")
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="run folder (the candidate)")
    p.add_argument("--html", type=Path, default=None, help="also write the comparison as an HTML page")
    p.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from qwenimage.eval.compare import compare_runs, format_comparison, write_comparison_html

    result = compare_runs(args.run_a, args.run_b)
    print(format_comparison(result))
    if args.html:
        write_comparison_html(args.html, result)
        print(f"html: {args.html}")
    return 0


# ---- eval suites ----------------------------------------------------------------------------------------------
def _add_suites(tasks) -> None:
    p = tasks.add_parser("suites", help="list the prompt suites (or rebuild their JSONL files)",
                         description="List the text-rendering suites. --write rebuilds data/suites/*.jsonl in the "
                                     "package (or --out DIR) from their sources with the fixed seed.")
    p.add_argument("--write", action="store_true", help="rebuild the suite files")
    p.add_argument("--out", type=Path, default=None, help="with --write: folder to write to instead of the package")
    p.set_defaults(run=run_suites)


def run_suites(args: argparse.Namespace) -> int:
    from qwenimage.eval.suites import SUITES, load_suite, write_suites

    if args.write:
        for path in write_suites(args.out):
            print(path)
        return 0
    for name, info in SUITES.items():
        samples = load_suite(name)
        print(f"{name:<14}{len(samples):>5}  {info.description}{'  (held-out words)' if info.heldout else ''}")
    print(f"{'words:PATH':<14}{'':>5}  one word of a word file per prompt, en-words templates")
    return 0


# ---- issue 12 part B: eval edit, eval vae ----------------------------------------------------------------------
