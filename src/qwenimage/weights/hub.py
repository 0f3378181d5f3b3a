"""Where a model comes from: a local pipeline folder, or a Hugging Face Hub repo id such as "Qwen/Qwen-Image".

A path that exists on disk always wins. Anything else that reads as `owner/name` is resolved through
huggingface_hub: its cache (HF_HUB_CACHE / HF_HOME), its offline switch (HF_HUB_OFFLINE=1), a pinned
`revision` (branch, tag or commit), and only the files the pipeline loads (`PIPELINE_FILES`: the components'
configs, safetensors weights and tokenizer files; no README images, no .bin/.pt duplicates, no GGUF).
"""

from __future__ import annotations

import re
from pathlib import Path

# what load_pipeline reads; the tokenizer and processor folders are small and taken whole
WEIGHT_COMPONENTS = ("transformer", "vae", "text_encoder", "scheduler")
PIPELINE_FILES = ["model_index.json", "qwenimage.json", "tokenizer/*", "processor/*",
                  *(f"{c}/{pattern}" for c in WEIGHT_COMPONENTS for pattern in ("*.json", "*.safetensors"))]
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def is_repo_id(name: str) -> bool:
    """'owner/name' in the Hub's spelling (one slash, no leading '.', '/' or '~')."""
    return REPO_ID.fullmatch(name) is not None and ".." not in name


def resolve_model(model: str | Path, revision: str | None = None) -> Path:
    """The local folder that holds `model`: the path itself if it exists, else the Hub snapshot of the repo id.

    Raises ValueError in one line: a revision given with a local folder, a repo id that is not cached while
    offline, an unknown repo or revision, or a Hub that cannot be reached.
    """
    path = Path(model).expanduser()
    if path.exists() or not is_repo_id(str(model)):
        if revision is not None:
            raise ValueError(f"--revision {revision} applies to Hub repo ids, but {model} is a local path")
        return path
    return _snapshot(str(model), revision)


def _snapshot(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    at = f"{repo_id}@{revision or 'main'}"
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=PIPELINE_FILES))
    except LocalEntryNotFoundError as err:
        if constants.HF_HUB_OFFLINE:
            raise ValueError(f"{at} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                             "is set: download it once online, or pass a local model folder") from None
        raise ValueError(f"{at} is not cached and the Hub could not be reached: {_first_line(err)}") from None
    except GatedRepoError:
        raise ValueError(f"{repo_id} is gated: accept its terms on huggingface.co and log in "
                         "(hf auth login)") from None
    except RepositoryNotFoundError:
        raise ValueError(f"{repo_id} is neither a local folder nor a Hub repo that can be read "
                         "(check the name, or log in for a private repo)") from None
    except RevisionNotFoundError:
        raise ValueError(f"{repo_id} has no revision {revision!r}") from None
    except HfHubHTTPError as err:
        raise ValueError(f"downloading {at} failed: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
