"""Sync rules compared: R data-parallel replicas simulated in one process, each rule scored like train_quality.py.

    python bench/sync_rules.py [--run-dir runs/text8] [--replicas 2,8] [--rules stretched,agreement,changes,average]
                               [--epochs 1] [key=value ...]

The replicas train one after the other, each on its own blocks of a round and from the tables of the last sync,
with the loop's layout, learning rate and kernel (numba, one thread); at the end of the round their tables are
combined by the rule, as replicas.py does with all-reduces. The result is what R workers would train, without
their speed: deterministic, and cheap enough to compare rules and `sync_every` values on one machine. One replica
(no sync) is trained first as the reference. Prints analogy % (30k words), WordSim-353 and SimLex-999 per rule.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from train_quality import ensure_preprocessed, keyed_vectors, score  # noqa: E402


def simulate(run_dir: Path, replicas: int, rule: str, epochs: int, overrides: list[str]) -> tuple[float, ...]:
    import torch

    from w2vdist.config import load_config
    from w2vdist.datasets import read_vocabulary
    from w2vdist.rundir import RunDir
    from w2vdist.train.blocks import CorpusSource, EpochLayout
    from w2vdist.train.engine import Engine, Tables
    from w2vdist.train.loop import _learning_rate
    from w2vdist.train.plan import build_plan
    from w2vdist.train.replicas import ShardGroup

    torch.set_num_threads(1)
    rule_setting = [f"sync_rule={rule}"] if replicas > 1 else []  # stretched: the kernels stretch the updates
    plan = build_plan(load_config([], [f"num_workers={replicas}", f"epochs={epochs}", "pair_source=corpus",
                                       *rule_setting, *overrides], {"out": str(run_dir)}))
    settings = plan.settings
    vocab = read_vocabulary(RunDir(run_dir).vocab)
    start = Tables.initial(plan.vocab_size, settings.dim, settings.seed, torch.device("cpu"))
    tables = [Tables(start.input.clone(), start.output.clone()) for _ in range(replicas)]
    counts = vocab.column("count").to_numpy()
    copies = plan.update_copies(counts)
    copies = None if copies is None else torch.from_numpy(copies)
    engines = [Engine(t, counts, settings, plan.window, "numba", 1, ShardGroup(0, [0], settings.dim), copies)
               for t in tables]
    source = CorpusSource(list(plan.input_files[0]), 1 << 34, torch.device("cpu"))
    for epoch in range(epochs):
        layout = EpochLayout(list(plan.input_rows[0]), epoch, settings.seed, plan.rows_per_block[0], replicas,
                             plan.blocks_per_replica(epoch))
        for round_index in range(layout.rounds):
            synced = Tables(tables[0].input.clone(), tables[0].output.clone())
            for replica in range(replicas):
                for block in layout.blocks_of(round_index, replica):
                    engines[replica].train_corpus(source.read(block), epoch,
                                                  _learning_rate(settings, epoch + layout.progress(block.index)),
                                                  _learning_rate(settings, epoch + layout.progress(block.index + 1)))
            if replicas > 1:
                combine(synced, tables, rule, copies)
    return score(keyed_vectors(vocab.column("word").to_pylist(), tables[0].input.numpy()))


def combine(synced, tables, rule: str, copies) -> None:
    """Every replica's tables become the rule's combination, with the sync's own kernels (replicas.py,
    sync_numba.py); the sum over replicas that the all-reduce makes is a Python sum here. `copies`: the rows'
    (plan.update_copies), or None."""
    import torch

    from w2vdist.train.agreement import rule_scale
    from w2vdist.train.sync_numba import apply_rows, change_squares, pack_changes

    floor, step = rule_scale(rule, len(tables), copies)
    floors = torch.as_tensor(floor, dtype=torch.float32).expand(len(synced.input)).contiguous()
    for name in ("input", "output"):
        old, replicas = getattr(synced, name), [getattr(t, name) for t in tables]
        own_squares = torch.zeros(len(old))
        for table in replicas:
            squares = torch.empty(len(old))
            change_squares(table, old, squares)
            own_squares += squares
        rows = torch.nonzero(own_squares).squeeze(1)
        summed = torch.zeros((len(rows), old.shape[1]))
        for table in replicas:
            packed = torch.empty_like(summed)
            pack_changes(table, old, rows, packed)
            summed += packed
        apply_rows(replicas[0], old, rows, summed, own_squares, floors, step)
        for table in replicas[1:]:
            table.copy_(replicas[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "text8"))
    parser.add_argument("--replicas", default="2,8")
    parser.add_argument("--rules", default="stretched,agreement,changes,average")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more settings (sync_every=...)")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    ensure_preprocessed(run_dir)
    print(f"{'replicas':>8s}  {'rule':10s}{'analogy %':>11s}{'WordSim':>9s}{'SimLex':>9s}{'seconds':>9s}", flush=True)
    runs = [(1, "-")] + [(int(r), rule) for r in args.replicas.split(",") for rule in args.rules.split(",")]
    for replicas, rule in runs:
        started = time.perf_counter()
        analogy, wordsim, simlex = simulate(run_dir, replicas, rule, args.epochs, args.overrides)
        print(f"{replicas:8d}  {rule:10s}{analogy:11.2f}{wordsim:9.4f}{simlex:9.4f}"
              f"{time.perf_counter() - started:9.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
