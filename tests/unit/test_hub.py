"""Hub repo ids: resolved through huggingface_hub's cache (built here, offline), revisions, local folders first,
only the files the pipeline loads, and one-line errors when a repo is not cached."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from qwenimage.cli.main import main
from qwenimage.weights.hub import PIPELINE_FILES, is_repo_id, resolve_model

REPO = "tiny-org/tiny-qwen"
COMMIT, PINNED = "a" * 40, "b" * 40


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from qwenimage.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", pipeline_class="QwenImagePipeline")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_folder):
    """A Hub cache holding REPO at COMMIT (refs/main) and PINNED (refs/v1, a copy with another size limit),
    with huggingface_hub switched to it and offline, as HF_HUB_CACHE / HF_HUB_OFFLINE=1 would at import."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(tiny_folder, repo / "snapshots" / COMMIT)
    shutil.copytree(tiny_folder, repo / "snapshots" / PINNED)
    (repo / "snapshots" / PINNED / "qwenimage.json").write_text(json.dumps({"size_limits": {"max_side": 512}}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "refs" / "v1").write_text(PINNED)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return repo


def test_generate_loads_a_repo_id_from_the_hub_cache(hub_cache, tmp_path, capsys):
    code = main(["generate", "--model", REPO, "--prompt", "a fox", "--width", "32", "--height", "32", "--steps", "1",
                 "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    with Image.open(out.split()[0]) as image:
        assert image.size == (32, 32)
        assert json.loads(image.text["parameters"])["model"] == REPO


def test_revisions_pin_a_snapshot_and_a_local_folder_wins(hub_cache, tmp_path, monkeypatch):
    assert resolve_model(REPO) == hub_cache / "snapshots" / COMMIT
    assert resolve_model(REPO, revision="v1") == hub_cache / "snapshots" / PINNED
    assert resolve_model(REPO, revision=PINNED) == hub_cache / "snapshots" / PINNED
    local = tmp_path / "here" / REPO
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    assert resolve_model(REPO).resolve() == local.resolve()
    with pytest.raises(ValueError, match="--revision v1 applies to Hub repo ids"):
        resolve_model(REPO, revision="v1")


def test_load_pipeline_takes_a_repo_id_and_a_revision(hub_cache):
    from qwenimage.pipelines.loading import load_pipeline

    pipe = load_pipeline(REPO, revision="v1")
    assert pipe.size_limits.max_side == 512  # read from the pinned snapshot's qwenimage.json


def test_not_cached_while_offline_is_one_line(hub_cache, tmp_path, capsys):
    code = main(["generate", "--model", "nobody/missing", "--prompt", "x", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "nobody/missing@main is not in the Hugging Face cache" in err and "HF_HUB_OFFLINE" in err
    with pytest.raises(ValueError, match="tiny-org/tiny-qwen@v2 is not in the Hugging Face cache"):
        resolve_model(REPO, revision="v2")


def test_offline_error_from_the_environment_variables(tmp_path):
    """The real switches, read by huggingface_hub at import in a fresh process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty")}
    done = subprocess.run([sys.executable, "-m", "qwenimage.cli.main", "generate", "--model", "nobody/missing",
                           "--prompt", "x", "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"qwenimage generate: error: nobody/missing@main is not in the Hugging Face cache ({tmp_path / 'empty'}) "
        "and HF_HUB_OFFLINE is set: download it once online, or pass a local model folder"]


def test_only_the_files_the_pipeline_loads_are_fetched():
    from huggingface_hub.utils import filter_repo_objects

    listing = ["README.md", ".gitattributes", "model_index.json", "assets/cover.png", "scheduler/scheduler_config.json",
               "text_encoder/config.json", "text_encoder/model-00001-of-00004.safetensors",
               "text_encoder/model.safetensors.index.json", "text_encoder/pytorch_model.bin",
               "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/chat_template.jinja",
               "transformer/config.json", "transformer/diffusion_pytorch_model-00001-of-00009.safetensors",
               "transformer/diffusion_pytorch_model.bin", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
               "processor/preprocessor_config.json", "gguf/qwen-image-Q4.gguf"]
    kept = set(filter_repo_objects(listing, allow_patterns=PIPELINE_FILES))
    dropped = {"README.md", ".gitattributes", "assets/cover.png", "text_encoder/pytorch_model.bin",
               "transformer/diffusion_pytorch_model.bin", "gguf/qwen-image-Q4.gguf"}
    assert kept == set(listing) - dropped


def test_repo_id_spelling():
    assert is_repo_id("Qwen/Qwen-Image") and is_repo_id("lightx2v/Qwen-Image-Lightning")
    for name in ("./Qwen/Qwen-Image", "/abs/path", "Qwen-Image", "a/b/c", "~/x", "../up", "a/.."):
        assert not is_repo_id(name), name
