"""`qwenimage mini`: build, assemble and ship qwenimage-mini, the small default model (see docs/mini/).

    qwenimage mini base outputs/mini/base                   # tokenizer, text encoder, untrained VAE, settings
    qwenimage mini assemble --base outputs/mini/base --transformer outputs/mini/train/exports/step-00004000/transformer --out outputs/mini/snap
    qwenimage mini edit-base outputs/mini/edit-base         # the shipped model as an edit pipeline (TI2I training)
    qwenimage mini ship outputs/mini/snap                   # make it the package's default model
    qwenimage mini check                                    # verify the shipped files against their manifest
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mini", help="build, assemble and ship qwenimage-mini (the small default model)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = p.add_subparsers(dest="mini_command", metavar="TASK", required=True)
    base = tasks.add_parser("base", help="write the untrained components (tokenizer, text encoder, VAE, settings)")
    base.add_argument("out", type=Path, help="output folder (diffusers layout, no transformer yet)")
    base.add_argument("--seed", type=int, default=0,
                      help="seed of the random initialisation: the frozen text encoder and the untrained VAE")
    base.set_defaults(run=run_base)
    assemble = tasks.add_parser("assemble", help="a pipeline folder from the base and a trained transformer")
    assemble.add_argument("--base", type=Path, required=True, help="the base folder (after VAE training)")
    assemble.add_argument("--transformer", type=Path, required=True, help="a trained transformer/ folder")
    assemble.add_argument("--text-encoder", type=Path, default=None,
                          help="a trained text_encoder/ folder (default: the one beside --transformer, if any, "
                               "else the base's)")
    assemble.add_argument("--out", type=Path, required=True, help="the pipeline folder to write")
    assemble.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16", help="stored weights")
    assemble.add_argument("--text-focus", action="store_true",
                          help="write the mini's text-focus geometry (the line it writes in Latin letters and in "
                               "Chinese characters) into qwenimage.json instead of the base's")
    assemble.set_defaults(run=run_assemble)
    edit = tasks.add_parser("edit-base", help="a pipeline folder as an edit model (QwenImageEditPipeline, 128x128 "
                                              "condition images unless --edit-side): the base of edit training and "
                                              "assembly")
    edit.add_argument("out", type=Path, help="the edit pipeline folder to write")
    edit.add_argument("--from", dest="source", type=Path, default=None,
                      help="the pipeline folder to convert (default: the shipped qwenimage-mini)")
    edit.add_argument("--edit-side", type=int, default=None, metavar="PX",
                      help="side of the square area condition images are resized to, and the size edits train at "
                           "(default: 128, the mini's native size; 256 shows small text the VAE loses at 128)")
    edit.set_defaults(run=run_edit_base)
    ship = tasks.add_parser("ship", help="copy an assembled folder into the package as the default model")
    ship.add_argument("folder", type=Path, help="an assembled pipeline folder (qwenimage mini assemble)")
    ship.set_defaults(run=run_ship)
    check = tasks.add_parser("check", help="verify the shipped default model against its manifest")
    check.set_defaults(run=run_check)


def run_base(args: argparse.Namespace) -> int:
    from qwenimage.mini.build import build_mini_components

    print(build_mini_components(args.out, seed=args.seed))
    return 0


def run_assemble(args: argparse.Namespace) -> int:
    from qwenimage.dtypes import DTYPES
    from qwenimage.mini.build import MINI_TEXT_FOCUS
    from qwenimage.mini.ship import assemble_pipeline

    text_focus = MINI_TEXT_FOCUS if args.text_focus else None
    print(assemble_pipeline(args.base, args.transformer, args.out, DTYPES[args.dtype], args.text_encoder, text_focus))
    return 0


def run_edit_base(args: argparse.Namespace) -> int:
    from qwenimage.mini.ship import default_model_dir, edit_variant

    print(edit_variant(args.source or default_model_dir(), args.out, args.edit_side))
    return 0


def run_ship(args: argparse.Namespace) -> int:
    from qwenimage.mini.ship import ship

    print(ship(args.folder))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from qwenimage.mini.ship import default_model_dir

    print(f"ok: {default_model_dir()}")
    return 0
