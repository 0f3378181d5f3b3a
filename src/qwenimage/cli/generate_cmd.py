"""`qwenimage generate` (text-to-image) and `qwenimage edit` (edit / img2img / inpaint)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from PIL.PngImagePlugin import PngInfo

from qwenimage.dtypes import DTYPES
from qwenimage.pipelines.keep import DEFAULT_KEEP_THRESHOLD
from qwenimage.cli.model_args import add_model_arguments, scheduler_overrides
from qwenimage.sampling.schedule import MAX_STEPS

log = logging.getLogger(__name__)
STARTED = time.perf_counter()  # the command's start: the CLI imports this module first thing


def register(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="text-to-image",
                         description="Generate images from text. Repeat --prompt for a batch; the seeds are "
                                     "--seed, --seed+1, ... PNGs carry their parameters in a 'parameters' chunk.")
    _common(gen)
    gen.add_argument("--aspect", default=None, help="official aspect preset: 1:1 16:9 9:16 4:3 3:4 3:2 2:3")
    gen.set_defaults(run=run_generate)

    edit = sub.add_parser("edit", help="instruction editing, img2img and inpainting",
                          description="Edit images with an instruction. --image is repeatable (multi-image edit; "
                                      "the output size follows the last image). With --mask (inpaint) or "
                                      "--strength (img2img) the single --image is the picture to start from.")
    _common(edit)
    edit.add_argument("--image", action="append", required=True, type=Path, help="input image (repeatable)")
    edit.add_argument("--mask", type=Path, default=None, help="inpaint mask: white = repaint")
    edit.add_argument("--strength", type=float, default=None, help="img2img/inpaint strength in [0, 1] (0.6)")
    edit.add_argument("--keep-unedited", type=float, nargs="?", const=DEFAULT_KEEP_THRESHOLD, default=None,
                      metavar="T", help="instruction edits: keep the last input image's own pixels wherever the "
                                        "result's latents differ from its latents by less than T (mean over "
                                        f"channels; default {DEFAULT_KEEP_THRESHOLD} when given without a value): "
                                        "no drift or VAE loss outside the edited area")
    edit.add_argument("--text-focus", action="store_true",
                      help="instruction edits that quote the old text and the new one ('Change the text \"OPEN\" to "
                           "\"CLOSED\"'): find the old text by OCR, edit it on the model's own canvas at the size the "
                           "model writes text, and paste the result back (the model folder's qwenimage.json declares "
                           "that geometry; --keep-unedited's threshold picks what changed)")
    edit.set_defaults(run=run_edit)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=os.environ.get("QWENIMAGE_MODEL"),
                   help="diffusers-layout model folder, or a Hugging Face Hub repo id such as Qwen/Qwen-Image "
                        "(through the Hub cache; HF_HUB_OFFLINE=1 uses only the cache; an existing local path always "
                        "wins) (default: $QWENIMAGE_MODEL, else the built-in qwenimage-mini)")
    p.add_argument("--prompt", action="append", required=True, help="the prompt (repeat for a batch)")
    p.add_argument("--negative-prompt", default=None,
                   help="enables true CFG (the docs recommend ' '; default: the model's, if it names one)")
    p.add_argument("--cfg", type=float, default=None, help="true CFG scale (needs a negative prompt; default: "
                                                           "the model's, else 4)")
    p.add_argument("--width", type=int, default=None,
                   help="output width in pixels, a multiple of 16 within the model's size limits (default: the "
                        "model's native size, else 1024 for text-to-image; edits: from the last input image)")
    p.add_argument("--height", type=int, default=None,
                   help="output height in pixels (default: as for --width; with only one of the two, the other "
                        "follows the default aspect ratio)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"sampling steps, 1..{MAX_STEPS} (default: the model's, else 50)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed, 0 <= seed < 2**64; prompt i uses seed + i (default: %(default)s)")
    p.add_argument("--max-sequence-length", type=int, default=512,
                   help="text tokens kept per prompt, 1..1024 (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("outputs"),
                   help="output folder, created if missing (default: %(default)s). Files are named "
                        "COMMAND-SEED-INDEX.png (e.g. generate-3-0.png; INDEX is the prompt's position); an "
                        "existing file is never replaced: the next free name (generate-3-0-1.png, -2, ...) is used "
                        "and logged, unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace existing files of the same name in --out")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                   help="weights and activations (default: bf16 on accelerators, fp32 on CPU). On CPU, bf16 runs "
                        "where the CPU has AVX512-BF16 or AMX (else fp32) and fp16 runs as fp32; the PNG records "
                        "the dtype used")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps or xpu (default: cuda if available)")
    p.add_argument("--offload", action="store_true", help="sequential CPU offload of the components")
    p.add_argument("--vae-tiling", action="store_true", help="decode large images in tiles")
    p.add_argument("--cfg-batching", choices=["auto", "on", "off"], default="auto",
                   help="run the CFG cond/uncond passes as one batched forward (on) or one after the other (off); "
                        "auto: batched on GPUs, and on CPU for short sequences only (default: auto)")
    p.add_argument("--lora", action="append", default=[], metavar="FILE[:SCALE]",
                   help="LoRA adapter (diffusers, kohya or ComfyUI keys), repeatable; scale defaults to 1")
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="debug logging, and report the time to the first image and the peak memory")
    add_model_arguments(p)

FALLBACK_DEFAULTS = {"num_steps": 50, "true_cfg_scale": 4.0, "negative_prompt": None, "width": None, "height": None}


def resolve_model(args: argparse.Namespace) -> None:
    """--model, else $QWENIMAGE_MODEL (the flag's default), else the built-in qwenimage-mini (verified)."""
    if args.model is None:
        from qwenimage.mini.ship import default_model_dir

        args.model = default_model_dir()
    from qwenimage.weights.hub import resolve_model as resolve_source

    revision = getattr(args, "revision", None)  # commands without --revision (eval, serve) resolve the same way
    args.model_source = str(args.model) if revision is None else f"{args.model}@{revision}"
    args.model = resolve_source(args.model, revision)


def apply_model_defaults(args: argparse.Namespace, with_size: bool = True, edit: bool = False) -> None:
    """Fill the options left unset from the model folder's qwenimage.json "defaults" (for instruction edits,
    `edit`, its "edit_defaults" over them: a model trained to edit without a CFG branch samples edits at CFG 1),
    then the fallbacks."""
    from qwenimage.pipelines.loading import model_settings

    settings = model_settings(args.model)
    defaults = {**FALLBACK_DEFAULTS, **settings.get("defaults", {}), **(settings.get("edit_defaults", {}) if edit
                                                                          else {})}
    for option, key in (("steps", "num_steps"), ("cfg", "true_cfg_scale"), ("negative_prompt", "negative_prompt")):
        if getattr(args, option) is None:
            setattr(args, option, defaults[key])
    if with_size and args.width is None and args.height is None and getattr(args, "aspect", None) is None:
        args.width, args.height = defaults["width"], defaults["height"]


def run_generate(args: argparse.Namespace) -> int:
    from qwenimage.pipelines.request import GenerationRequest

    resolve_model(args)
    apply_model_defaults(args)
    requests = [GenerationRequest(prompt=p, negative_prompt=args.negative_prompt, width=args.width,
                                  height=args.height, aspect=args.aspect, num_steps=args.steps,
                                  true_cfg_scale=args.cfg, seed=args.seed + i,
                                  max_sequence_length=args.max_sequence_length)
                for i, p in enumerate(args.prompt)]
    return _run(args, requests)


def run_edit(args: argparse.Namespace) -> int:
    from qwenimage.pipelines.request import GenerationRequest

    resolve_model(args)
    from_image = args.mask is not None or args.strength is not None
    apply_model_defaults(args, with_size=False, edit=not from_image)  # edits take their size from the input image
    if from_image and len(args.image) != 1:
        raise ValueError(f"img2img/inpaint take exactly one --image, got {len(args.image)}")
    requests = []
    for i, prompt in enumerate(args.prompt):
        request = GenerationRequest(prompt=prompt, negative_prompt=args.negative_prompt, width=args.width,
                                    height=args.height, num_steps=args.steps, true_cfg_scale=args.cfg,
                                    seed=args.seed + i, max_sequence_length=args.max_sequence_length)
        for flag, value in (("--keep-unedited applies", args.keep_unedited), ("--text-focus applies", args.text_focus)):
            if from_image and value not in (None, False):
                raise ValueError(f"{flag} to instruction edits, not with --mask or --strength")
        if from_image:
            request.init_image, request.mask = args.image[0], args.mask
            request.strength = args.strength if args.strength is not None else 0.6
        else:
            request.images, request.keep_unedited = list(args.image), args.keep_unedited
            request.text_focus = args.text_focus
        requests.append(request)
    return _run(args, requests)


def _run(args: argparse.Namespace, requests) -> int:
    """Check everything that needs no weights, load the model, sample, then write the PNGs."""
    from qwenimage.devices import resolve_device
    from qwenimage.pipelines.loading import check_requests

    device = resolve_device(args.device)
    loras = [_checked_lora(spec) for spec in args.lora]
    scheduler = scheduler_overrides(args)
    for request in requests:
        request.scheduler = dict(scheduler)
    for request in requests:
        request.cache_threshold = args.cache_threshold
    check_requests(args.model, requests)
    _prepare_out_folder(args.out)
    pipe = _load(args, device, loras)
    results = _sample(pipe, requests)
    for index, result in enumerate(results):
        path = output_path(args.out / f"{args.command}-{result.seed}-{index}.png", overwrite=args.overwrite)
        try:
            save_png(result.image, path, _parameters(result.request, args, pipe.dtype))
            if index == 0 and getattr(args, "verbose", False):
                report_cold_start(device)
        except BaseException:
            if not args.overwrite:
                path.unlink(missing_ok=True)  # the empty file output_path claimed
            raise
        print(path)
    return 0


def _load(args: argparse.Namespace, device, loras: list[tuple[Path, float]]):
    from qwenimage.pipelines.loading import load_pipeline

    dtype = cli_dtype(args.dtype, device)
    pipe = load_pipeline(args.model, dtype=dtype, device=device, offload=args.offload, vae_tiling=args.vae_tiling,
                         cfg_batching={"auto": None, "on": True, "off": False}[args.cfg_batching],
                         quantize=args.quantize)
    for path, scale in loras:
        pipe.load_lora(path, scale)
    if args.compile:
        pipe.compile()
    return pipe


def cli_dtype(name: str | None, device):
    """--dtype on `device`: None is bf16 on accelerators and fp32 on CPU; on CPU bf16 needs hardware bf16
    (AVX512-BF16 / AMX: emulated, it is many times slower than fp32) and fp16 always runs as fp32."""
    import torch

    from qwenimage.devices import cpu_has_bf16

    if device.type != "cpu":
        return DTYPES[name or "bf16"]
    if name == "bf16" and not cpu_has_bf16():
        log.warning("--dtype bf16: this CPU has no AVX512-BF16 or AMX, so bf16 would be emulated; using fp32")
    return torch.bfloat16 if name == "bf16" and cpu_has_bf16() else torch.float32


def report_cold_start(device) -> None:
    """--verbose: seconds from the command's start to the first PNG on disk, and the peak memory so far."""
    import resource

    import torch

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    line = f"time to first image: {time.perf_counter() - STARTED:.2f} s; peak RSS: {peak_rss / 2**20:.0f} MiB"
    if device.type == "cuda":
        line += f"; peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
    print(line, file=sys.stderr)


def _sample(pipe, requests) -> list:
    from tqdm import tqdm

    from qwenimage.sampling.sampler import start_index

    total = sum(r.num_steps - start_index(r.num_steps, r.start_strength()) for r in requests)
    bar = None

    def progress(step: int, steps: int) -> None:  # the bar starts with the first step, after all checks passed
        nonlocal bar
        bar = bar or tqdm(total=total, desc="sampling", unit="step")
        bar.update(1)

    try:
        return pipe.generate(requests, progress=progress)
    finally:  # also on Ctrl-C, so the message after it starts on a clean line
        if bar is not None:
            bar.close()


def _checked_lora(spec: str) -> tuple[Path, float]:
    path, scale = parse_lora_spec(spec)
    if not path.is_file():
        raise ValueError(f"LoRA file not found: {path} (from --lora {spec})")
    return path, scale


def _prepare_out_folder(out: Path) -> None:
    """Create --out now, so that a bad folder fails before loading and sampling, not after."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the output folder {out}: {err.strerror or err}") from err
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to the output folder {out}: permission denied")


def output_path(path: Path, overwrite: bool = False) -> Path:
    """`path`, or with --overwrite off and `path` taken, the first free `stem-1.png`, `stem-2.png`, ... (logged).
    The free name is claimed with an exclusive create, so two runs at once never pick the same one."""
    if overwrite:
        return path
    for n in range(10_000):
        candidate = path if n == 0 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        if n:
            log.info("%s exists; writing %s instead (--overwrite replaces it)", path, candidate.name)
        return candidate
    raise ValueError(f"{path}: no free file name left beside it; clean up {path.parent} or pass --overwrite")


def parse_lora_spec(spec: str) -> tuple[Path, float]:
    """'style.safetensors:0.8' -> (path, 0.8); without a numeric suffix the scale is 1."""
    path, sep, scale = spec.rpartition(":")
    try:
        return (Path(path), float(scale)) if sep else (Path(spec), 1.0)
    except ValueError:
        return Path(spec), 1.0


def _parameters(request, args: argparse.Namespace, dtype) -> dict:
    """What made the image: the request's values and the dtype it actually ran in (fp32 on CPU, say)."""
    from qwenimage.pipelines.request import Task

    names = {value: name for name, value in DTYPES.items()}
    parameters = {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "seed": request.seed,
                  "steps": request.num_steps, "true_cfg_scale": request.true_cfg_scale, "task": request.task.value,
                  "model": getattr(args, "model_source", str(args.model)),
                  "dtype": names.get(dtype, str(dtype).removeprefix("torch.")),
                  "lora": args.lora}
    if request.scheduler:
        parameters["scheduler"] = request.scheduler
    if request.task in (Task.IMG2IMG, Task.INPAINT):  # strength means nothing to the other tasks
        parameters["strength"] = request.strength
    if request.cache_threshold:
        parameters["cache_threshold"] = request.cache_threshold
    if request.keep_unedited is not None:
        parameters["keep_unedited"] = request.keep_unedited
    if request.text_focus:
        parameters["text_focus"] = True
    if getattr(args, "quantize", None):
        parameters["quantize"] = args.quantize
    return parameters


def save_png(image, path: Path, parameters: dict) -> None:
    """Write a PNG atomically with the generation parameters as a JSON text chunk named 'parameters'."""
    info = PngInfo()
    info.add_text("parameters", json.dumps({**parameters, "width": image.width, "height": image.height}))
    tmp = path.with_name(path.name + ".tmp")
    try:
        image.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
