"""How much the mini model's text encoder mixes context: cosines between the states of one letter in two prompts.

With a context-free encoder every cosine is 1.00 (each state depends on its own character alone); the lower, the
more the state also says where the letter stands and what surrounds it, which the transformer needs to spell.

    python scripts/mini_context.py src/qwenimage/mini/model outputs/mini/train-joint-fifth/exports/step-00000500
A folder without text_encoder/ (a run's export of the transformer alone) borrows the first folder's tokenizer.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from qwenimage.text.encoder import ConditionEncoder

TEMPLATE = 'a sign that says "{}"'
# (label, word A, index in A, word B, index in B): the same letter in two contexts
PAIRS = [
    ("'a' after c / after h", "cat", 1, "hat", 1),
    ("'t' last / first", "cat", 2, "tac", 0),
    ("'c' first / last", "cat", 0, "tac", 2),
    ("'e' in a short / long word", "bed", 1, "bedroom", 1),
]


def states(encoder: ConditionEncoder, word: str) -> torch.Tensor:
    """[S, D] condition states of the prompt; the prompt's characters come first (the template prefix is cut)."""
    with torch.no_grad():
        return encoder.encode_prompts([TEMPLATE.format(word)]).embeds[0].float()


def cosines(encoder: ConditionEncoder) -> dict[str, float]:
    offset = TEMPLATE.index("{")
    out = {}
    for label, a, i, b, j in PAIRS:
        sa, sb = states(encoder, a), states(encoder, b)
        out[label] = torch.nn.functional.cosine_similarity(sa[offset + i], sb[offset + j], dim=0).item()
    return out


def load(folder: Path, base: Path) -> ConditionEncoder:
    if (folder / "tokenizer").is_dir():
        return ConditionEncoder.from_pretrained(folder, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:  # an export holds text_encoder/ only: borrow the tokenizer
        shutil.copytree(base / "tokenizer", Path(tmp) / "tokenizer")
        (Path(tmp) / "text_encoder").symlink_to((folder / "text_encoder").resolve())
        return ConditionEncoder.from_pretrained(tmp, dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="pipeline folders or exports with text_encoder/")
    args = parser.parse_args()
    base = args.folders[0]
    for folder in args.folders:
        values = cosines(load(folder, base))
        print(f"{folder}: " + ", ".join(f"{k}: {v:.3f}" for k, v in values.items()))


if __name__ == "__main__":
    main()
