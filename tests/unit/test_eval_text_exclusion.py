"""Held-out words stay out of synthetic training text: word matching, the vocabulary, user corpora, and a
real synth job (with a control run showing the same job does draw those words without the exclusion)."""

import argparse
import json

import numpy as np

from qwenimage.cli import synth_cmd
from qwenimage.eval.suites import heldout_words
from qwenimage.synth.config import SynthConfig
from qwenimage.synth.corpus import Corpus
from qwenimage.synth.job import SynthJob
from qwenimage.synth.runner import RunOptions, run_job
from qwenimage.synth.wordlists import english_vocabulary, english_words, find_words, remove_words


def test_words_match_whole_and_in_any_case():
    words = {"book", "free", "don't"}
    assert find_words("A BOOK for Free, books and ebook", words) == ["book", "free"]
    assert find_words("ＢＯＯＫ shop", words) == ["book"]  # full-width letters too
    assert find_words("I don't know; freebook", words) == ["don't"]
    assert find_words("通义千问Book", words) == ["book"]
    assert remove_words("Free book , and more books.", words) == ", and more books."
    assert remove_words("no match here", words) == "no match here"


def test_the_vocabulary_and_user_paragraphs_lose_the_excluded_words(tmp_path):
    held = frozenset(heldout_words("en-words"))
    full = english_vocabulary(2000, 0.5)
    kept = english_vocabulary(2000, 0.5, held)
    assert held & set(full.words) and not held & set(kept.words)  # the control: they are common words
    assert len(kept.words) == 2000
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("Every family should buy a book about business.\n", encoding="utf-8")
    corpus = Corpus(SynthConfig(corpus_files=(str(corpus_file),), corpus_weight=1.0, exclude_words=tuple(held)))
    text = corpus.sample(np.random.default_rng(0), "en", "line")
    assert text and not find_words(text, held)


def _texts(out):
    """Per written sample: its drawn text and the text units its caption quotes."""
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("synth-*/*.json"))]
    return ["\n".join([r["text"], *r["texts"]]) for r in records]


def test_a_synth_job_with_the_exclusion_never_draws_an_excluded_word(tmp_path):
    # the held-out words plus the 40 most frequent English words, so that the control run surely draws some
    excluded = heldout_words("en-words") | {w for w, _ in english_words()[:40]}
    common = dict(count=24, strategies={"pure": 1, "complex": 1, "compositional": 1}, languages={"en": 1},
                  width=192, height=192, verify_fraction=0.0, shard_size=24, format="folder")
    run_job(SynthJob(**common), tmp_path / "control", RunOptions(progress=False, report_samples=0))
    control = _texts(tmp_path / "control")
    assert len(control) == 24 and any(find_words(t, excluded) for t in control)
    job = SynthJob(**common, synth={"exclude_words": sorted(excluded)})
    summary = run_job(job, tmp_path / "held", RunOptions(progress=False, report_samples=0))
    texts = _texts(tmp_path / "held")
    assert summary["written"] == len(texts) == 24
    assert [t for t in texts if find_words(t, excluded)] == []


def test_the_synth_flag_resolves_a_suite_or_a_file_into_the_job(tmp_path):
    parser = argparse.ArgumentParser()
    synth_cmd.register(parser.add_subparsers(dest="command"))
    words = tmp_path / "extra.txt"
    words.write_text("Zebra\n", encoding="utf-8")
    args = parser.parse_args(["synth", "--count", "2", "--out", str(tmp_path / "o"),
                              "--exclude-words", "suite:en-words", "--exclude-words", str(words)])
    job = synth_cmd.job_from_args(args)
    assert set(job.synth["exclude_words"]) == heldout_words("en-words") | {"zebra"}
    assert SynthConfig.from_dict(job.synth).exclude_words == tuple(sorted(job.synth["exclude_words"]))
