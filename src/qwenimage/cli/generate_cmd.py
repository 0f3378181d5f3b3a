"""`qwenimage generate` (text-to-image) and `qwenimage edit` (edit / img2img / inpaint)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from PIL.PngImagePlugin import PngInfo

from qwenimage.dtypes import DTYPES
from qwenimage.sampling.schedule import MAX_STEPS

log = logging.getLogger(__name__)


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
    edit.set_defaults(run=run_edit)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=os.environ.get("QWENIMAGE_MODEL"),
                   help="diffusers-layout model folder (default: $QWENIMAGE_MODEL, else the built-in qwenimage-mini)")
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
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16",
                   help="weights and activations (default: %(default)s; fp32 on CPU, which the PNG records)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps or xpu (default: cuda if available)")
    p.add_argument("--offload", action="store_true", help="sequential CPU offload of the components")
    p.add_argument("--vae-tiling", action="store_true", help="decode large images in tiles")
    p.add_argument("--cfg-batching", choices=["auto", "on", "off"], default="auto",
                   help="run the CFG cond/uncond passes as one batched forward (on) or one after the other (off); "
                        "auto: batched on GPUs, and on CPU for short sequences only (default: auto)")
    p.add_argument("--lora", action="append", default=[], metavar="FILE[:SCALE]",
                   help="LoRA adapter (diffusers, kohya or ComfyUI keys), repeatable; scale defaults to 1")


FALLBACK_DEFAULTS = {"num_steps": 50, "true_cfg_scale": 4.0, "negative_prompt": None, "width": None, "height": None}


def resolve_model(args: argparse.Namespace) -> None:
    """--model, else $QWENIMAGE_MODEL (the flag's default), else the built-in qwenimage-mini (verified)."""
    if args.model is None:
        from qwenimage.mini.ship import default_model_dir

        args.model = default_model_dir()


def apply_model_defaults(args: argparse.Namespace, with_size: bool = True) -> None:
    """Fill the options left unset from the model folder's qwenimage.json "defaults", then the fallbacks."""
    from qwenimage.pipelines.loading import model_settings

    defaults = {**FALLBACK_DEFAULTS, **model_settings(args.model).get("defaults", {})}
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
    apply_model_defaults(args, with_size=False)  # edits take their size from the (last) input image
    from_image = args.mask is not None or args.strength is not None
    if from_image and len(args.image) != 1:
        raise ValueError(f"img2img/inpaint take exactly one --image, got {len(args.image)}")
    requests = []
    for i, prompt in enumerate(args.prompt):
        request = GenerationRequest(prompt=prompt, negative_prompt=args.negative_prompt, width=args.width,
                                    height=args.height, num_steps=args.steps, true_cfg_scale=args.cfg,
                                    seed=args.seed + i, max_sequence_length=args.max_sequence_length)
        if from_image:
            request.init_image, request.mask = args.image[0], args.mask
            request.strength = args.strength if args.strength is not None else 0.6
        else:
            request.images = list(args.image)
        requests.append(request)
    return _run(args, requests)


def _run(args: argparse.Namespace, requests) -> int:
    """Check everything that needs no weights, load the model, sample, then write the PNGs."""
    from qwenimage.devices import resolve_device
    from qwenimage.pipelines.loading import check_requests

    device = resolve_device(args.device)
    loras = [_checked_lora(spec) for spec in args.lora]
    check_requests(args.model, requests)
    _prepare_out_folder(args.out)
    pipe = _load(args, device, loras)
    results = _sample(pipe, requests)
    for index, result in enumerate(results):
        path = output_path(args.out / f"{args.command}-{result.seed}-{index}.png", overwrite=args.overwrite)
        try:
            save_png(result.image, path, _parameters(result.request, args, pipe.dtype))
        except BaseException:
            if not args.overwrite:
                path.unlink(missing_ok=True)  # the empty file output_path claimed
            raise
        print(path)
    return 0


def _load(args: argparse.Namespace, device, loras: list[tuple[Path, float]]):
    import torch

    from qwenimage.pipelines.loading import load_pipeline

    dtype = DTYPES[args.dtype]
    if device.type == "cpu" and dtype != torch.float32:
        dtype = torch.float32  # half precision on CPU is slow and poorly supported
    pipe = load_pipeline(args.model, dtype=dtype, device=device, offload=args.offload, vae_tiling=args.vae_tiling,
                         cfg_batching={"auto": None, "on": True, "off": False}[args.cfg_batching])
    for path, scale in loras:
        pipe.load_lora(path, scale)
    return pipe


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
                  "model": str(args.model), "dtype": names.get(dtype, str(dtype).removeprefix("torch.")),
                  "lora": args.lora}
    if request.task in (Task.IMG2IMG, Task.INPAINT):  # strength means nothing to the other tasks
        parameters["strength"] = request.strength
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
