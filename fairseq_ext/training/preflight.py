"""The checks run before fairseq-hydra-train starts, on the config exactly as it will compose it.

Each pitfall is one line (UserInputError):
  - a numeric config value outside its range (CONFIG_RANGES, declared once; e.g. dataset.batch_size=0);
  - the data directory is missing, or lacks the train/valid splits the task reads;
  - a split that fairseq would fail on: empty, a .bin of another size than its .idx says (truncated), a
    token id beyond the data's dict.txt (fairseq_ext.corpus.indexed.check_indexed_dataset);
  - task.tokens_per_sample above the model's positions (model.max_positions);
  - the save dir cannot be written (below a file, a device, a read-only filesystem);
  - the checkpoint to start from is missing or cannot be loaded;
  - a fine-tuned checkpoint (task squad2) to continue pretraining from, or a save dir holding another
    task's run;
  - the checkpoint's model has another shape than the config asks for (layers, width, positions:
    compared before fairseq loads it and fails on "the architectures match");
  - the checkpoint's embedding has a different number of rows than the task's dictionary
    (dict.txt + the symbols the task adds, e.g. <mask>), or the data's dict.txt differs from the one the
    checkpoint was trained with (same size, another order: scrambled ids);
  - the checkpoint's num_updates already reaches optimization.max_update while the optimizer is restored
    (fairseq would stop at once);
  - a validation split too small for one batch (fewer samples than dataset.required_batch_size_multiple);
  - fine-tuning (task squad2) with no checkpoint to start from, unless --from-scratch is given;
  - fp16 on CPU (common.cpu=true), or fp16 where no CUDA GPU is visible; fp16 and bf16 at once; bf16 on a
    GPU without bfloat16 arithmetic (before A100).
One setting is derived from the data: a masked LM whose samples are whole lines (sample_break_mode complete
or complete_doc) on a corpus with lines longer than a block trains on contiguous blocks instead
(sample_break_mode=none), said in one line: fairseq would stop at the first oversized sample.
A run whose save dir already holds checkpoint_last.pt resumes from it (the restore checkpoint only seeds a
fresh run); once that run has reached max_update, it has finished. On resuming, the records of updates
after the checkpoint (done again by the resumed run) are removed from common.log_file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from fairseq_ext.cli import Range
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import check_writable_directory, write_text_file
from fairseq_ext.releases import RELEASES

RESET_FLAGS = ("reset_optimizer", "reset_lr_scheduler", "reset_meters", "reset_dataloader")
DEFAULT_RESTORE = "checkpoint_last.pt"  # fairseq's default: <save_dir>/checkpoint_last.pt
FINE_TUNING_TASKS = ("squad2",)  # tasks that start from a pretrained model
# --from-scratch: no checkpoint but the save dir's own checkpoint_last.pt (a resumed run), whatever the
# config names
FROM_SCRATCH = [f"checkpoint.restore_file={DEFAULT_RESTORE}", "checkpoint.finetune_from_model=null",
                "checkpoint.continue_once=null"]


# The valid range of the numeric config values the launcher checks (hydra overrides included), declared
# once: a value outside is refused before anything starts (fairseq would fail later, or silently train on
# nothing). A key the task or model lacks, or set to null, is not checked.
CONFIG_RANGES = {
    "optimization.max_update": Range(int, min=0),
    "optimization.max_epoch": Range(int, min=0),
    "optimization.clip_norm": Range(float, min=0),
    "dataset.batch_size": Range(int, min=1),
    "dataset.batch_size_valid": Range(int, min=1),
    "dataset.max_tokens": Range(int, min=1),
    "dataset.required_batch_size_multiple": Range(int, min=1),
    "dataset.num_workers": Range(int, min=0),
    "dataset.validate_interval": Range(int, min=1),
    "dataset.validate_interval_updates": Range(int, min=0),
    "checkpoint.save_interval": Range(int, min=1),
    "checkpoint.save_interval_updates": Range(int, min=0),
    "common.log_interval": Range(int, min=1),
    "lr_scheduler.warmup_updates": Range(int, min=0),
    "task.tokens_per_sample": Range(int, min=1),
    "task.mask_prob": Range(float, min=0, max=1),
    "task.leave_unmasked_prob": Range(float, min=0, max=1),
    "task.random_token_prob": Range(float, min=0, max=1),
    "model.max_positions": Range(int, min=1),
    "model.encoder_layers": Range(int, min=1),
    "model.encoder_embed_dim": Range(int, min=1),
    "model.dropout": Range(float, min=0, max=1, open_max=True),
    "model.attention_dropout": Range(float, min=0, max=1, open_max=True),
}
# The model config keys that decide the shapes of a checkpoint's tensors: a checkpoint whose values
# differ cannot be loaded into the model the config builds.
ARCHITECTURE_KEYS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim",
                     "encoder_attention_heads", "max_positions")


def check_config_ranges(cfg) -> None:
    for key, valid in CONFIG_RANGES.items():
        section, name = key.split(".")
        value = cfg[section].get(name) if section in cfg and cfg[section] is not None else None
        if value is not None:
            valid.check(value, key)
    if cfg.optimization.get("update_freq"):
        for value in cfg.optimization.update_freq:
            Range(int, min=1).check(value, "optimization.update_freq")
    for value in cfg.optimization.get("lr") or []:  # a NaN learning rate trains nothing, silently
        Range(float, min=0, open_min=True).check(value, "optimization.lr")


def report(message: str) -> None:
    print(f"launch_train: {message}", file=sys.stderr, flush=True)


def _silent(message: str) -> None:
    pass


class RunPlan(NamedTuple):
    resume: list[str]  # overrides that make an interrupted run continue from its checkpoint_last.pt
    finished: bool  # the save dir's run already reached max_update: nothing to train
    resumed_updates: Optional[int] = None  # the update count a resumed run restarts from
    derived: tuple[str, ...] = ()  # overrides derived from the data (sample_blocks)


def resolve_config(config: str, config_dir: str | Path) -> tuple[Path, str]:
    path = Path(config)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserInputError(f"config not found: {path}")
        return path.resolve().parent, path.stem
    directory = Path(config_dir).resolve()
    if not directory.is_dir():
        what = "not a directory (give the one holding the .yaml, or --config FILE.yaml)"
        raise UserInputError(f"--config-dir {config_dir}: {what if directory.exists() else 'not found'}")
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
    """The config fairseq-hydra-train will see (hydra.* overrides only concern hydra itself), without the
    YAML's recipe block (fairseq_ext.training.schedule derives fairseq's settings from it)."""
    from fairseq.dataclass.initialize import add_defaults, hydra_init
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    import fairseq_ext.plugin  # noqa: F401  (registers the plugin's tasks and models, as --user-dir will)
    from fairseq_ext.training.schedule import without_recipe

    config_dir = without_recipe(config_dir, config_name)
    hydra_init(config_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hydra's deprecation notes on fairseq's schema matching
            with initialize_config_dir(config_dir=str(config_dir), version_base="1.1"):
                cfg = compose(config_name=config_name,
                              overrides=[o for o in overrides if not o.startswith(("hydra.", "hydra/"))])
        add_defaults(cfg)
        return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except (HydraException, OmegaConfBaseException) as err:
        reasons = [str(e).splitlines()[0].rstrip(".") for e in (err, err.__cause__) if e is not None]
        if any("not in struct" in reason for reason in reasons):  # a key the YAML does not list
            reasons.append("the config does not set this key: +KEY=VALUE adds it")
        raise UserInputError(f"config {config_name}: {': '.join(reasons)}") from None


def preflight(cfg, checks: bool = True, from_scratch: bool = False) -> RunPlan:
    """Runs the checks and says what the run will start from. With ``checks=False`` (every rank but 0 of a
    job started by torchrun or srun: rank 0 checks) only the decisions all ranks must share, silently."""
    say = report if checks else _silent
    task = None
    derived = sample_blocks(cfg, say)
    if checks:
        check_config_ranges(cfg)
        check_data(cfg, [Path(p) for p in cfg.task.data.split(":")])
        check_positions(cfg)
        check_writable_directory(cfg.checkpoint.save_dir, f"checkpoints in {cfg.checkpoint.save_dir}")
        if (cfg.common.fp16 or cfg.common.memory_efficient_fp16) and cfg.common.bf16:
            raise UserInputError("common.fp16=true and common.bf16=true: choose one (fairseq would run fp16 "
                                 "without loss scaling); bf16: common.fp16=false common.bf16=true")
        if (cfg.common.fp16 or cfg.common.memory_efficient_fp16) and cfg.common.cpu:
            raise UserInputError("common.fp16=true with common.cpu=true: half precision needs a CUDA GPU; "
                                 "set common.fp16=false to train on CPU (the tiny configs do)")
        task = setup_task(cfg)
        check_valid_batches(cfg, task)
    start, resets, resume = starting_point(cfg.checkpoint, say)
    if start is None:
        if checks and cfg.task._name in FINE_TUNING_TASKS and not from_scratch:
            raise UserInputError(f"no checkpoint to fine-tune: pass --restore CKPT (a pretrained RoBERTa) or "
                                 f"--from-scratch (task {cfg.task._name} from a random initialisation)")
        if checks:
            report(f"training from scratch on {cfg.task.data} ({len(task.source_dictionary)} symbols)")
        return RunPlan(resume, False, None, derived)
    resuming = start == last_checkpoint(cfg.checkpoint)
    finished, updates = check_checkpoint(cfg, task, start, resets, resuming, checks)
    return RunPlan(resume, finished, updates if resuming else None, derived)


WHOLE_LINE_MODES = ("complete", "complete_doc")


def sample_blocks(cfg, say: Callable[[str], None] = report) -> tuple[str, ...]:
    """A masked LM's samples are whole lines (complete, complete_doc: a document's lines packed up to a
    block, so a text's words sit at the same positions in every sample) unless a line of the data is
    longer than a block (tokens_per_sample - 1, one position for <s>): fairseq keeps such a line whole and
    then refuses the oversized sample (its shorten_method crops to tokens_per_sample, one too many). Then
    contiguous blocks (none): the overrides to pass, said in one line."""
    task = cfg.task
    if task._name != "masked_lm" or task.sample_break_mode not in WHOLE_LINE_MODES:
        return ()
    from fairseq.data import Dictionary, data_utils

    paths = [Path(p) for p in task.data.split(":")]
    block = task.tokens_per_sample - 1
    dictionary = Dictionary.load(str(paths[0] / "dict.txt"))
    splits = [(path, cfg.dataset.train_subset) for path in paths]
    splits += [(paths[0], split) for split in ([] if cfg.dataset.disable_validation
                                               else cfg.dataset.valid_subset.split(","))]
    longer, lines = 0, 0
    for path, split in splits:
        dataset = data_utils.load_indexed_dataset(str(path / split), dictionary)
        if dataset is not None:
            longer += int((dataset.sizes > block).sum())
            lines += len(dataset.sizes)
    if not longer:
        return ()
    say(f"{longer} of {lines} lines of {task.data} are longer than a {block}-token block: "
        f"sample_break_mode {task.sample_break_mode} -> none (contiguous blocks; to keep whole lines, split "
        "the long ones, e.g. one sentence per line)")
    return ("task.sample_break_mode=none",)


def starting_point(ckpt, say: Callable[[str], None] = report) -> tuple[Optional[Path], dict, list[str]]:
    """(checkpoint fairseq will load or None, its reset flags, overrides to resume) with fairseq's rules,
    except that an existing checkpoint_last.pt always wins: rerunning the command continues the run."""
    last = last_checkpoint(ckpt)
    seed = next((p for p in (ckpt.finetune_from_model, ckpt.continue_once) if p), None)
    if ckpt.restore_file != DEFAULT_RESTORE:
        seed = ckpt.restore_file
    if last.exists():
        if seed:
            say(f"{last} exists: resuming the interrupted run (not restarting from {seed})")
        # the config's resets (meant for the seed) would restart the schedule and the data order
        resume = [*FROM_SCRATCH, *(f"checkpoint.{flag}=false" for flag in RESET_FLAGS)]
        return last, {flag: False for flag in RESET_FLAGS}, resume
    if seed is None:
        return None, {}, []
    # finetune_from_model implies every reset (fairseq.checkpoint_utils.load_checkpoint)
    implied = ckpt.finetune_from_model is not None and ckpt.restore_file == DEFAULT_RESTORE
    return Path(seed), {flag: implied or ckpt[flag] for flag in RESET_FLAGS}, []


def last_checkpoint(ckpt) -> Path:
    return Path(ckpt.save_dir) / f"checkpoint_last{ckpt.checkpoint_suffix}.pt"


def check_given_paths(data: str, restore: Optional[str]) -> None:
    """The cheap part of check_data and the checkpoint check, on the launcher's own arguments, before the
    config is composed (importing fairseq and hydra takes seconds): the same one-line errors."""
    for path in map(Path, data.split(":")):
        if not path.is_dir():
            raise missing_data(path, "--data")
    if restore is not None and not Path(restore).is_file():
        raise missing_checkpoint(restore)


def missing_data(path, option: str) -> UserInputError:
    return UserInputError(f"data directory not found: {path} ({option}): make it with "
                          "scripts/prepare_corpus.py (masked LM) or scripts/prepare_squad2.py (SQuAD)")


def missing_checkpoint(path) -> UserInputError:
    """The one error for a --restore that does not exist, checked early and again with the config."""
    return UserInputError(f"checkpoint not found: {path}: fetch a released one with "
                          f"scripts/get_checkpoint.sh NAME ({', '.join(RELEASES)}; then --restore "
                          "NAME/model.pt), or convert a Hugging Face model with convert/hf_to_fairseq.py")


def check_data(cfg, data_paths: list[Path]) -> None:
    """Every shard holds the train split; the first also the valid splits (fairseq reads them there)."""
    for path in data_paths:
        if not path.is_dir():
            raise missing_data(path, "task.data")
    valid_splits = [] if cfg.dataset.disable_validation else cfg.dataset.valid_subset.split(",")
    wanted = [(path, cfg.dataset.train_subset) for path in data_paths]
    wanted += [(data_paths[0], split) for split in valid_splits]
    for path, split in wanted:
        if not split_present(path, split):
            hint = PREPARE_HINTS.get(cfg.task._name, PREPARE_HINTS["masked_lm"])
            raise UserInputError(f"data directory {path} has no {split!r} split: {hint}")
        check_split_files(path, split)


def check_split_files(path: Path, split: str) -> None:
    """The binarized files of a split checked for what they are, against the dict.txt beside them."""
    from fairseq_ext.corpus.indexed import check_indexed_dataset
    from fairseq_ext.tokenizer.dictionary import read_dictionary

    for directory in (path, *(p for p in path.iterdir() if p.is_dir())):
        prefix = directory / split
        dictionary = directory / "dict.txt"
        if prefix.with_suffix(".bin").is_file() and dictionary.is_file():
            check_indexed_dataset(str(prefix), len(read_dictionary(dictionary)),
                                  f"the {split!r} split of {directory}")


def check_positions(cfg) -> None:
    """A masked-LM sample of task.tokens_per_sample tokens must fit the model's positions (fairseq says
    "Size of sample #N is invalid" at the first batch)."""
    tokens, positions = cfg.task.get("tokens_per_sample"), cfg.model.get("max_positions")
    if isinstance(tokens, int) and isinstance(positions, int) and tokens > positions:
        raise UserInputError(f"task.tokens_per_sample={tokens} exceeds the model's {positions} positions "
                             f"(model.max_positions): set task.tokens_per_sample={positions} or less")


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


def check_checkpoint(cfg, task, path: Path, resets: dict, resuming: bool,
                     checks: bool = True) -> tuple[bool, int]:
    """Checks the checkpoint training starts from; returns (True when it is the save dir's own
    checkpoint_last.pt of a run that already reached max_update, its num_updates). The tensors are mapped,
    not read (see load_checkpoint)."""
    from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint

    if not path.is_file() and not resuming:
        raise missing_checkpoint(path)
    state = load_checkpoint(path, lazy=True)
    info = checkpoint_info(state)
    max_update = cfg.optimization.max_update
    restores_updates = not resets["reset_optimizer"] and info.has_optimizer_state
    reached = restores_updates and 0 < max_update <= info.num_updates
    if not checks:
        return reached and resuming, info.num_updates
    check_task(cfg, path, info, resuming)
    check_architecture(cfg, path, state, resuming)
    symbols = len(task.source_dictionary)
    if info.embedding_rows is not None and info.embedding_rows != symbols:
        raise UserInputError(
            f"checkpoint {path} has {info.embedding_rows} embedding rows but task {cfg.task._name} "
            f"has {symbols} symbols ({describe_dictionary(cfg, task)}): binarize the data with the "
            f"checkpoint's dict.txt (fairseq-preprocess --srcdict)"
        )
    check_data_dictionary(cfg, path, state)
    if reached:
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


def check_task(cfg, path: Path, info, resuming: bool) -> None:
    """A save dir holds one task's run; pretraining continues a masked-LM checkpoint, not a fine-tuned one
    (fairseq would fail to load its parameters, after appending to the run's log)."""
    task = cfg.task._name
    if info.task_name is None or info.task_name == task:
        return
    if resuming:
        raise UserInputError(f"{cfg.checkpoint.save_dir} holds a run of task {info.task_name} ({path.name}: "
                             f"{info.model_name}), not of task {task}: choose another --save-dir")
    if task not in FINE_TUNING_TASKS and info.task_name in FINE_TUNING_TASKS:
        raise UserInputError(f"checkpoint {path} is fine-tuned (task {info.task_name}, {info.model_name}): "
                             f"task {task} continues a pretrained masked-LM checkpoint")


def check_architecture(cfg, path: Path, state: dict, resuming: bool) -> None:
    """The checkpoint's model has the shape the config asks for (ARCHITECTURE_KEYS), compared before
    fairseq loads it (which fails on "please ensure that the architectures match")."""
    from fairseq_ext.checkpoints import model_config

    stored = model_config(state)
    for key in ARCHITECTURE_KEYS:
        ours, theirs = cfg.model.get(key), stored.get(key)
        if isinstance(ours, int) and isinstance(theirs, int) and ours != theirs:
            remedy = ("resume with the model settings the run started with, or choose another --save-dir"
                      if resuming else f"set model.{key}={theirs} (or start from another checkpoint)")
            raise UserInputError(f"checkpoint {path} has {key}={theirs} but the config asks for "
                                 f"model.{key}={ours}: {remedy}")


def check_data_dictionary(cfg, path: Path, state: dict) -> None:
    """The data's dict.txt is the one the checkpoint was trained with, symbol for symbol, where that one is
    still known (fairseq_ext.checkpoints.own_dictionary)."""
    from fairseq_ext.checkpoints import own_dictionary
    from fairseq_ext.tokenizer.dictionary import check_same_dictionary

    data_dictionary = Path(cfg.task.data.split(":")[0]) / "dict.txt"
    own = own_dictionary(state, path)
    if own is not None and data_dictionary.is_file():
        check_same_dictionary(data_dictionary, own, "the data's dictionary",
                              "binarize the data with that one (fairseq-preprocess --srcdict)")


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
    """fp16 needs CUDA (fairseq fails with a traceback without it); bf16 a GPU with bfloat16 arithmetic
    (A100 and later: older ones emulate it, slowly) or the CPU."""
    import torch

    if torch.cuda.is_available():
        if cfg.common.bf16 and not cfg.common.cpu and not torch.cuda.is_bf16_supported():
            raise UserInputError(f"common.bf16=true: {torch.cuda.get_device_name()} has no bfloat16 "
                                 "arithmetic (A100 and later do): use common.fp16=true common.bf16=false")
        return
    if cfg.common.fp16 or cfg.common.memory_efficient_fp16:
        raise UserInputError("common.fp16=true needs a CUDA GPU and none is visible: run on a GPU node "
                             "(or try on CPU with common.fp16=false common.cpu=true)")


def describe_dictionary(cfg, task) -> str:
    """'DIR/dict.txt: 50264 symbols + <mask>' from what the task added to the file's dictionary."""
    from fairseq.data import Dictionary

    dict_file = Path(cfg.task.data.split(":")[0]) / "dict.txt"
    if not dict_file.is_file():
        return f"{len(task.source_dictionary)} symbols"
    in_file = len(Dictionary.load(str(dict_file)))
    added = task.source_dictionary.symbols[in_file:]
    return f"{dict_file}: {in_file} symbols" + "".join(f" + {s}" for s in added)


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
