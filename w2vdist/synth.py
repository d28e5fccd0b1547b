"""Synthetic languages whose structure is known, to check that training finds it (and invents none).

Both use the 26 words aaa, bbb, ..., zzz.

- random: each sentence is the 26 words in a random order, so no word is any closer to another.
- proximity: each sentence has 7 words. It starts at a random letter s in 0..17 (a..r); its w-th word (w = 0..6)
  is one of the letters s+w, s+w+1, s+w+2, drawn uniformly but never the same as the word before it. Words
  close in the alphabet therefore share contexts, and trained vectors should put bbb near aaa and ccc, far from
  xxx and zzz.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORDS = [letter * 3 for letter in LETTERS]
PROXIMITY_LENGTH = 7
PROXIMITY_SPREAD = 3  # the w-th word is one of this many consecutive letters
LANGUAGES = ("random", "proximity")


def random_language(sentences: int, seed: int) -> np.ndarray:
    """Letter numbers (0 = aaa), one row per sentence: a random permutation of all 26."""
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(np.arange(len(LETTERS)), (sentences, 1)), axis=1)


def proximity_language(sentences: int, seed: int) -> np.ndarray:
    """Letter numbers (0 = aaa), one row of 7 per sentence, by the rule in the module docstring."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(LETTERS) - PROXIMITY_LENGTH - PROXIMITY_SPREAD + 2, size=sentences)
    letters = np.empty((sentences, PROXIMITY_LENGTH), dtype=np.int64)
    letters[:, 0] = starts + rng.integers(0, PROXIMITY_SPREAD, size=sentences)
    for w in range(1, PROXIMITY_LENGTH):
        low = starts + w
        # The previous letter is at most low + 1; when it lies in this word's range, draw from the other two.
        banned = letters[:, w - 1] - low
        has_ban = banned >= 0
        draw = rng.integers(0, np.where(has_ban, PROXIMITY_SPREAD - 1, PROXIMITY_SPREAD))
        draw += has_ban & (draw >= banned)
        letters[:, w] = low + draw
    return letters


def generate(language: str, sentences: int, seed: int) -> np.ndarray:
    if language == "random":
        return random_language(sentences, seed)
    if language == "proximity":
        return proximity_language(sentences, seed)
    raise ValueError(f"unknown language '{language}': expected one of {', '.join(LANGUAGES)}")


def write_sentences(letters: np.ndarray, path: str | os.PathLike) -> Path:
    """One sentence per line, words separated by single spaces."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Every word is one letter three times, so the text is a fixed-width byte grid: no per-word Python work.
    grid = np.empty(letters.shape + (4,), dtype=np.uint8)
    grid[..., :3] = (ord("a") + letters)[..., None]
    grid[..., 3] = ord(" ")
    grid[:, -1, 3] = ord("\n")
    path.write_bytes(grid.tobytes())
    return path

