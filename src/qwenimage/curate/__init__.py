"""Data curation: the seven-stage pipeline of the Qwen-Image report, with category balancing, on a local
process pool or on Ray Data.

    from qwenimage.curate import Curation, load_curate_config
    config = load_curate_config("c.yaml", ["s2.min_clarity=80"])
    summary = Curation(config, ["photos/", "synth/"], "curated/").run()

Stage operators (`qwenimage.curate.stages`) are plain callables over batches of `Record`s; the same objects
run in both executors. `configs/curate/default.yaml` documents every setting. Names are imported on first
use, so that `qwenimage.curate.config` stays light (the CLI reads it to build its options).
"""

import importlib

_EXPORTS = {"Caption": "record", "Record": "record", "Rejection": "record", "CurateConfig": "config",
            "load_curate_config": "config", "Curation": "pipeline", "Summary": "pipeline"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'qwenimage.curate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qwenimage.curate.{_EXPORTS[name]}"), name)
