"""Checks a fairseq training run before it starts, then runs fairseq-hydra-train on it.

    python scripts/launch_train.py --config NAME --data DIR --save-dir DIR [--restore CKPT] [KEY=VALUE ...]

The config is composed exactly as fairseq-hydra-train composes it (YAML + overrides), and these
pitfalls are reported in one line each before any training starts:
  - the data directory is missing, or lacks the train/valid splits the task reads;
  - the checkpoint to start from is missing or cannot be loaded;
  - the checkpoint's embedding has a different number of rows than the task's dictionary
    (dict.txt + the symbols the task adds, e.g. <mask>);
  - the checkpoint's num_updates already reaches optimization.max_update while the optimizer is restored
    (fairseq would stop at once);
  - a validation split too small for one batch (fewer samples than dataset.required_batch_size_multiple);
  - fine-tuning (task squad2) with no checkpoint to start from, unless --from-scratch is given;
  - fp16 on CPU (common.cpu=true), or fp16 or distributed training where no CUDA GPU is visible.
A run whose save dir already holds checkpoint_last.pt resumes from it (the --restore checkpoint only
seeds a fresh run), so an interrupted job continues when the same command is run again; once the run
has reached max_update, running it again reports that and does nothing. On resuming, the records of
updates after the checkpoint (done again by the resumed run) are removed from common.log_file.
Used by scripts/pretrain.sh (masked LM) and scripts/finetune_squad2.sh (SQuAD v2): the checks follow the
config's task.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import UserInputError, run_cli
from fairseq_ext.outputs import write_text_file

REPO = Path(__file__).resolve().parents[1]

RESET_FLAGS = ("reset_optimizer", "reset_lr_scheduler", "reset_meters", "reset_dataloader")
DEFAULT_RESTORE = "checkpoint_last.pt"  # fairseq's default: <save_dir>/checkpoint_last.pt


def parse_args(argv: Optional[Sequence[str]]):
    parser = argparse.ArgumentParser(
        prog="launch_train.py",
        description=__doc__.split("\n\n")[0],
        epilog="Any KEY=VALUE argument is a hydra override passed on to fairseq-hydra-train "
        "(e.g. optimization.max_update=2000 dataset.batch_size=16 hydra.run.dir=DIR).",
    )
    parser.add_argument("--config", required=True,
                        help="config name in --config-dir (without .yaml), or the path of a YAML file")
    parser.add_argument("--config-dir", default=str(REPO / "configs" / "pretraining"),
                        help="directory of the hydra configs (default: configs/pretraining)")
    parser.add_argument("--data", required=True, help="binarized data directory (task.data)")
    parser.add_argument("--save-dir", required=True, help="checkpoint directory (checkpoint.save_dir)")
    parser.add_argument("--restore", help="checkpoint to start from (checkpoint.restore_file); "
                        "ignored when SAVE_DIR/checkpoint_last.pt exists (the run then resumes)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="fine-tune a randomly initialised model (else fine-tuning needs --restore)")
    parser.add_argument("--check-only", action="store_true",
                        help="check the config, data and checkpoint (not the GPUs: usable on a login node), "
                        "do not train")
    args, overrides = parser.parse_known_args(argv)
    for item in overrides:
        if "=" not in item or item.startswith("-"):
            parser.error(f"unrecognized argument: {item} (hydra overrides are KEY=VALUE)")
    return args, overrides


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, overrides = parse_args(argv)
    config_dir, config_name = resolve_config(args.config, args.config_dir)
    user_dir = plugin_dir()
    overrides = [
        f"common.user_dir={user_dir}",
        f"task.data={':'.join(str(Path(p).resolve()) for p in args.data.split(':'))}",
        f"checkpoint.save_dir={Path(args.save_dir).resolve()}",
        *([f"checkpoint.restore_file={Path(args.restore).resolve()}"] if args.restore else []),
        *overrides,
    ]
    with quiet_logging():
        cfg = compose_config(config_dir, config_name, overrides)
        resume, finished, resumed_updates = preflight(cfg, args.from_scratch)
    if args.check_only or finished:
        return 0
    overrides += resume
    check_devices(cfg)
    if resumed_updates is not None and cfg.common.log_file:
        dropped = drop_records_after(Path(cfg.common.log_file), resumed_updates)
        if dropped:
            report(f"{cfg.common.log_file}: removed {dropped} records of updates after {resumed_updates} "
                   "(the resumed run does them again)")
    save_dir = Path(cfg.checkpoint.save_dir)
    hydra_defaults = [f"hydra.run.dir={save_dir}", "hydra.job.chdir=false"]  # .hydra/ + log in save_dir
    given = {item.split("=", 1)[0] for item in overrides}
    hydra_args = [item for item in hydra_defaults if item.split("=", 1)[0] not in given] + overrides
    return run_fairseq_hydra_train(config_dir, config_name, hydra_args)


def resolve_config(config: str, config_dir: str) -> tuple[Path, str]:
    path = Path(config)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserInputError(f"config not found: {path}")
        return path.resolve().parent, path.stem
    directory = Path(config_dir).resolve()
    if not (directory / f"{config}.yaml").is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise UserInputError(f"config {config!r} not found in {directory} (available: {', '.join(known)})")
    return directory, config


def plugin_dir() -> Path:
    """Where the installed fairseq_ext package lives: fairseq imports a --user-dir by its directory, and
    refuses one module name seen at two paths, so this must be the copy Python imports."""
    import fairseq_ext

    return Path(fairseq_ext.__file__).resolve().parent


def compose_config(config_dir: Path, config_name: str, overrides: list[str]):
    """The config fairseq-hydra-train will see (hydra.* overrides only concern hydra itself)."""
    from fairseq.dataclass.initialize import add_defaults, hydra_init
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    import fairseq_ext.plugin  # noqa: F401  (registers the plugin's tasks and models, as --user-dir will)

    hydra_init(config_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hydra's deprecation notes on fairseq's schema matching
            with initialize_config_dir(config_dir=str(config_dir), version_base="1.1"):
                cfg = compose(config_name=config_name,
                              overrides=[o for o in overrides if not o.startswith("hydra.")])
        add_defaults(cfg)
        return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except (HydraException, OmegaConfBaseException) as err:
        reasons = [str(e).splitlines()[0].rstrip(".") for e in (err, err.__cause__) if e is not None]
        raise UserInputError(f"config {config_name}: {': '.join(reasons)}") from None


FINE_TUNING_TASKS = ("squad2",)  # tasks that start from a pretrained model


def preflight(cfg, from_scratch: bool = False) -> tuple[list[str], bool, Optional[int]]:
    """Runs the checks; returns the overrides that make an interrupted run resume, whether the run in the
    save dir has already finished, and the update count a resumed run restarts from (None otherwise)."""
    check_data(cfg, [Path(p) for p in cfg.task.data.split(":")])
    if (cfg.common.fp16 or cfg.common.memory_efficient_fp16) and cfg.common.cpu:
        raise UserInputError("common.fp16=true with common.cpu=true: half precision needs a CUDA GPU; set "
                             "common.fp16=false to train on CPU (the tiny configs do)")
    task = setup_task(cfg)
    check_valid_batches(cfg, task)
    start, resets, resume = starting_point(cfg.checkpoint)
    if start is None:
        if cfg.task._name in FINE_TUNING_TASKS and not from_scratch:
            raise UserInputError(f"no checkpoint to fine-tune: pass --restore CKPT (a pretrained RoBERTa) or "
                                 f"--from-scratch (task {cfg.task._name} from a random initialisation)")
        report(f"training from scratch on {cfg.task.data} ({len(task.source_dictionary)} symbols)")
        return resume, False, None
    resuming = start == last_checkpoint(cfg.checkpoint)
    finished, updates = check_checkpoint(cfg, task, start, resets, resuming)
    return resume, finished, updates if resuming else None


def starting_point(ckpt) -> tuple[Optional[Path], dict, list[str]]:
    """(checkpoint fairseq will load or None, its reset flags, overrides to resume) with fairseq's rules,
    except that an existing checkpoint_last.pt always wins: rerunning the command continues the run."""
    last = last_checkpoint(ckpt)
    seed = next((p for p in (ckpt.finetune_from_model, ckpt.continue_once) if p), None)
    if ckpt.restore_file != DEFAULT_RESTORE:
        seed = ckpt.restore_file
    if last.exists():
        resume = []
        if seed:
            report(f"{last} exists: resuming the interrupted run (not restarting from {seed})")
            resume = [f"checkpoint.restore_file={DEFAULT_RESTORE}", "checkpoint.finetune_from_model=null",
                      "checkpoint.continue_once=null", *(f"checkpoint.{flag}=false" for flag in RESET_FLAGS)]
        return last, {flag: False for flag in RESET_FLAGS}, resume
    if seed is None:
        return None, {}, []
    # finetune_from_model implies every reset (fairseq.checkpoint_utils.load_checkpoint)
    implied = ckpt.finetune_from_model is not None and ckpt.restore_file == DEFAULT_RESTORE
    return Path(seed), {flag: implied or ckpt[flag] for flag in RESET_FLAGS}, []


def last_checkpoint(ckpt) -> Path:
    return Path(ckpt.save_dir) / f"checkpoint_last{ckpt.checkpoint_suffix}.pt"


def check_data(cfg, data_paths: list[Path]) -> None:
    """Every shard holds the train split; the first also the valid splits (fairseq reads them there)."""
    for path in data_paths:
        if not path.is_dir():
            raise UserInputError(f"data directory not found: {path} (task.data)")
    valid_splits = [] if cfg.dataset.disable_validation else cfg.dataset.valid_subset.split(",")
    wanted = [(path, cfg.dataset.train_subset) for path in data_paths]
    wanted += [(data_paths[0], split) for split in valid_splits]
    for path, split in wanted:
        if not split_present(path, split):
            hint = PREPARE_HINTS.get(cfg.task._name, PREPARE_HINTS["masked_lm"])
            raise UserInputError(f"data directory {path} has no {split!r} split: {hint}")


# How each task's data directory is made, for the missing-split message.
PREPARE_HINTS = {
    "masked_lm": "binarize the corpus with fairseq-preprocess --only-source --srcdict DICT "
    "--trainpref TRAIN --validpref VALID",
    "squad2": "run scripts/prepare_squad2.py --train JSON --valid JSON --gpt2-bpe DIR --destdir DIR",
}


def split_present(path: Path, split: str) -> bool:
    """fairseq's indexed datasets are SPLIT.bin + SPLIT.idx (raw text: a file SPLIT), in the directory or
    in per-input subdirectories (input0/train.bin); task squad2 stores SPLIT.features.npz."""
    for directory in (path, *(p for p in path.iterdir() if p.is_dir())):
        if (directory / f"{split}.bin").is_file() and (directory / f"{split}.idx").is_file():
            return True
        if (directory / split).is_file() or (directory / f"{split}.features.npz").is_file():
            return True
    return False


def setup_task(cfg):
    from fairseq import tasks

    try:
        return tasks.setup_task(cfg.task)
    except (OSError, ValueError, KeyError, AssertionError) as err:
        raise UserInputError(f"cannot set up task {cfg.task._name} on {cfg.task.data}: {err}") from None


def check_checkpoint(cfg, task, path: Path, resets: dict, resuming: bool) -> tuple[bool, int]:
    """Checks the checkpoint training starts from; returns (True when it is the save dir's own
    checkpoint_last.pt of a run that already reached max_update, its num_updates)."""
    from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint

    state = load_checkpoint(path)
    info = checkpoint_info(state)
    del state
    symbols = len(task.source_dictionary)
    if info.embedding_rows is not None and info.embedding_rows != symbols:
        raise UserInputError(
            f"checkpoint {path} has {info.embedding_rows} embedding rows but task {cfg.task._name} "
            f"has {symbols} symbols ({describe_dictionary(cfg, task)}): binarize the data with the "
            f"checkpoint's dict.txt (fairseq-preprocess --srcdict)"
        )
    max_update = cfg.optimization.max_update
    restores_updates = not resets["reset_optimizer"] and info.has_optimizer_state
    if restores_updates and 0 < max_update <= info.num_updates:
        if resuming:  # the same command run again after the run finished: nothing to do
            report(f"{path} is at {info.num_updates} updates: the run has finished "
                   f"(raise optimization.max_update={max_update} to train further)")
            return True, info.num_updates
        raise UserInputError(
            f"checkpoint {path} is at {info.num_updates} updates and optimization.max_update={max_update}: "
            f"training would stop at once; raise optimization.max_update or reset with "
            f"checkpoint.reset_optimizer=true"
        )
    first = info.num_updates if restores_updates else 0
    verb = "resuming from" if resuming else "starting from"
    report(f"{verb} {path} ({info.model_name}, {info.embedding_rows} embedding rows, "
           f"update {first} of {max_update or 'unlimited'})")
    return False, info.num_updates


def check_valid_batches(cfg, task) -> None:
    """fairseq makes batches in multiples of dataset.required_batch_size_multiple and drops a smaller
    remainder: a validation split with fewer samples has no batch at all ("The dataset is empty")."""
    if cfg.dataset.disable_validation:
        return
    multiple = cfg.dataset.required_batch_size_multiple
    for split in cfg.dataset.valid_subset.split(","):
        try:
            task.load_dataset(split, combine=False, epoch=1)
        except (OSError, ValueError, KeyError, AssertionError) as err:
            raise UserInputError(f"cannot load the {split!r} split of {cfg.task.data}: {err}") from None
        samples = len(task.dataset(split))
        if samples < multiple:
            raise UserInputError(
                f"the {split!r} split of {cfg.task.data} has {samples} samples, fewer than "
                f"dataset.required_batch_size_multiple={multiple}: fairseq would make no batch of it; add "
                f"validation data or set dataset.required_batch_size_multiple=1")


def drop_records_after(log_file: Path, num_updates: int) -> int:
    """Removes from fairseq's JSON log the records of updates after ``num_updates``: an interrupted run
    logged them after its last checkpoint, and the resumed run logs them again. Returns how many."""
    if not log_file.is_file():
        return 0
    lines = log_file.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _record_update(line) <= num_updates]
    if len(kept) < len(lines):
        write_text_file(log_file, "".join(kept))
    return len(lines) - len(kept)


def _record_update(line: str) -> float:
    """The update a fairseq JSON record was logged at (num_updates, train_num_updates, valid_num_updates);
    -inf for any other line (the config, the model)."""
    if not line.startswith("{"):
        return float("-inf")
    try:
        record = json.loads(line)
    except ValueError:
        return float("-inf")
    value = next((v for k, v in record.items() if k == "num_updates" or k.endswith("_num_updates")), None)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("-inf")


def check_devices(cfg) -> None:
    """fp16 and fairseq's distributed training need CUDA (they fail with a traceback without it)."""
    import torch

    if torch.cuda.is_available():
        return
    if cfg.common.fp16 or cfg.common.memory_efficient_fp16:
        raise UserInputError("common.fp16=true needs a CUDA GPU and none is visible: run on a GPU node "
                             "(or try on CPU with common.fp16=false common.cpu=true)")
    if cfg.distributed_training.distributed_world_size > 1:
        raise UserInputError(f"distributed_training.distributed_world_size="
                             f"{cfg.distributed_training.distributed_world_size} needs CUDA GPUs and none "
                             f"is visible")


def describe_dictionary(cfg, task) -> str:
    """'DIR/dict.txt: 50264 symbols + <mask>' from what the task added to the file's dictionary."""
    from fairseq.data import Dictionary

    dict_file = Path(cfg.task.data.split(":")[0]) / "dict.txt"
    if not dict_file.is_file():
        return f"{len(task.source_dictionary)} symbols"
    in_file = len(Dictionary.load(str(dict_file)))
    added = task.source_dictionary.symbols[in_file:]
    return f"{dict_file}: {in_file} symbols" + "".join(f" + {s}" for s in added)


def run_fairseq_hydra_train(config_dir: Path, config_name: str, overrides: list[str]) -> int:
    """fairseq-hydra-train in this process: the checkpoint allow-list registered by fairseq_ext.checkpoints
    stays in force for its torch.load."""
    from fairseq_cli.hydra_train import cli_main

    sys.argv = ["fairseq-hydra-train", "--config-dir", str(config_dir), "--config-name", config_name,
                *overrides]
    cli_main()
    return 0


@contextlib.contextmanager
def quiet_logging():
    """Importing fairseq's tasks sets the root logger to DEBUG (a logging.basicConfig in a speech task):
    the checks print only their own lines (whatever the loggers' levels become meanwhile);
    fairseq-hydra-train configures logging afresh."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def report(message: str) -> None:
    print(f"launch_train: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    run_cli(main)
