"""Commands about model folders: `info` (preset sizes on the meta device), `check` (strict load of a folder),
`convert-vae` (original Wan-2.1 VAE file -> diffusers folder) and `tiny-model` (a random tiny pipeline)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from qwenimage.components import class_of_folder
from qwenimage.dtypes import DTYPES



def register(sub: argparse._SubParsersAction) -> None:
    from qwenimage.model.config import MMDIT_PRESETS
    from qwenimage.vae.config import VAE_PRESETS

    info = sub.add_parser("info", help="parameter counts and key layout of a model preset (no weights needed)",
                          description="Build the transformer and VAE of a preset on the meta device (no memory, "
                                      "no weights) and print their parameter counts and sizes.")
    info.add_argument("--transformer", default="official", choices=sorted(MMDIT_PRESETS), help="transformer preset")
    info.add_argument("--vae", default="official", choices=sorted(VAE_PRESETS), help="VAE preset")
    info.set_defaults(run=run_info)

    check = sub.add_parser("check", help="load a diffusers-layout folder strictly and report what it holds",
                           description="Check a component folder (config.json + safetensors: a strict key and shape "
                                       "load) or a pipeline folder: every component model_index.json lists must be "
                                       "there, its JSON files must parse, its safetensors files must be complete "
                                       "(headers and lengths), and the transformer and VAE must load strictly. "
                                       "Prints one line per component and one error line per problem, naming the "
                                       "file; exits 2 if there is any problem.")
    check.add_argument("folder", type=Path)
    check.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="cast weights (default: as stored)")
    check.set_defaults(run=run_check)

    convert = sub.add_parser("convert-vae", help="convert an original Wan-2.1 VAE file to a diffusers folder",
                             description="Rename the keys of an original Wan-2.1 / ComfyUI VAE file (.safetensors or "
                                         ".pth) to the diffusers layout, check every shape, and save a component "
                                         "folder that `WanVAE.from_pretrained` and diffusers both load.")
    convert.add_argument("source", type=Path)
    convert.add_argument("out", type=Path)
    convert.add_argument("--preset", default="official", choices=sorted(VAE_PRESETS), help="VAE architecture")
    convert.set_defaults(run=run_convert_vae)

    tiny = sub.add_parser("tiny-model", help="write a tiny random pipeline folder (runs anywhere, for smoke tests)",
                          description="Write a tiny randomly initialised Qwen-Image-Edit-Plus pipeline folder "
                                      "(diffusers layout) that every command accepts. Its images are noise.")
    tiny.add_argument("out", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=run_tiny_model)


def run_info(args: argparse.Namespace) -> int:
    from qwenimage.model import QwenImageMMDiT, mmdit_preset
    from qwenimage.vae import WanVAE
    from qwenimage.vae.config import vae_preset

    with torch.device("meta"):
        transformer = QwenImageMMDiT(mmdit_preset(args.transformer))
        vae = WanVAE(vae_preset(args.vae))
    for title, model in (("transformer", transformer), ("vae", vae)):
        count = model.num_parameters()
        print(f"{title} ({type(model).__name__}, preset {getattr(args, title)}): {count:,} parameters, "
              f"{count * 2 / 1e9:.2f} GB in bf16, {len(model.state_dict())} tensors")
    block = transformer.transformer_blocks[0]
    print(f"  per transformer block: {sum(p.numel() for p in block.parameters()):,} parameters; "
          f"{len(transformer.transformer_blocks)} blocks")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """A pipeline folder: every component it lists, each problem on its own line (exit 2 if any).
    A component folder: a strict load (a problem is the usual one-line error)."""
    from qwenimage.pipelines.check import check_pipeline_folder, load_strictly

    folder: Path = args.folder
    if not folder.is_dir():
        raise ValueError(f"folder not found: {folder}")
    if not (folder / "model_index.json").is_file():
        print(load_strictly(folder, class_of_folder(folder), DTYPES.get(args.dtype)))
        return 0
    report = check_pipeline_folder(folder, DTYPES.get(args.dtype))
    for line in report.lines:
        print(line)
    for problem in report.problems:
        print(f"qwenimage check: error: {problem}", file=sys.stderr)
    return 2 if report.problems else 0


def run_convert_vae(args: argparse.Namespace) -> int:
    from qwenimage.vae import load_wan_original, vae_preset

    if not args.source.is_file():
        raise ValueError(f"VAE file not found: {args.source}")
    vae = load_wan_original(args.source, vae_preset(args.preset))
    vae.save_pretrained(args.out)
    print(f"{args.out}: AutoencoderKLQwenImage, {vae.num_parameters():,} parameters")
    return 0


def run_tiny_model(args: argparse.Namespace) -> int:
    from qwenimage.tiny import build_tiny_model

    print(build_tiny_model(args.out, seed=args.seed))
    return 0
