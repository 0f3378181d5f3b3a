"""VAE fidelity: reconstruct photos and synthetic text images (encode, posterior mode, decode) and score them.

    samples = vae_samples(n=24, size=128)                  # 8 photos (scikit-image) + 24 synth text images
    result = evaluate_vae(vae, samples)                    # the trainer calls this at each checkpoint
    result["scalars"]["ocr_agreement/text"], result["summary"]["photo"]["psnr"]["value"]

Per image: PSNR and SSIM (image_metrics) of the reconstruction against the original; for images with a
known text (synth renders, or a user image with a sidecar NAME.txt) the OCR reading of the reconstruction,
scored against that text (exact match after normalisation, and 1 - NED) beside the same scores of the
original (the ceiling: what OCR reads before the VAE). A VAE that blurs letters loses OCR accuracy even where
its PSNR looks fine. The originals' OCR is computed once per sample and kept on it, so repeated calls (one
per checkpoint) only read the reconstructions.

Photos: centre-cropped to a square and resized to `size`. Text images: the synth engine's pure strategy
(a word or a line on a clean background), English and Chinese alternating, seeds from `seed` up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qwenimage.eval import image_metrics as im
from qwenimage.eval.pair_report import Metric, summarize
from qwenimage.images import load_image, pil_to_tensor, tensor_to_pil

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "gravel")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
VAE_METRICS = (
    Metric("psnr", "PSNR (dB)", True, pooled_psnr=True),
    Metric("ssim", "SSIM", True, unit_range=True, short="SSIM"),
    Metric("ocr_exact", "text read exactly after the VAE", True, unit_range=True, short="OCR exact"),
    Metric("ocr_agreement", "text 1 - NED after the VAE", True, unit_range=True, short="OCR 1 - NED"),
    Metric("original_ocr_agreement", "text 1 - NED of the original (ceiling)", True, unit_range=True,
           short="original OCR 1 - NED"),
)


@dataclass
class VaeSample:
    id: str
    image: Image.Image  # RGB, sides multiples of the VAE's spatial factor
    kind: str  # "photo" or "text"
    text: str | None = None  # the text it shows, when known
    original_reading: str | None = None  # OCR of `image`, filled by evaluate_vae on first use


def square(image: Image.Image, size: int) -> Image.Image:
    """Centre crop to a square, resized (Lanczos) to size x size."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)


def builtin_photos(n: int, size: int) -> list[VaeSample]:
    """Up to n of the photos shipped with scikit-image (no download)."""
    import skimage.data

    samples = []
    for name in PHOTOS[:n]:
        array = getattr(skimage.data, name)()
        array = np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array[..., :3]      # [H, W, 3]
        samples.append(VaeSample(f"photo-{name}", square(Image.fromarray(array), size), "photo"))
    return samples


def folder_images(folder: str | Path, n: int, size: int) -> list[VaeSample]:
    """Up to n images of a folder (sorted names); NAME.txt beside an image gives its text."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--images {folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:n]
    if not files:
        raise ValueError(f"--images {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    samples = []
    for path in files:
        note = path.with_suffix(".txt")
        text = note.read_text(encoding="utf-8").strip() if note.is_file() else None
        samples.append(VaeSample(path.stem, square(load_image(path), size), "text" if text else "photo", text or None))
    return samples


def text_images(n: int, size: int, seed: int = 0, languages: tuple[str, ...] = ("en", "zh")) -> list[VaeSample]:
    """n synth-engine renders (pure strategy, a word or a line), languages alternating."""
    from qwenimage.synth import Discard, SynthConfig, build_strategy

    strategy = build_strategy("pure", SynthConfig(length_weights={"word": 0.5, "line": 0.5}))
    samples, attempt = [], seed
    while len(samples) < n:
        if attempt > seed + 20 * n + 20:
            raise ValueError(f"the synth engine could not render {n} text images at {size}x{size}")
        language = languages[len(samples) % len(languages)]
        try:
            rendered = strategy.render(np.random.default_rng(attempt), size, size, language)
            samples.append(VaeSample(f"text-{len(samples):03d}", rendered.image, "text", rendered.text))
        except Discard:
            pass
        attempt += 1
    return samples


def vae_samples(n: int = 16, size: int = 256, seed: int = 0, images: str | Path | None = None) -> list[VaeSample]:
    """The default set: up to n photos (a user folder, else scikit-image's) and n synth text images."""
    if n < 1 or size < 16:
        raise ValueError(f"need n >= 1 and size >= 16, got n = {n}, size = {size}")
    photos = folder_images(images, n, size) if images is not None else builtin_photos(n, size)
    return photos + text_images(n, size, seed)


@torch.inference_mode()
def reconstruct(vae, images: list[Image.Image], batch_size: int = 8, progress: bool = False) -> list[Image.Image]:
    """Encode (posterior mode) and decode each image, in batches of same-sized images."""
    from tqdm import tqdm

    parameter = next(vae.parameters())
    factor = vae.spatial_factor
    for image in images:
        if image.width % factor or image.height % factor:
            raise ValueError(f"image size {image.width}x{image.height} is not a multiple of the VAE factor {factor}")
    was_training = vae.training
    vae.eval()
    out: list[Image.Image | None] = [None] * len(images)
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        by_size.setdefault(image.size, []).append(index)
    batches = [indices[start:start + batch_size] for indices in by_size.values()
               for start in range(0, len(indices), batch_size)]
    try:
        for chunk in tqdm(batches, desc="VAE", unit="batch", disable=not progress):
            pixels = torch.stack([pil_to_tensor(images[i]) for i in chunk])                      # [B, 3, H, W]
            decoded = vae(pixels.to(parameter.device, parameter.dtype))                           # [B, 3, H, W]
            for i, picture in zip(chunk, decoded):
                out[i] = tensor_to_pil(picture)
    finally:
        vae.train(was_training)
    return out


def score_reconstruction(sample: VaeSample, recon: Image.Image, reading: str | None) -> dict:
    """One record; `reading` is the OCR of `recon` (None when OCR is off or the sample has no known text)."""
    from qwenimage.ocr import normalize_text, text_agreement

    error = im.squared_error(sample.image, recon)
    record = {"id": sample.id, "kind": sample.kind, "text": sample.text, "sse": error.total, "count": error.count,
              "psnr": error.psnr, "ssim": im.ssim(sample.image, recon), "ocr_reading": None, "ocr_exact": None,
              "ocr_agreement": None, "original_reading": None, "original_ocr_agreement": None, "reasons": {}}
    if sample.text is None or reading is None:
        reason = "no known text" if sample.text is None else "OCR turned off"
        record["reasons"] = dict.fromkeys(("ocr_exact", "ocr_agreement", "original_ocr_agreement"), reason)
        return record
    record.update(ocr_reading=reading, ocr_exact=float(normalize_text(reading) == normalize_text(sample.text)),
                  ocr_agreement=text_agreement(sample.text, reading), original_reading=sample.original_reading,
                  original_ocr_agreement=text_agreement(sample.text, sample.original_reading))
    return record


def read_texts(engine, samples: list[VaeSample], recons: list[Image.Image]) -> list[str | None]:
    """OCR readings of the reconstructions of samples with a known text (None for the others); the originals'
    readings are filled in on the samples the first time."""
    from qwenimage.eval.ocr_mosaic import read_mosaic

    if engine is None:
        return [None] * len(samples)
    texted = [i for i, sample in enumerate(samples) if sample.text is not None]
    unread = [samples[i] for i in texted if samples[i].original_reading is None]
    for sample, result in zip(unread, read_mosaic(engine, [sample.image for sample in unread])):
        sample.original_reading = result.text
    readings: list[str | None] = [None] * len(samples)
    for i, result in zip(texted, read_mosaic(engine, [recons[i] for i in texted])):
        readings[i] = result.text
    return readings


def scalars(summary: dict) -> dict[str, float]:
    """Flat {"metric/kind": value} of the summary, for a learning curve (PSNR capped at 100 dB)."""
    flat = {}
    for kind, metrics in summary.items():
        for key, entry in metrics.items():
            if entry["value"] is not None:
                flat[f"{key}/{kind}"] = min(entry["value"], 100.0) if key == "psnr" else entry["value"]
    return flat


def evaluate_vae(vae, samples: list[VaeSample], ocr=None, batch_size: int = 8,
                 keep_reconstructions: bool = False, progress: bool = False) -> dict:
    """Reconstruct and score every sample: {"records", "summary": {kind: {metric: ...}}, "scalars"}.

    `ocr`: a qwenimage.ocr.OcrEngine, None for a fresh one, False to skip OCR.
    """
    from qwenimage.ocr import OcrEngine

    if not samples:
        raise ValueError("evaluate_vae needs at least one sample")
    engine = OcrEngine() if ocr is None else (ocr or None)
    recons = reconstruct(vae, [sample.image for sample in samples], batch_size, progress)
    readings = read_texts(engine, samples, recons)
    records = [score_reconstruction(*args) for args in zip(samples, recons, readings)]
    groups = {"all": records, **{kind: [r for r in records if r["kind"] == kind]
                                 for kind in sorted({r["kind"] for r in records})}}
    summary = {kind: summarize(group, VAE_METRICS) for kind, group in groups.items()}
    result = {"records": records, "summary": summary, "scalars": scalars(summary)}
    if keep_reconstructions:
        result["reconstructions"] = recons
    return result


def load_vae(folder: str | Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"):
    """The VAE of a pipeline folder (FOLDER/vae) or a VAE folder itself."""
    from qwenimage.vae import WanVAE

    folder = Path(folder)
    for candidate in (folder / "vae", folder):
        if (candidate / "config.json").is_file():
            return WanVAE.from_pretrained(candidate, dtype=dtype, device=device)
    raise ValueError(f"--model {folder}: no VAE there (expected {folder}/vae/config.json or {folder}/config.json)")


def format_summary(summary: dict) -> str:
    from qwenimage.eval.pair_report import format_summary as lines

    return "\n".join(f"[{kind}]\n{lines(metrics, VAE_METRICS)}" for kind, metrics in summary.items() if kind != "all")


def write_vae_report(out: Path, samples: list[VaeSample], result: dict, settings: dict, command: str) -> None:
    """results.json and report.html (per kind a summary table, then every image with its reconstruction)."""
    from qwenimage.eval.pair_report import image_uri, record_table, summary_section, write_html, write_json

    results = {"kind": "vae", "command": command, "settings": settings, "summary": result["summary"],
               "scalars": result["scalars"], "records": result["records"],
               "metrics": {m.key: {"label": m.label, "higher_is_better": m.higher_is_better} for m in VAE_METRICS}}
    write_json(out / "results.json", results)
    thumbs = {sample.id: [("original", image_uri(sample.image)), ("reconstruction", image_uri(recon))]
              for sample, recon in zip(samples, result["reconstructions"])}
    columns = [("psnr", "PSNR"), ("ssim", "SSIM"), ("text", "text"), ("original_reading", "OCR of original"),
               ("ocr_reading", "OCR after VAE"), ("ocr_agreement", "1 - NED")]
    sections = [(f"Summary: {kind} images (bootstrap 95% intervals)", summary_section(metrics, VAE_METRICS, kind))
                for kind, metrics in result["summary"].items()]
    write_html(out / "report.html", "VAE fidelity", command,
               sections + [("Images", record_table(result["records"], columns, thumbs))])
