"""Schedules that follow the run (fairseq_ext.training.schedule): the plan the launcher prints with
--check-only and writes with --plan, for world sizes it does not have, on real prepared data, checked
against fairseq's own lr scheduler and transformers' linear schedule. No training: plans only."""

from __future__ import annotations

import json
import math

import pytest

from fairseq_ext.errors import UserInputError
from fairseq_ext.training import launch, schedule
from tests.conftest import REPO, shared_path
from tests.squad_fixtures import run_squad_script

ARTICLES = 8  # of the shared SQuAD part: the "half" set; the full set holds them twice
WORLD_SIZES = (1, 2, 4, 8, 16)
FINETUNING = REPO / "configs" / "finetuning"


@pytest.fixture(scope="module")
def squad_sets(gpt2_bpe_dir, tmp_path_factory) -> dict[str, object]:
    """data-bins at squad2_base's windows: "half" (ARTICLES articles) and "full" (the same questions twice,
    with other ids: exactly twice the windows)."""
    work = tmp_path_factory.mktemp("schedule")
    squad = json.loads(shared_path("data", "squad2", "squad2-dev-part.json").read_text())
    half = squad["data"][:ARTICLES]
    again = json.loads(json.dumps(half))
    for article in again:
        for paragraph in article["paragraphs"]:
            for question in paragraph["qas"]:
                question["id"] += "-again"
    valid = work / "valid.json"
    valid.write_text(json.dumps({**squad, "data": squad["data"][-1:]}))
    sets = {}
    for name, articles in (("half", half), ("full", half + again)):
        train = work / f"{name}.json"
        train.write_text(json.dumps({**squad, "data": articles}))
        sets[name] = run_squad_script_dir(train, valid, gpt2_bpe_dir, work / f"{name}-bin")
    return sets


def run_squad_script_dir(train, valid, gpt2_bpe_dir, destdir):
    run_squad_script("prepare_squad2.py", "--train", train, "--valid", valid, "--gpt2-bpe", gpt2_bpe_dir,
                     "--destdir", destdir)
    return destdir


def plan_of(data, tmp_path, *args, config: str = "squad2_base", config_dir=FINETUNING) -> dict:
    """The launcher's --check-only --plan JSON for a run from scratch (no checkpoint needed)."""
    path = tmp_path / f"plan-{len(list(tmp_path.glob('plan-*')))}.json"
    assert launch.main(["--config", config, "--config-dir", str(config_dir), "--data", str(data),
                        "--save-dir", str(tmp_path / "run"), "--from-scratch", "--check-only", "--plan",
                        str(path), *map(str, args)]) == 0
    return json.loads(path.read_text())


def windows(data) -> int:
    return json.loads((data / "squad2_features.json").read_text())["splits"]["train"]["windows"]


def test_squad2_base_trains_alike_on_1_to_16_gpus(squad_sets, tmp_path, capsys):
    """Same global batch, updates, warmup and peak lr on 1-16 GPUs (--nproc-per-node N plans for GPUs this
    machine lacks); the lr at the last update is below 1% of the peak; half the set, half the updates."""
    full = windows(squad_sets["full"])
    assert full == 2 * windows(squad_sets["half"])
    plans = {n: plan_of(squad_sets["full"], tmp_path, "--nproc-per-node", n) for n in WORLD_SIZES}
    printed = capsys.readouterr().err
    updates = math.ceil(2 * full / 48)  # the recipe: 2 epochs of 48 windows
    for n, plan in plans.items():
        assert plan["world_size"] == n
        assert plan["global_batch"] == 48 == plan["batch_size"] * n * plan["update_freq"]
        assert plan["batch_size"] <= 16  # the config's most per GPU
        assert (plan["max_update"], plan["total_num_update"]) == (updates, updates)
        assert plan["warmup_updates"] == round(0.06 * updates)
        assert plan["lr"] == 3e-5 and plan["max_epoch"] == 0
        assert plan["total_num_update"] == updates  # the lr reaches 0 as the run ends
    assert {(p["batch_size"], p["update_freq"]) for p in plans.values()} == {
        (16, 3), (12, 2), (12, 1), (6, 1), (3, 1)}
    assert ("batch: 48 windows per update = 3 per process (dataset.batch_size, the config's 16 does not "
            "divide it) x 16 processes x update_freq 1") in printed
    assert "16 processes, one per GPU (this launcher)" in printed  # planned for GPUs, not run on CPU
    half = plan_of(squad_sets["half"], tmp_path, "--nproc-per-node", 8)
    assert half["max_update"] == math.ceil(full / 48)
    assert abs(plans[8]["max_update"] - 2 * half["max_update"]) <= 1  # ceil rounds each once


def test_final_lr_is_that_of_fairseq_and_transformers_schedules(squad_sets, tmp_path):
    """The plan's lr arithmetic is fairseq's polynomial_decay (update k runs at its value after k - 1
    updates) and transformers' linear schedule with warmup, update for update."""
    import torch
    from fairseq.optim.lr_scheduler.polynomial_decay_schedule import (
        PolynomialDecayLRSchedule,
        PolynomialDecayLRScheduleConfig,
    )
    from transformers import get_linear_schedule_with_warmup

    plan = plan_of(squad_sets["half"], tmp_path)
    updates, warmup, peak = plan["max_update"], plan["warmup_updates"], plan["lr"]

    from fairseq.optim import FairseqOptimizer

    class Optimizer(FairseqOptimizer):  # what fairseq's scheduler drives
        def __init__(self):
            super().__init__(None)
            self._optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)

    fairseq = PolynomialDecayLRSchedule(PolynomialDecayLRScheduleConfig(
        warmup_updates=warmup, total_num_update=updates, lr=[peak]), Optimizer())
    torch_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    hf = get_linear_schedule_with_warmup(torch_optimizer, warmup, updates)
    for done in range(updates):  # the lr of update done + 1
        ours = schedule.lr_after(done, peak, warmup, updates)
        assert math.isclose(fairseq.step_update(done), ours, rel_tol=1e-12, abs_tol=1e-18)
        assert math.isclose(torch_optimizer.param_groups[0]["lr"], ours, rel_tol=1e-9, abs_tol=1e-18)
        torch_optimizer.step()
        hf.step()
    assert plan["final_lr"] == schedule.lr_after(updates - 1, peak, warmup, updates)


def test_overrides_win_and_another_global_batch_scales_the_lr(squad_sets, tmp_path, capsys):
    data = squad_sets["half"]
    base = plan_of(data, tmp_path)
    given = plan_of(data, tmp_path, "optimization.max_update=100", "lr_scheduler.warmup_updates=10",
                    "optimization.lr=[1e-5]", "dataset.batch_size=4", "--nproc-per-node", 2)
    assert (given["max_update"], given["warmup_updates"], given["total_num_update"]) == (100, 10, 100)
    assert (given["lr"], given["batch_size"], given["update_freq"]) == (1e-5, 4, 6)
    assert plan_of(data, tmp_path, "optimization.max_update=100")["warmup_updates"] == 6  # the share
    assert plan_of(data, tmp_path, "recipe.epochs=4")["max_update"] == 2 * base["max_update"]
    capsys.readouterr()
    doubled = plan_of(data, tmp_path, "--global-batch", 96)  # the same 2 epochs, lr by the square-root rule
    assert doubled["max_update"] == math.ceil(2 * windows(data) / 96)
    assert math.isclose(doubled["lr"], 3e-5 * math.sqrt(2))
    assert ("lr: 4.24e-05 = the recipe's 3e-05 (for 48 windows per update) x sqrt(96/48), the square-root "
            "rule for Adam") in capsys.readouterr().err
    linear = plan_of(data, tmp_path, "--global-batch", 96, "recipe.lr_scaling=linear")
    assert math.isclose(linear["lr"], 6e-5)
    with pytest.raises(UserInputError, match=r"^96 windows per update, but the recipe's lr 3e-05 is for 48 "
                                             r"and its lr_scaling is refuse: use --global-batch 48, or give "
                                             r"optimization.lr=\[LR\] yourself$"):
        plan_of(data, tmp_path, "--global-batch", 96, "recipe.lr_scaling=refuse")


@pytest.mark.parametrize("overrides, message", [
    (["optimization.max_epoch=1"], r"^the run ends \(optimization.max_epoch=1 \(about \d+ updates\)\) "
                                   r"before the lr decay does .*: drop optimization.max_epoch and set the "
                                   r"length with recipe.epochs=N"),
    (["lr_scheduler.total_num_update=100000"], r"before the lr decay does \(lr_scheduler.total_num_update="
                                               r"100000\): lr 3e-05 at the last update, 100% of the peak"),
    (["lr_scheduler.warmup_updates=5000"], r"within the warmup of 5000 updates"),
    (["optimization.max_update=50", "lr_scheduler.total_num_update=20"],
     r"^the lr decay ends at update 20 \(lr_scheduler.total_num_update\) but the run goes on to 50"),
    (["--global-batch", "50", "--nproc-per-node", "4"],
     r"^--global-batch 50 windows cannot be split evenly over 4 processes: choose a multiple of 4 "
     r"\(e.g. --global-batch 48 or 52\)$"),
    (["optimization.update_freq=[1]"], r"^optimization.update_freq 1 on 1 process cannot make 48 "
                                       r"windows per update with at most 16 per process"),
    (["recipe.warmup=6"], r"recipe.warmup=6.0 is a share of the run: from 0 to below 1"),
    (["recipe.epoch=2"], r"unknown recipe key 'epoch' \(known: global_batch, lr, warmup, epochs, updates"),
])
def test_contradictions_are_refused_in_one_line(squad_sets, tmp_path, overrides, message):
    with pytest.raises(UserInputError, match=message):
        plan_of(squad_sets["half"], tmp_path, *overrides)


def test_pretraining_recipe_counts_updates_of_its_global_batch(wiki_data_bin, tmp_path):
    """roberta_base_continue: 12,500 updates of 2,048 sequences on 1 or 16 GPUs; 1,024 per update keeps the
    sequences (25,000 updates) at lr x sqrt(1/2). The corpus size is fairseq's own count of blocks."""
    from fairseq_ext.training.preflight import compose_config, plugin_dir

    config_dir = REPO / "configs" / "pretraining"
    one, sixteen, halved = (plan_of(wiki_data_bin, tmp_path, *args, config="roberta_base_continue",
                                    config_dir=config_dir)
                            for args in ((), ("--nproc-per-node", 16), ("--global-batch", 1024)))
    assert (one["update_freq"], sixteen["update_freq"]) == (128, 8)
    assert one["max_update"] == sixteen["max_update"] == 12500 and one["warmup_updates"] == 750
    assert halved["max_update"] == 25000 and math.isclose(halved["lr"], 5e-4 / math.sqrt(2))
    assert any(note.startswith("note: 12500 updates of 2048 are") and "recipe.updates=N" in note
               for note in one["notes"])  # the test corpus is tiny: the recipe repeats it 10^5 times
    cfg = compose_config(config_dir, "roberta_base_continue", [
        f"common.user_dir={plugin_dir()}", f"task.data={wiki_data_bin}", f"checkpoint.save_dir={tmp_path}"])
    assert one["train_samples"] == schedule.train_samples(cfg) > 0


def test_a_recipe_config_states_no_derived_setting(tmp_path):
    text = (FINETUNING / "squad2_base.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(text.replace("optimization:\n", "optimization:\n  max_update: 9\n"))
    with pytest.raises(UserInputError, match=r"^config mine has a recipe and also states "
                                             r"optimization.max_update"):
        schedule.read_recipe(tmp_path, "mine", {})
    stripped = schedule.drop_top_level_key(text, "recipe")
    assert "recipe" not in stripped.replace("# ", "") or "global_batch" not in stripped
    assert stripped.splitlines()[-3:] == text.splitlines()[-3:]
    assert schedule.read_recipe(FINETUNING, "squad2_tiny", {}) is None  # states fairseq's values itself


def test_configs_without_a_recipe_keep_their_values():
    """The tiny configs state max_update and warmup themselves: the plan keeps them, and a max_epoch that
    ends the run mid-decay is a note, not an error."""
    stated = schedule.Stated(batch_size=16, update_freq=1, max_update=750, max_epoch=3, lr=0.003,
                             warmup_updates=6, total_num_update=750)
    plan = schedule.resolve(stated, None, {"max_epoch"}, 2, 398, None, "windows")
    assert (plan.max_update, plan.warmup_updates, plan.global_batch, plan.settings) == (750, 6, 32, {})
    assert plan.last_update == 3 * math.ceil(math.ceil(398 / 16) / 2)
    assert plan.notes[0].startswith("note: the run ends (optimization.max_epoch=3 (about 39 updates)) before")
    split = schedule.resolve(stated, None, set(), 16, 398, 2048, "sequences")
    assert split.settings == {"dataset.batch_size": 16, "optimization.update_freq": [8]}


def test_cmrc_gets_its_own_update_count(gpt2_bpe_dir, tmp_path):
    """docs/chinese.md's command (squad2_base on CMRC 2018 data, task.metric=cmrc): 2 epochs of its own
    windows, 6% warmup, the lr decaying to the run's end; no arithmetic by hand."""
    cmrc = json.loads(shared_path("data", "cmrc2018", "cmrc2018-trial.json").read_text())
    train, valid = tmp_path / "train.json", tmp_path / "dev.json"
    train.write_text(json.dumps({**cmrc, "data": cmrc["data"][:40]}))
    valid.write_text(json.dumps({**cmrc, "data": cmrc["data"][-5:]}))
    data = run_squad_script_dir(train, valid, gpt2_bpe_dir, tmp_path / "cmrc-bin")
    plan = plan_of(data, tmp_path, "task.metric=cmrc")
    updates = math.ceil(2 * windows(data) / 48)
    assert (plan["max_update"], plan["warmup_updates"]) == (updates, round(0.06 * updates))
    assert plan["total_num_update"] == updates  # the lr reaches 0 as the run ends
