"""Export one training image per word of a word list, for `qwenimage eval vae --images`.

Scans synth outputs (WebDataset tars or folders; give sources of one layout, e.g. the fixed one-font layout of
`configs/synth/mini_words_mono.yaml`) for the first sample whose rendered text is a word of the list, and writes
`NAME.png` + `NAME.txt` (the word) into `--out`. Measures the VAE's ceiling on exactly the words a suite asks
for, in the layout the transformer draws:

    python scripts/mini_word_images.py --words docs/mini/seen_words.txt --out outputs/mini/vae-seen-words \
        data/mini/words-mono data/mini/words-focus data/mini/words-scenes
    qwenimage eval vae --model src/qwenimage/mini/model --images outputs/mini/vae-seen-words --n 200 --size 128
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", help="synth output folders (tars or loose files)")
    parser.add_argument("--words", required=True, type=Path, help="word list, one a line")
    parser.add_argument("--out", required=True, type=Path, help="folder for NAME.png + NAME.txt")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from qwenimage.train.records import open_record_image, read_records

    wanted = [w.strip() for w in args.words.read_text().splitlines() if w.strip()]
    missing = set(wanted)
    args.out.mkdir(parents=True, exist_ok=True)
    for record in read_records(args.sources):
        word = record.text.strip()
        if word not in missing:
            continue
        name = f"{wanted.index(word):04d}"
        open_record_image(record.image).convert("RGB").save(args.out / f"{name}.png")
        (args.out / f"{name}.txt").write_text(word + "\n")
        missing.discard(word)
        if not missing:
            break
    print(f"{len(wanted) - len(missing)} of {len(wanted)} words exported to {args.out}")
    if missing:
        print("not found:", " ".join(sorted(missing)))
    return 0 if not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
