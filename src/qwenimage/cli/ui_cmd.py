"""`qwenimage ui`: the web UI over one loaded model, at the root of the same app `qwenimage serve` runs.

The UI drives the server's scheduler, so the images API stays available beside it (under /v1), and every
`serve` flag applies; `serve` mounts the same UI at /ui.
"""

from __future__ import annotations

import argparse

from qwenimage.cli.serve_cmd import add_server_arguments, run_serve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="web UI (Gradio): text to image, edits, inpainting, live previews",
                       description="A browser UI for one model at http://HOST:PORT/: text to image (aspect "
                                   "presets, steps, CFG, seed, batch), edits with one or several images and a mask "
                                   "painter, live previews while sampling, and a history of results with their "
                                   "parameters. With --api-key the page asks for the key as its password.")
    add_server_arguments(p, port=7860)
    p.set_defaults(run=run_serve, ui_path="/", ui_required=True)
