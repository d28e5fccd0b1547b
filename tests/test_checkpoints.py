"""A checkpoint whose tables do not match the checksum in its state is never restored from, and a resume restores
the very checkpoint it checked."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch

from tests.train_fixtures import build_run_dir, two_topic_sentences
from w2vdist.config import load_config
from w2vdist.errors import CheckpointError
from w2vdist.rundir import RunDir
from w2vdist.train import checkpoints as ckpt
from w2vdist.train import stage
from w2vdist.train.checkpoints import TrainState
from w2vdist.train.plan import build_plan

VOCAB, DIM = 50, 8


def write_checkpoint(root, number, **meta):
    """A checkpoint as rank 0 writes it: the tables, then the state that vouches for them."""
    folder = root / ckpt.folder_name(number)
    folder.mkdir(parents=True)
    table = torch.arange(VOCAB * DIM, dtype=torch.float32).reshape(VOCAB, DIM) + number
    ckpt.save(folder, table, -table, TrainState(words_done=float(number)), meta)
    return folder


def cut_short(folder):
    tables = folder / ckpt.TABLES_FILE
    tables.write_bytes(tables.read_bytes()[:tables.stat().st_size // 2])


def test_tables_cut_short_make_a_checkpoint_unusable_with_a_message_naming_it(tmp_path):
    folder = write_checkpoint(tmp_path, 10)
    assert ckpt.is_complete(folder)
    assert ckpt.load_tables(folder, torch.device("cpu"))[0].shape == (VOCAB, DIM)
    cut_short(folder)
    assert not ckpt.is_complete(folder)
    with pytest.raises(CheckpointError, match=rf"checkpoint '{folder}' cannot be used: tables.pt has \d+ bytes"):
        ckpt.load_tables(folder, torch.device("cpu"))
    with pytest.raises(CheckpointError):
        ckpt.input_table(folder)


def test_latest_skips_a_damaged_newer_checkpoint_and_says_so(tmp_path, caplog):
    older = write_checkpoint(tmp_path, 10)
    newer = write_checkpoint(tmp_path, 20)
    assert ckpt.latest(tmp_path) == newer
    cut_short(newer)
    with caplog.at_level(logging.WARNING):
        assert ckpt.latest(tmp_path) == older
    assert f"checkpoint {newer} skipped: tables.pt has" in caplog.text


def test_a_resume_restores_the_checkpoint_it_checked_and_nothing_else_is_left(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=30))
    plan = build_plan(load_config([], [f"dim={DIM}", "resume=true"], {"out": str(run)}))
    root = RunDir(run).ray_checkpoints
    mine = {"settings": plan.settings.result_settings(), "preprocess_completed": plan.preprocess_completed}
    checked = write_checkpoint(root, 10, **mine)
    cut_short(write_checkpoint(root, 20, **mine))
    (root / "checkpoint_manager_snapshot.json").write_text("{}")  # Ray's record, which names the damaged one last
    assert stage.prepare(plan, True, root) == checked
    assert sorted(p.name for p in root.iterdir()) == [checked.name]
    # with no whole checkpoint at all, the refusal names the damaged ones
    shutil.rmtree(checked)
    cut_short(write_checkpoint(root, 30, **mine))
    with pytest.raises(CheckpointError, match=r"holds no complete checkpoint \(only damaged ones: checkpoint-0"):
        stage.check_resumable(plan, root)
