"""Evaluation: prompt suites, metrics and reports for text rendering, edit consistency and VAE fidelity.

Generation and scoring meet at one image-folder contract (a file per sample, named by its id), so images
made by our pipeline and by any other generator are scored by the same code. See docs/eval/README.md.
"""
