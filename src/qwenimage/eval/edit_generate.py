"""Edits of the `text-edit` suite's sources with our pipeline, into the folder contract `eval edit` scores.

    OUT/suite/     the suite: ID.source.png, ID.edited.png (ground truth), ID.mask.png, pairs.jsonl, suite.json
    OUT/edited/    ID.png: the model's edit of ID.source.png with the pair's instruction
    OUT/results.json, OUT/report.html

Resumable: a second run with the same OUT keeps the suite (refusing one built with other settings) and
generates only the edits that are not there yet (each PNG is written through a rename, so a killed run
leaves whole files only). The request for pair i: the pair's instruction, its source as the one condition
image, the source's size, seed = `seed + i`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from qwenimage.eval.edit_pairs import EditPair, read_manifest
from qwenimage.eval.text_edit_suite import (MANIFEST, TextEditSuiteConfig, build_text_edit_pairs, save_image,
                                            write_suite)

SUITE_DIR, EDITED_DIR, SUITE_INFO = "suite", "edited", "suite.json"


@dataclass(frozen=True)
class EditSampling:
    steps: int = 30
    cfg: float = 4.0  # true CFG with the negative prompt; 1 turns it off
    negative_prompt: str = " "
    seed: int = 0
    batch_size: int = 1
    keep_unedited: float | None = None  # GenerationRequest.keep_unedited: paste the source back outside the edit
    text_focus: bool = False  # GenerationRequest.text_focus: edit the quoted old text on the model's canvas

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps = {self.steps} and batch_size = {self.batch_size} must be at least 1")


def ensure_suite(folder: Path, config: TextEditSuiteConfig) -> list[EditPair]:
    """The suite in `folder`: built and written on the first run, read back (and checked) afterwards."""
    info_path = folder / SUITE_INFO
    wanted = {"suite": "text-edit", **asdict(config), "languages": list(config.languages)}
    if info_path.is_file():
        found = json.loads(info_path.read_text(encoding="utf-8"))
        if found != wanted:
            raise ValueError(f"{folder} holds a text-edit suite built with {found}, not {wanted}: "
                             "use another --out or the same settings")
        if (folder / MANIFEST).is_file():
            return read_manifest(folder / MANIFEST)
    write_suite(build_text_edit_pairs(config), folder)
    info_path.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
    return read_manifest(folder / MANIFEST)


def edit_requests(pairs: list[EditPair], sampling: EditSampling, first_index: int = 0) -> list:
    from qwenimage.images import load_image
    from qwenimage.pipelines.request import GenerationRequest

    requests = []
    for offset, pair in enumerate(pairs):
        source = load_image(pair.source)
        requests.append(GenerationRequest(
            prompt=pair.instruction or "", images=[source], width=source.width, height=source.height,
            num_steps=sampling.steps, true_cfg_scale=sampling.cfg,
            negative_prompt=sampling.negative_prompt if sampling.cfg > 1 else None,
            seed=sampling.seed + first_index + offset, keep_unedited=sampling.keep_unedited,
            text_focus=sampling.text_focus))
    return requests


def generate_edits(pipe, pairs: list[EditPair], out: Path, sampling: EditSampling, progress: bool = True) -> int:
    """Write OUT/ID.png for every pair that has none yet, in batches; returns how many were generated."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    todo = [(index, pair) for index, pair in enumerate(pairs) if not (out / f"{pair.id}.png").is_file()]
    bar = tqdm(total=len(todo) * sampling.steps, desc="editing", unit="step", disable=not progress or not todo)
    for start in range(0, len(todo), sampling.batch_size):
        chunk = todo[start:start + sampling.batch_size]
        requests = [edit_requests([pair], sampling, index)[0] for index, pair in chunk]
        results = pipe.generate(requests, progress=lambda step, steps: bar.update(len(chunk)))
        for (_, pair), result in zip(chunk, results):
            save_image(result.image, out / f"{pair.id}.png")
    bar.close()
    return len(todo)


def reconstruct_edits(vae, pairs: list[EditPair], out: Path, batch_size: int = 8, progress: bool = True,
                      keep_unedited: float | None = None) -> int:
    """Write OUT/ID.png as the VAE's round trip (encode, posterior mode, decode) of each pair's ground-truth edit:
    what a perfect edit model drawing through this VAE would show, so its scores are the VAE's ceiling on the
    suite. With `keep_unedited` (a threshold, as in GenerationRequest) the source's own pixels are pasted back
    outside the cells whose latents the edit changed: the ceiling of such edits. Only missing files are written;
    returns how many."""
    from tqdm import tqdm

    from qwenimage.eval.vae import reconstruct
    from qwenimage.images import load_image

    out.mkdir(parents=True, exist_ok=True)
    todo = [pair for pair in pairs if not (out / f"{pair.id}.png").is_file()]
    if not todo:
        return 0
    if any(pair.edited is None for pair in todo):
        raise ValueError("the VAE ceiling needs each pair's ground-truth edited image")
    if keep_unedited is None:
        images = [load_image(pair.edited) for pair in todo]
        for pair, image in zip(todo, reconstruct(vae, images, batch_size=batch_size, progress=progress)):
            save_image(image, out / f"{pair.id}.png")
        return len(todo)
    for pair in tqdm(todo, desc="VAE", unit="pair", disable=not progress):
        image = kept_round_trip(vae, load_image(pair.source), load_image(pair.edited), keep_unedited)
        save_image(image, out / f"{pair.id}.png")
    return len(todo)


def kept_round_trip(vae, source, edited, threshold: float):
    """The VAE round trip of `edited` with `source`'s own pixels outside the cells whose latents differ from the
    source's by more than `threshold` (pipelines/keep.py): what a perfect edit model with keep_unedited shows."""
    import torch

    from qwenimage.images import pil_to_tensor, tensor_to_pil
    from qwenimage.pipelines.keep import check_keep_threshold, edited_area, keep_unedited

    check_keep_threshold(threshold)
    if source.size != edited.size:
        raise ValueError(f"source {source.size} and edited {edited.size} images differ in size")
    parameter = next(vae.parameters())
    pixels = torch.stack([pil_to_tensor(source), pil_to_tensor(edited)])                    # [2, 3, H, W]
    with torch.inference_mode():
        latents = vae.normalize_latents(vae.encode(pixels.to(parameter.device, parameter.dtype)).mode())  # [2, C, h, w]
        decoded = vae.decode(vae.denormalize_latents(latents[1:]))[0].float().cpu()        # [3, H, W]
    mask = edited_area(latents[1], latents[0], threshold, vae.spatial_factor).cpu()          # [H, W]
    return tensor_to_pil(keep_unedited(decoded, pixels[0], mask))
