"""The fairseq plugin for SQuAD v2: task squad2, criterion span_qa, model roberta_span_qa, the prepared
features (scripts/prepare_squad2.py), the configs and the command-line errors."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils, metrics, tasks
from omegaconf import OmegaConf

from fairseq_ext.checkpoints import load_checkpoint
from fairseq_ext.errors import UserInputError
from fairseq_ext.plugin.tasks.squad2 import SquadV2Config
from fairseq_ext.squad import build_features, load_squad, postprocess_predictions, squad_evaluate
from fairseq_ext.squad.format import METADATA_FILE, FeatureArrays
from fairseq_ext.squad.settings import DEFAULT, TINY, QASettings
from fairseq_ext.tokenizer import Gpt2Bpe
from tests.conftest import REPO, command, shared_path
from tests.squad_fixtures import TINY_WINDOWS, run_squad_script

TINY_SETTINGS = {"max_positions": 128, **TINY.windows()}


def squad_task(data_dir, **settings):
    cfg = OmegaConf.structured(SquadV2Config(data=str(data_dir), **{**TINY_SETTINGS, **settings}))
    cfg._name = "squad2"
    return tasks.setup_task(cfg)


def tiny_model(task):
    return task.build_model(OmegaConf.create({"_name": "roberta_span_qa_tiny", "dropout": 0.0,
                                              "attention_dropout": 0.0}))


def compose(config_name: str):
    """The config fairseq-hydra-train composes, through the launcher's own composition."""
    from fairseq_ext.training.preflight import compose_config

    required = ["task.data=DATA", "checkpoint.save_dir=SAVE", "checkpoint.restore_file=CKPT"]
    return compose_config(REPO / "configs" / "finetuning", config_name, required)


def test_model_restores_masked_lm_checkpoint(squad2_data_bin, tiny_pretrained_checkpoint):
    task = squad_task(squad2_data_bin)
    model = tiny_model(task)
    fresh_head = {k: v.clone() for k, v in model.qa_outputs.state_dict().items()}
    pretrained = load_checkpoint(tiny_pretrained_checkpoint)["model"]
    assert any(k.startswith("encoder.lm_head.") for k in pretrained)
    # what fairseq's trainer does with checkpoint.restore_file (strict loading)
    model.load_state_dict(dict(pretrained), strict=True)

    state = model.state_dict()
    head = {"qa_outputs.weight", "qa_outputs.bias"}
    assert head <= state.keys()
    assert all(key.startswith("encoder.sentence_encoder.") for key in state.keys() - head)
    for key, value in state.items():
        if key.startswith("encoder."):
            assert torch.equal(value, pretrained[key]), key
    assert state["encoder.sentence_encoder.embed_tokens.weight"].shape == (50265, 64)
    # the new head keeps its BERT initialisation: normal(0, 0.02) weights, zero bias
    assert torch.equal(state["qa_outputs.weight"], fresh_head["weight"])
    assert state["qa_outputs.weight"].shape == (2, 64) and not state["qa_outputs.bias"].any()
    assert 0.01 < state["qa_outputs.weight"].std().item() < 0.03


def test_fine_tuned_checkpoint_reloads_with_its_head(tiny_squad_checkpoint):
    stored = load_checkpoint(tiny_squad_checkpoint)["model"]
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(tiny_squad_checkpoint)])
    state = models[0].state_dict()
    assert state.keys() == stored.keys()
    assert all(torch.equal(state[key], stored[key]) for key in stored)
    assert cfg.model._name == "roberta_span_qa_tiny" and cfg.task._name == "squad2"


def test_span_loss_is_mean_of_start_and_end_cross_entropy_and_ignores_padding(squad2_data_bin):
    task = squad_task(squad2_data_bin)
    task.load_dataset("train")
    dataset = task.datasets["train"]
    criterion = task.build_criterion(OmegaConf.create({"_name": "span_qa"}))
    torch.manual_seed(0)
    model = tiny_model(task).eval()
    short = int(np.argmin(dataset.sizes))
    long_ = int(np.argmax(dataset.sizes))
    shorter_answered = (dataset.arrays.start_positions > 0) & (dataset.sizes < dataset.sizes[long_])
    answered = int(np.flatnonzero(shorter_answered)[0])

    alone = dataset.collater([short, answered])
    padded = dataset.collater([short, answered, long_])
    with torch.no_grad():
        loss_alone, size_alone, log_alone = criterion(model, alone, reduce=False)
        loss_padded, _, log_padded = criterion(model, padded, reduce=False)
        starts, ends = model(alone["net_input"]["src_tokens"])
    assert alone["net_input"]["src_tokens"].shape[1] < padded["net_input"]["src_tokens"].shape[1]
    torch.testing.assert_close(loss_padded[:2], loss_alone)  # more padding, same loss

    expected = []
    for row, length in enumerate(alone["net_input"]["src_lengths"].tolist()):
        start_ce = F.cross_entropy(starts[row, :length], alone["start_positions"][row])
        end_ce = F.cross_entropy(ends[row, :length], alone["end_positions"][row])
        expected.append((start_ce + end_ce) / 2)
    torch.testing.assert_close(loss_alone, torch.stack(expected))
    assert size_alone == 2 and alone["start_positions"][1] > 0

    summed, _, logging_output = criterion(model, alone)
    torch.testing.assert_close(summed, loss_alone.sum())
    with metrics.aggregate(new_root=True) as agg:
        criterion.reduce_metrics([logging_output])
    logged = agg.get_smoothed_values()
    assert logged["loss"] == pytest.approx(loss_alone.mean().item(), abs=1e-3)
    start_correct = sum(int(starts[r, :n].argmax() == alone["start_positions"][r])
                        for r, n in enumerate(alone["net_input"]["src_lengths"].tolist()))
    assert logged["start_acc"] == pytest.approx(100 * start_correct / 2, abs=0.1)


def test_validation_em_f1_are_whole_question_metrics_on_any_number_of_workers(squad2_data_bin,
                                                                               tiny_squad_checkpoint):
    """EM/F1 summed batch by batch (and worker by worker, as fairseq all-reduces logging outputs) equal
    the official metric over all windows post-processed at once."""
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(tiny_squad_checkpoint)])
    model = models[0].eval()
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    criterion = task.build_criterion(OmegaConf.create({"_name": "span_qa"}))
    squad = load_squad(squad2_data_bin / "valid.json")
    assert len(dataset) == len(squad.examples) == 262

    # the reference: every window at once
    everything = dataset.collater(list(range(len(dataset))))
    windows = everything["evaluation"]["features"]
    assert len(windows) == len(dataset.arrays) and len(windows) > len(dataset)  # several windows per question
    with torch.no_grad():
        starts, ends = model(everything["net_input"]["src_tokens"])
    predictions = postprocess_predictions(squad.examples, windows, starts.numpy(), ends.numpy(),
                                          version_2_with_negative=True)
    reference = squad_evaluate(squad, predictions.answers)

    by_tokens = {"max_tokens": 1024}
    # a limit below the largest question's windows: those questions are batches of their own, still scored
    below_largest = {"max_tokens": int(np.sort(dataset.padded_tokens)[-5])}
    for workers, batching in ((1, {"max_sentences": 7}), (2, {"max_sentences": 7}), (1, by_tokens),
                              (2, below_largest)):
        shards = [list(task.get_batch_iterator(dataset, num_shards=workers, shard_id=shard, **batching)
                       .next_epoch_itr(shuffle=False)) for shard in range(workers)]
        assert len({len(batches) for batches in shards}) == 1  # fairseq pads shards with dummy batches
        with metrics.aggregate(new_root=True) as agg:
            for step_samples in zip(*shards):
                outputs = [task.valid_step(sample, model, criterion)[2] for sample in step_samples if sample]
                task.reduce_metrics(outputs, criterion)
        logged = agg.get_smoothed_values()
        assert logged["em"] == pytest.approx(reference["exact"], abs=1e-9)
        assert logged["f1"] == pytest.approx(reference["f1"], abs=1e-9)

    # SQuAD 1.1 data (the answerable questions): no null answers, the v1.1 metric (exact_match)
    answerable = {old: new for new, old in enumerate(i for i, e in enumerate(squad.examples) if e.answers)}
    rows = [row for row, window in enumerate(windows) if window.example_index in answerable]
    v1_examples = [squad.examples[i] for i in answerable]
    v1_windows = [dataclasses.replace(windows[row], example_index=answerable[windows[row].example_index])
                  for row in rows]
    v1 = task.score_questions({"examples": v1_examples, "features": v1_windows, "version_2": False},
                              starts[rows], ends[rows])
    answers = postprocess_predictions(v1_examples, v1_windows, starts[rows].numpy(), ends[rows].numpy(),
                                      version_2_with_negative=False).answers
    assert len(answers) == v1["squad_questions"] == 112 and all(answers.values())
    v1_reference = squad_evaluate(v1_examples, answers, version_2=False)
    assert v1["squad_em_sum"] == pytest.approx(v1_reference["exact_match"] * 112 / 100)
    assert v1["squad_f1_sum"] == pytest.approx(v1_reference["f1"] * 112 / 100)
    print(f"validation EM {logged['em']:.2f} F1 {logged['f1']:.2f} over {len(squad.examples)} questions")


def test_batches_by_tokens_hold_every_window_once_within_max_tokens(squad2_data_bin):
    """dataset.max_tokens: length-grouped batches, windows padded to the longest of their batch; training
    items are windows, validation items whole questions."""
    task = squad_task(squad2_data_bin)
    for split in ("train", "valid"):
        task.load_dataset(split)
        dataset = task.dataset(split)
        batches = list(task.get_batch_iterator(dataset, max_tokens=1024, seed=1).next_epoch_itr(shuffle=True))
        shapes = [tuple(batch["net_input"]["src_tokens"].shape) for batch in batches]
        assert all(rows * length <= 1024 for rows, length in shapes)
        assert len({rows for rows, _ in shapes}) > 2  # short windows make bigger batches
        windows = sorted(w for batch in batches for w in batch["id"].tolist())
        assert windows == list(range(len(dataset)))  # every item once
        assert sum(rows for rows, _ in shapes) == len(dataset.arrays)


def test_predictions_do_not_depend_on_batching(tiny_squad_checkpoint, squad2_data_bin, gpt2_bpe_dir):
    """The shared prediction loop (predict_squad2.py and the HF commands): windows one by one, 32 a batch
    or by tokens give the same logits (1e-5) and the same answers."""
    from fairseq_ext.commands.predict_squad2 import fairseq_forward, load_model
    from fairseq_ext.squad.predict import length_batches, window_logits

    model, task_cfg, task = load_model(tiny_squad_checkpoint, gpt2_bpe_dir, "cpu", fp16=False)
    examples = load_squad(squad2_data_bin / "valid.json").examples[:100]
    tokenizer = Gpt2Bpe.from_dir(gpt2_bpe_dir).to_dictionary(task.source_dictionary.symbols)
    features = build_features(examples, tokenizer, **TINY.windows())
    forward = fairseq_forward(model, "cpu")
    lengths = np.array([len(f.input_ids) for f in features])
    batches = length_batches(lengths, None, 2048)
    assert all(len(b) * lengths[b].max() <= 2048 for b in batches) and max(len(b) for b in batches) > 16
    one_by_one = window_logits(features, forward, batch_size=1)
    answers = postprocess_predictions(examples, features, *one_by_one, version_2_with_negative=True).answers
    for batching in ({"batch_size": 32}, {"batch_size": None, "max_tokens": 2048}):
        batched = window_logits(features, forward, **batching)
        for side in (0, 1):
            assert max(np.abs(a - b).max() for a, b in zip(one_by_one[side], batched[side])) < 1e-5
        assert postprocess_predictions(examples, features, *batched,
                                       version_2_with_negative=True).answers == answers


def test_prepared_features_are_the_squad_modules(squad2_data_bin, gpt2_bpe_dir):
    metadata = json.loads((squad2_data_bin / METADATA_FILE).read_text())
    assert [metadata[k] for k in ("max_seq_length", "doc_stride", "max_query_length")] == \
        list(TINY.windows().values())
    assert (squad2_data_bin / "dict.txt").read_bytes() == (gpt2_bpe_dir / "dict.txt").read_bytes()
    task = squad_task(squad2_data_bin)
    tokenizer = Gpt2Bpe.from_dir(gpt2_bpe_dir).to_dictionary(task.source_dictionary.symbols)
    squad = load_squad(squad2_data_bin / "valid.json")
    features = build_features(squad.examples, tokenizer, **TINY.windows())
    arrays = FeatureArrays.load(squad2_data_bin / "valid.features.npz")
    assert len(arrays) == len(features) == metadata["splits"]["valid"]["windows"]
    assert all(arrays.feature(i) == feature for i, feature in enumerate(features))
    assert metadata["splits"]["valid"]["questions"] == 262 and metadata["splits"]["train"]["questions"] == 208
    assert metadata["splits"]["valid"]["unknown_tokens"] == 0


def test_prepare_counts_repaired_and_skipped_answers(tmp_path, gpt2_bpe_dir, capsys):
    squad = json.loads(shared_path("data", "squad2", "squad2-dev-part.json").read_text())
    paragraph = squad["data"][0]["paragraphs"][0]
    answered = [qa for qa in paragraph["qas"] if qa["answers"]]
    answered[0]["answers"][0]["answer_start"] += 3  # shifted: the text is found nearby
    answered[1]["answers"][0]["text"] = "words that are not in the paragraph"
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [paragraph]}]}))

    command("prepare_squad2").main(["--train", str(path), "--gpt2-bpe", str(gpt2_bpe_dir),
                                   "--destdir", str(tmp_path / "bin"), *TINY_WINDOWS, "--quiet"])
    printed = capsys.readouterr()
    assert "1 answer_start repaired, 1 questions skipped" in printed.out  # --quiet keeps the counts
    assert "features" not in printed.err  # and drops the progress bar
    counts = json.loads((tmp_path / "bin" / METADATA_FILE).read_text())["splits"]["train"]
    assert counts["repaired"] == 1 and counts["skipped"] == 1
    assert counts["skipped_questions"][0]["id"] == answered[1]["id"]
    assert counts["questions"] == len(paragraph["qas"]) - 1
    assert not (tmp_path / "bin" / "valid.json").exists()


def test_prepare_errors_are_one_line(tmp_path, gpt2_bpe_dir):
    """As a command: exit 2 and one line; the in-process cases below raise what run_cli prints as one line."""
    done = run_squad_script("prepare_squad2.py", "--train", tmp_path / "missing.json",
                            "--gpt2-bpe", gpt2_bpe_dir, "--destdir", tmp_path / "bin", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"prepare_squad2.py: error: --train file not found: {tmp_path / 'missing.json'}"]

    prepare = command("prepare_squad2").main
    path = tmp_path / "squad.json"
    args = ["--train", str(path), "--gpt2-bpe", str(gpt2_bpe_dir), "--destdir", str(tmp_path / "bin")]
    path.write_text('{"version": "v2.0", "data": [')
    with pytest.raises(UserInputError, match="not valid JSON"):
        prepare(args)
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [
        {"context": "c", "qas": [{"id": "q1", "answers": [], "is_impossible": True}]}]}]}))
    with pytest.raises(UserInputError, match="q1.*question"):
        prepare(args)
    with pytest.raises(UserInputError, match=r"no tokenizer files \(encoder.json \+ vocab.bpe or "
                                             r"sentencepiece.bpe.model\)"):
        prepare([*args[:2], "--gpt2-bpe", str(tmp_path), *args[4:]])
    with pytest.raises(SystemExit):
        prepare(args[2:])


def test_finetune_preflight(squad2_data_bin, tiny_pretrained_checkpoint, tmp_path):
    args = ["--config", "squad2_tiny", "--data", str(squad2_data_bin),
            "--restore", str(tiny_pretrained_checkpoint),
            "--save-dir", str(tmp_path / "save"), "--check-only"]
    done = run_squad_script("finetune_squad2.sh", *args)
    assert "50265 embedding rows" in done.stderr and not (tmp_path / "save").exists()

    from fairseq_ext.training.launch import main as launch

    with_config_dir = ["--config-dir", str(REPO / "configs" / "finetuning"), *args]
    with pytest.raises(UserInputError, match="prepared with max_seq_length=128") as refused:
        launch([*with_config_dir, "task.max_seq_length=96"])
    # the fix is a command to copy: the data's sources and tokenizer as recorded, the config's windows;
    # the override keeping the data's windows is offered only because they fit the model's positions
    assert (f"prepare it with these windows: python scripts/prepare_squad2.py --train "
            f"{squad2_data_bin.parent / 'train.json'}") in str(refused.value)
    assert str(refused.value).endswith("--max-seq-length 96 --doc-stride 32 --max-query-length 32 (or "
                                       "keep the data with task.max_seq_length=128)")
    with pytest.raises(UserInputError, match="exceeds the model's 128 positions") as refused:
        launch([*with_config_dir, "task.max_seq_length=384"])
    assert "set task.max_seq_length=128 or less, with data prepared so: python scripts/prepare_squad2.py" \
        in str(refused.value)
    with pytest.raises(UserInputError, match="data directory not found"):
        launch([*with_config_dir[:4], "--data", str(tmp_path / "nowhere"), *with_config_dir[6:]])


def test_predict_refuses_a_masked_lm_checkpoint(tiny_pretrained_checkpoint, squad2_data_bin, gpt2_bpe_dir,
                                                tmp_path):
    with pytest.raises(UserInputError, match="is not a SQuAD checkpoint"):
        command("predict_squad2").main(["--checkpoint", str(tiny_pretrained_checkpoint), "--data",
                                       str(squad2_data_bin / "valid.json"), "--gpt2-bpe", str(gpt2_bpe_dir),
                                       "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_base_config_follows_the_roberta_paper():
    cfg = compose("squad2_base")
    lr = cfg.optimization.lr[0]
    assert 1.5e-5 <= lr <= 3e-5
    assert cfg.dataset.batch_size * cfg.optimization.update_freq[0] == 48
    assert cfg.optimization.max_epoch == 2
    assert cfg.lr_scheduler._name == "polynomial_decay"
    assert math.isclose(cfg.lr_scheduler.warmup_updates / cfg.optimization.max_update, 0.06, abs_tol=0.001)
    assert cfg.optimizer._name == "adam" and cfg.optimizer.weight_decay == 0.01
    assert cfg.common.fp16
    assert all(cfg.checkpoint[f"reset_{x}"] for x in ("optimizer", "lr_scheduler", "meters", "dataloader"))
    assert cfg.checkpoint.best_checkpoint_metric == "f1" and cfg.checkpoint.maximize_best_checkpoint_metric
    assert cfg.task._name == "squad2" and cfg.criterion._name == "span_qa"
    assert cfg.model._name == "roberta_span_qa_base"
    assert (cfg.task.max_seq_length, cfg.task.doc_stride, cfg.task.max_query_length) == (384, 128, 64)


def test_tiny_config_fits_the_tiny_pretrained_model():
    cfg = compose("squad2_tiny")
    pretraining = OmegaConf.load(REPO / "configs" / "pretraining" / "tiny.yaml").model
    model = squad_task_config_only(cfg).build_model(cfg.model)
    assert cfg.common.cpu and not cfg.common.fp16
    assert cfg.task.max_positions == pretraining["max_positions"] == model.max_positions()
    for name in ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads"):
        assert getattr(model.args, name) == pretraining[name], name


def squad_task_config_only(cfg):
    """A squad2 task for cfg's settings on the GPT-2 dictionary alone (no prepared data needed)."""
    task_cfg = OmegaConf.merge(cfg.task, {"data": str(shared_path("gpt2_bpe"))})
    return tasks.setup_task(task_cfg)


@pytest.mark.parametrize("config, declared", [("squad2_base", DEFAULT), ("squad2_tiny", TINY)])
def test_configs_windows_are_those_of_qa_settings(config, declared):
    """QASettings declares the windows once: a fine-tuning config states the same values (the task checks
    them against the prepared data, and the tools prepare with QASettings'), and they fit its model."""
    task = OmegaConf.load(REPO / "configs" / "finetuning" / f"{config}.yaml").task
    stated = QASettings.from_object({name: task.get(name) for name in QASettings.names()}, base=declared)
    assert stated == declared
    declared.check_fits(task.max_positions)
