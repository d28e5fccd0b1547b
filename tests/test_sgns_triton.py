"""The Triton kernel of the update rule against the torch reference, on CPU under Triton's interpreter.

The interpreter runs a launch's programs one after the other, in program order, with numpy: so any number of
parts gives the reference's result up to float rounding (types.py: processed one part after the other, every
kernel computes what sgns_reference.py computes), and the tests compare tables, pair counts and loss exactly
that way. What they cannot check here is the GPU's compilation and its concurrency.

The interpreter runs in this process when it can (see _run_here), else test_in_a_fresh_process runs this file in
a new one. About 20 s of CPU either way.
"""

from __future__ import annotations

import os

# Triton chooses between compiling and interpreting when a function is decorated with @triton.jit (its own
# triton.language functions included, when triton is first imported), reading TRITON_INTERPRET then: so it is
# set before triton or the kernel module is imported.
_PREVIOUS_INTERPRET = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"

import dataclasses  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tests.train_fixtures import cyclic_copies  # noqa: E402
from w2vdist import random_streams  # noqa: E402
from w2vdist.train import sgns_reference  # noqa: E402
from w2vdist.train.corpus_windows import build_launch  # noqa: E402
from w2vdist.train.noise import NoiseTable  # noqa: E402
from w2vdist.train.types import WindowRule  # noqa: E402

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (pip install -e .[test])", allow_module_level=True)

_CHILD = "W2VDIST_TRITON_CHILD"


def _interpreted(function) -> bool:
    return type(function).__name__ == "InterpretedFunction"


def _run_here() -> bool:
    """Whether this process can run the kernel under the interpreter. Not when triton was already imported
    compiling (by another test module, or by torch): its own language functions would not run under the
    interpreter. Not when this torch could run Triton on a GPU either: importing triton here under the interpreter
    would leave every later Triton kernel of the test session interpreted. Then a fresh process runs this file."""
    language = sys.modules.get("triton.language")
    if language is not None:
        return _interpreted(language.zeros)
    return (torch.version.cuda is None and torch.version.hip is None) or _CHILD in os.environ


IN_PROCESS = _run_here()
if IN_PROCESS:
    import triton  # noqa: E402
    import triton.language as tl  # noqa: E402

    from w2vdist.train import sgns_triton as kernels  # noqa: E402

    # imported compiling before the variable was set, while triton was imported interpreting: a fresh process
    IN_PROCESS = _interpreted(kernels._sgns_windows_kernel)

if IN_PROCESS:
    _bits, _reach, _noise_words = kernels._bits, kernels._reach, kernels._noise_words

    @triton.jit
    def _draws_kernel(keys_ptr, counters_ptr, bits_ptr, reach_ptr, noise_ptr, threshold_ptr, alias_ptr, vocab,
                      WINDOW: tl.constexpr, BLOCK: tl.constexpr):
        at = tl.arange(0, BLOCK)
        bits = _bits(tl.load(keys_ptr + at).to(tl.uint64), tl.load(counters_ptr + at).to(tl.uint64))
        tl.store(bits_ptr + at, bits.to(tl.int64, bitcast=True))
        tl.store(reach_ptr + at, _reach(bits, WINDOW))
        tl.store(noise_ptr + at, _noise_words(bits, at < BLOCK, vocab, threshold_ptr, alias_ptr))

# the decorations are done: the rest of the session, and the Ray and Spark processes it starts, get the old value
if _PREVIOUS_INTERPRET is None:
    del os.environ["TRITON_INTERPRET"]
else:
    os.environ["TRITON_INTERPRET"] = _PREVIOUS_INTERPRET

interpreted = pytest.mark.skipif(not IN_PROCESS, reason="run by test_in_a_fresh_process")


@pytest.mark.skipif(IN_PROCESS, reason="the interpreter runs in this process")
def test_in_a_fresh_process():
    """This file's tests in a process that imports triton under the interpreter first."""
    if _CHILD in os.environ:
        pytest.fail("triton was imported compiling even in a fresh process: is TRITON_INTERPRET overridden?")
    env = {**os.environ, "TRITON_INTERPRET": "1", _CHILD: "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    """Some of Triton's helpers look at TRITON_INTERPRET at run time too; and one torch thread: the reference's
    small tensors gain nothing from a second thread on a shared 2-core machine."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VOCAB = 50
COUNTS = (2000 / np.arange(1, VOCAB + 1)).astype(np.int64) + 1     # Zipf: frequent words repeat inside windows


def small_launch(parts: int, seed: int = 0):
    """About 110 kept centers over four chunks (one of a single token: a center without contexts), and the
    noise table of the vocabulary."""
    rng = np.random.default_rng(seed)
    lengths = np.array([48, 1, 36, 42])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = torch.from_numpy(rng.choice(VOCAB, size=int(offsets[-1]), p=COUNTS / COUNTS.sum()).astype(np.int32))
    keep = torch.from_numpy(random_streams.probability_thresholds(np.full(VOCAB, 0.85)))
    launch = build_launch(np.arange(len(lengths)) + 40, offsets + 1000, ids, keep, subsample_key=11 + seed,
                          window_key=(1 << 62) + 12345 + seed, parts=parts)
    noise = NoiseTable.from_counts(COUNTS)
    return launch, torch.from_numpy(noise.threshold), torch.from_numpy(noise.alias)


def initial_tables(dim: int, seed: int = 1):
    """Both tables away from zero, so every gradient of the first windows is already large."""
    generator = torch.Generator().manual_seed(seed)
    scale = 4.0 / dim
    return ((torch.rand(VOCAB, dim, generator=generator) - 0.5) * scale,
            (torch.rand(VOCAB, dim, generator=generator) - 0.5) * scale)


def run_both(launch, threshold, alias, rule, dim, lr=(0.2, 0.05)):
    inputs, outputs = initial_tables(dim)
    ref_in, ref_out, tri_in, tri_out = inputs.clone(), outputs.clone(), inputs.clone(), outputs.clone()
    expected = sgns_reference.train_windows(ref_in, ref_out, launch, threshold, alias, rule, *lr)
    result = kernels.train_windows(tri_in, tri_out, launch, threshold, alias, rule, *lr)
    # guard against a vacuous comparison: the launch must move the tables far more than the tolerance
    assert (ref_in - inputs).abs().max() > 0.1 and (ref_out - outputs).abs().max() > 0.1
    return (ref_in, ref_out, expected), (tri_in, tri_out, result)


def assert_same(reference, triton_run):
    (ref_in, ref_out, expected), (tri_in, tri_out, result) = reference, triton_run
    torch.testing.assert_close(tri_in, ref_in, rtol=0, atol=1e-5)
    torch.testing.assert_close(tri_out, ref_out, rtol=0, atol=1e-5)
    assert result.pairs == expected.pairs and result.loss_pairs == expected.loss_pairs
    assert result.loss_sum == pytest.approx(expected.loss_sum, rel=1e-5)


@interpreted
def test_draws_are_random_streams_bit_for_bit():
    rng = np.random.default_rng(3)
    size, window = 256, 7
    keys = torch.from_numpy(rng.integers(0, 1 << 63, size=size, dtype=np.int64))
    counters = torch.from_numpy(rng.integers(0, 1 << 51, size=size, dtype=np.int64))  # position * draw stride + slot
    counts = rng.zipf(1.3, size=5000).clip(max=10**7)
    noise = NoiseTable.from_counts(counts)
    threshold, alias = torch.from_numpy(noise.threshold), torch.from_numpy(noise.alias)
    bits, reach, words = (torch.zeros(size, dtype=torch.int64), torch.zeros(size, dtype=torch.int32),
                          torch.zeros(size, dtype=torch.int32))
    _draws_kernel[(1,)](keys, counters, bits, reach, words, threshold, alias, len(alias), WINDOW=window,
                        BLOCK=size)
    expected = random_streams.bits_torch(keys, counters)
    assert torch.equal(bits, expected)
    assert torch.equal(reach.long(), random_streams.reach_torch(expected, window))
    assert torch.equal(words.long(), random_streams.noise_torch(expected, threshold, alias))
    assert (expected < 0).any() and reach.min() == 1 and reach.max() == window      # the draws cover the laws


@interpreted
@pytest.mark.parametrize("dim, window, negative, shared, stretch", [
    (8, 3, 3, True, 1),
    (8, 4, 5, False, 1),
    (20, 5, 4, True, 1),     # dim not a power of two: masked columns
    (20, 3, 4, False, 1),
    (8, 3, 3, True, 8),      # updates stretched (stretch.py), shared and per-context negatives
    (20, 3, 4, False, 5),
])
def test_one_part_updates_the_tables_as_the_reference(dim, window, negative, shared, stretch):
    launch, threshold, alias = small_launch(parts=1)
    assert 90 <= launch.centers <= 130
    rule = WindowRule(window=window, negative=negative, shared_negatives=shared, copies=cyclic_copies(VOCAB, stretch))
    # stretched steps reach further: a smaller learning rate keeps them short of the 50-word language's divergence
    assert_same(*run_both(launch, threshold, alias, rule, dim, lr=(0.2, 0.05) if stretch == 1 else (0.1, 0.05)))


@interpreted
def test_several_parts_walk_their_own_centers():
    """Five parts, one of them empty, at the smallest window and negative (tiles of one noise column, two context
    slots, dim 3 padded to 4): each program must walk exactly its centers, with the launch's learning rate and
    loss sampling, and count its own pairs and loss."""
    launch, threshold, alias = small_launch(parts=4, seed=2)
    bounds = launch.parts.tolist()
    launch = dataclasses.replace(launch, parts=torch.tensor(bounds[:2] + bounds[1:], dtype=torch.int64))
    rule = WindowRule(window=1, negative=1, shared_negatives=True)
    reference, triton_run = run_both(launch, threshold, alias, rule, dim=3, lr=(0.5, 0.2))
    assert_same(reference, triton_run)
    assert triton_run[2].pairs > 0 and triton_run[2].loss_pairs > 0


@interpreted
def test_rejects_tables_that_are_not_fp32():
    launch, threshold, alias = small_launch(parts=1)
    inputs, outputs = initial_tables(8)
    with pytest.raises(ValueError, match="fp32"):
        kernels.train_windows(inputs.double(), outputs.double(), launch, threshold, alias, WindowRule(2, 2, True),
                              0.025, 0.025)
