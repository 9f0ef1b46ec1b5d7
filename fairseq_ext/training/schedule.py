"""Training schedules that follow the run: a config states its recipe in the recipe's own terms, and the
number of processes and the size of the data decide the rest.

A config's ``recipe:`` block (:class:`Recipe`) says what the paper says: the global batch (sequences or
windows per update, over all processes), the length (epochs for fine-tuning, updates for pretraining), the
peak lr and the warmup as a share of the run. :func:`resolve` turns it into fairseq's settings for one run:

  - ``dataset.batch_size`` (per process: the config's, or the largest smaller one that splits the global
    batch evenly) and ``optimization.update_freq`` from the world size the run really has;
  - ``optimization.max_update`` from the training set (epochs x its windows or sequences / global batch),
    ``lr_scheduler.warmup_updates`` (the share) and ``lr_scheduler.total_num_update`` (= max_update: the
    lr decays to its end at the last update).

So one command trains alike on 1 or 16 GPUs. A global batch other than the recipe's (``--global-batch``)
keeps the recipe's number of sequences (pretraining) or epochs (fine-tuning) and scales the lr by the
recipe's rule (``lr_scaling``: square root or linear), or is refused. Settings given on the command line
win; combinations that contradict each other (the run ends before the lr decay does, or after it) are one
line. A config without a recipe (the tiny ones) keeps its stated fairseq values; the same arithmetic is
printed for it. fairseq never sees the ``recipe:`` block (:func:`without_recipe`). No fairseq import here:
the transformers side (fairseq_ext.hf.finetune) derives its schedule with the same :func:`resolve`.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from fairseq_ext.errors import UserInputError

RECIPE_KEY = "recipe"
# the fairseq settings a plan decides, by the names used here
KEYS = {"batch_size": "dataset.batch_size", "update_freq": "optimization.update_freq",
        "max_update": "optimization.max_update", "max_epoch": "optimization.max_epoch",
        "lr": "optimization.lr", "warmup_updates": "lr_scheduler.warmup_updates",
        "total_num_update": "lr_scheduler.total_num_update"}
# what a recipe replaces: a config with a recipe does not also state these (dataset.batch_size stays, as
# the most a process takes at once)
RECIPE_REPLACES = ("update_freq", "max_update", "max_epoch", "lr", "warmup_updates", "total_num_update")
# lr for a global batch B other than the recipe's B0: lr0 x rule(B / B0)
LR_SCALING = {"sqrt": (math.sqrt, "x sqrt({new}/{old}), the square-root rule for Adam"),
              "linear": (lambda ratio: ratio, "x {new}/{old}, the linear rule")}
MANY_EPOCHS = 50  # a pretraining recipe repeating the corpus more often than this: noted
FINAL_LR_SHARE = 0.01  # a run ending before its decay with more than this share of the peak left: refused


@dataclass(frozen=True)
class Recipe:
    """A config's ``recipe:`` block."""

    global_batch: int = field(metadata={
        "help": "sequences (windows for SQuAD) per update, over all processes and update_freq"})
    lr: float = field(metadata={"help": "peak learning rate, reached at the end of the warmup"})
    warmup: float = field(metadata={"help": "linear warmup, as a share of the run (0.06: 6%); then linear "
                                            "decay to 0 at the last update"})
    epochs: Optional[float] = field(default=None, metadata={
        "help": "length in passes over the training set (fine-tuning); or give updates"})
    updates: Optional[int] = field(default=None, metadata={
        "help": "length in updates of global_batch (pretraining); or give epochs"})
    lr_scaling: str = field(default="sqrt", metadata={
        "help": "lr for another global batch: sqrt (lr x sqrt(new/recipe batch)), linear, or refuse"})

    @classmethod
    def from_mapping(cls, raw, where: str) -> Recipe:
        """The recipe of a config (``where`` names it in the errors), checked."""
        if not isinstance(raw, dict):
            raise UserInputError(f"{where}: recipe must be a mapping of {', '.join(cls.field_names())}")
        unknown = sorted(set(raw) - set(cls.field_names()))
        if unknown:
            raise UserInputError(f"{where}: unknown recipe key {unknown[0]!r} (known: "
                                 f"{', '.join(cls.field_names())})")
        missing = [name for name in ("global_batch", "lr", "warmup") if raw.get(name) is None]
        if missing:
            raise UserInputError(f"{where}: the recipe needs {', '.join(missing)} ({cls.help(missing[0])})")
        values = {}
        for spec in dataclasses.fields(cls):
            value = raw.get(spec.name)
            if value is None or spec.name == "lr_scaling":
                values[spec.name] = spec.default if value is None else str(value)
                continue
            kind = int if spec.name in ("global_batch", "updates") else float
            try:
                number = kind(value) if not isinstance(value, bool) else None
            except (TypeError, ValueError):
                number = None
            if number is None or (kind is int and float(value) != number) or not math.isfinite(number):
                raise UserInputError(f"{where}: recipe.{spec.name}={value!r} is not "
                                     f"{'a whole number' if kind is int else 'a number'}")
            values[spec.name] = number
        recipe = cls(**values)
        recipe.check(where)
        return recipe

    def check(self, where: str) -> None:
        if (self.epochs is None) == (self.updates is None):
            raise UserInputError(f"{where}: the recipe gives its length as epochs (fine-tuning) or updates "
                                 "(pretraining): exactly one of them")
        for name in ("global_batch", "lr", "epochs", "updates"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserInputError(f"{where}: recipe.{name}={value} must be above 0")
        if not 0 <= self.warmup < 1:
            raise UserInputError(f"{where}: recipe.warmup={self.warmup} is a share of the run: from 0 to "
                                 "below 1 (0.06 for 6%)")
        if self.lr_scaling not in (*LR_SCALING, "refuse"):
            raise UserInputError(f"{where}: recipe.lr_scaling={self.lr_scaling!r}: choose "
                                 f"{', '.join((*LR_SCALING, 'refuse'))}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [spec.name for spec in dataclasses.fields(cls)]

    @classmethod
    def help(cls, name: str) -> str:
        return cls.__dataclass_fields__[name].metadata["help"]


@dataclass(frozen=True)
class Stated:
    """The schedule settings a config states in fairseq's terms (composed: the YAML, then the overrides)."""

    batch_size: Optional[int]  # per process; for a recipe the most a process takes at once
    update_freq: int
    max_update: int  # 0: no limit
    max_epoch: int  # 0: no limit
    lr: float
    warmup_updates: int
    total_num_update: Optional[int]  # None: not a polynomial_decay schedule
    end_lr: float = 0.0
    power: float = 1.0
    max_tokens: Optional[int] = None  # batching by tokens (batch_size None)


# How a setting is given, in the messages: to the launcher (fairseq) and to finetune_hf.py (transformers)
FAIRSEQ_NAMES = {**KEYS, "lr": "optimization.lr=[LR]", "global_batch": "--global-batch",
                 "length": "recipe.epochs=N", "per": "process", "update_freq": "update_freq",
                 "set_update_freq": "optimization.update_freq"}
HF_NAMES = {"lr": "--lr LR", "global_batch": "--global-batch", "length": "--epochs N", "per": "device",
            "batch_size": "--per-device-batch", "update_freq": "accumulation steps",
            "set_update_freq": "--gradient-accumulation", "max_update": "--updates",
            "warmup_updates": "--warmup-updates"}


@dataclass
class Plan:
    """One run's batch and schedule, resolved. ``lr`` is the peak; ``final_lr`` the lr of the last update
    (fairseq's polynomial_decay: update k runs at the schedule's value after k - 1 updates)."""

    world_size: int
    batch_size: Optional[int]  # per process
    update_freq: int
    global_batch: Optional[int]
    unit: str
    train_samples: Optional[int]
    max_update: int
    max_epoch: int
    warmup_updates: int
    total_num_update: Optional[int]
    lr: float
    recipe: Optional[dict] = None
    settings: dict = field(default_factory=dict)  # fairseq key -> value, for the settings the plan decides
    notes: list[str] = field(default_factory=list)
    final_lr: Optional[float] = None
    last_update: Optional[int] = None  # the run's last update (max_update, or max_epoch's end if earlier)
    most_per_process: Optional[int] = None  # the config's dataset.batch_size
    max_tokens: Optional[int] = None
    names: dict = field(default_factory=lambda: FAIRSEQ_NAMES, repr=False)

    @property
    def epochs(self) -> Optional[float]:
        """Passes over the training set the run makes."""
        if not (self.train_samples and self.global_batch and self.last_update):
            return None
        return self.last_update * self.global_batch / self.train_samples

    def overrides(self) -> list[str]:
        """For hydra: ``++`` sets a key whether or not the YAML has it (a recipe's has no warmup_updates)."""
        return [f"++{key}={hydra_value(value)}" for key, value in self.settings.items()]

    def apply(self, cfg) -> None:
        """Sets the decided settings in a composed config, as the overrides will in fairseq's."""
        from omegaconf import OmegaConf

        for key, value in self.settings.items():
            OmegaConf.update(cfg, key, value, merge=False)

    def lines(self) -> list[str]:
        """What is printed: the batch arithmetic, the schedule, then the notes."""
        per, batch_size, update_freq = (self.names[key] for key in ("per", "batch_size", "update_freq"))
        if self.batch_size is None:
            batch = (f"{self.max_tokens} tokens per {per} (dataset.max_tokens) x "
                     f"{counted(self.world_size, per)} x {update_freq} {self.update_freq}")
        else:
            shrunk = "" if self.batch_size == self.most_per_process else \
                f", the config's {self.most_per_process} does not divide it"
            batch = (f"{self.global_batch} {self.unit} per update = {self.batch_size} per {per} "
                     f"({batch_size}{shrunk}) x {counted(self.world_size, per)} x {update_freq} "
                     f"{self.update_freq}")
        length = f"{self.max_update} updates" if self.max_update else "no update limit"
        if self.epochs is not None:
            length += f" ({self.epochs:.3g} epochs of {self.train_samples} {self.unit})"
        share = f" ({100 * self.warmup_updates / self.max_update:.3g}%)" if self.max_update else ""
        schedule = f"{length}, warmup {self.warmup_updates}{share}, lr {self.lr:.3g} at the peak"
        if self.final_lr is not None:
            schedule += (f", {self.final_lr:.3g} at the last update "
                         f"({100 * self.final_lr / self.lr:.2g}% of it)")
        return [f"batch: {batch}", f"schedule: {schedule}", *self.notes]

    def as_dict(self) -> dict:
        fields = ("world_size", "batch_size", "update_freq", "global_batch", "unit", "train_samples",
                  "max_update", "max_epoch", "warmup_updates", "total_num_update", "lr", "final_lr",
                  "last_update", "epochs", "recipe", "notes")
        return {name: getattr(self, name) for name in fields}

    def write(self, path) -> None:
        from fairseq_ext.outputs import write_text_file

        write_text_file(path, json.dumps(self.as_dict(), indent=2) + "\n")

    def announce(self, report: Callable[[str], None], path=None) -> None:
        """Its lines through ``report``, then the JSON into ``path`` (--plan) when one is given."""
        for line in self.lines():
            report(line)
        if path:
            self.write(path)


def counted(number: int, noun: str) -> str:
    """"1 process", "4 processes", "2 devices"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}{'es' if noun.endswith('s') else 's'}"


def hydra_value(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def lr_after(updates: int, lr: float, warmup: int, total: int, end_lr: float = 0.0,
             power: float = 1.0) -> float:
    """fairseq's polynomial_decay (and transformers' linear schedule, power 1) after ``updates`` updates."""
    if warmup > 0 and updates <= warmup:
        return lr * updates / warmup
    if updates >= total:
        return end_lr
    remaining = 1 - (updates - warmup) / (total - warmup)
    return (lr - end_lr) * remaining ** power + end_lr


def updates_per_epoch(samples: int, batch_size: int, world_size: int, update_freq: int) -> int:
    """fairseq's: ceil(samples / batch_size) batches, sharded over the processes, grouped by update_freq."""
    batches = math.ceil(samples / batch_size)
    return math.ceil(math.ceil(batches / world_size) / update_freq)


def split_batch(global_batch: int, most: int, world_size: int, unit: str, update_freq: Optional[int] = None,
                names: dict = FAIRSEQ_NAMES) -> tuple[int, int]:
    """(per process, update_freq) making ``global_batch``: the largest per-process size up to ``most``
    that splits it evenly (with ``update_freq`` given, the one size that does)."""
    per = names["per"]
    if update_freq is not None:
        size, rest = divmod(global_batch, world_size * update_freq)
        if rest or size > most:
            raise UserInputError(
                f"{names['set_update_freq']} {update_freq} on {counted(world_size, per)} cannot make "
                f"{global_batch} {unit} per update with at most {most} per {per} ({names['batch_size']}): "
                f"drop {names['set_update_freq']} (it is derived) or change {names['batch_size']}")
        return size, update_freq
    for size in range(min(most, global_batch), 0, -1):
        if global_batch % (size * world_size) == 0:
            return size, global_batch // (size * world_size)
    lower = global_batch - global_batch % world_size
    choices = " or ".join(str(n) for n in (lower, lower + world_size) if n > 0)
    flag = names["global_batch"]
    raise UserInputError(f"{flag} {global_batch} {unit} cannot be split evenly over "
                         f"{counted(world_size, per)}: choose a multiple of {world_size} (e.g. {flag} "
                         f"{choices})")


def resolve(stated: Stated, recipe: Optional[Recipe], given: set[str], world_size: int,
            train_samples: Optional[int], global_batch: Optional[int] = None, unit: str = "sequences",
            strict: Optional[bool] = None, names: dict = FAIRSEQ_NAMES) -> Plan:
    """The plan of one run. ``stated``: the composed settings; ``given``: the names (KEYS) among them set
    on the command line, which win; ``global_batch``: --global-batch. ``strict`` (default: with a recipe)
    refuses contradictions; otherwise they are notes. ``names``: how the messages name the settings."""
    strict = recipe is not None if strict is None else strict
    most = stated.batch_size
    if recipe is not None:
        plan = resolve_recipe(stated, recipe, given, world_size, train_samples, global_batch, unit, names)
    elif global_batch is not None:
        if most is None:
            raise UserInputError(f"{names['global_batch']} counts {unit}: the config batches by "
                                 "dataset.max_tokens; set dataset.batch_size")
        size, update_freq = split_batch(global_batch, most, world_size, unit, names=names)
        plan = Plan(world_size, size, update_freq, global_batch, unit, train_samples, stated.max_update,
                    stated.max_epoch, stated.warmup_updates, stated.total_num_update, stated.lr,
                    settings={KEYS["batch_size"]: size, KEYS["update_freq"]: [update_freq]})
    else:
        total = most * world_size * stated.update_freq if most is not None else None
        plan = Plan(world_size, most, stated.update_freq, total, unit, train_samples, stated.max_update,
                    stated.max_epoch, stated.warmup_updates, stated.total_num_update, stated.lr)
    plan.most_per_process, plan.max_tokens, plan.names = most, stated.max_tokens, names
    finish(plan, stated, given, strict)
    return plan


def resolve_recipe(stated: Stated, recipe: Recipe, given: set[str], world_size: int,
                   train_samples: Optional[int], global_batch: Optional[int], unit: str, names: dict) -> Plan:
    if stated.batch_size is None:
        raise UserInputError(f"the recipe counts {unit} per update, but dataset.max_tokens batches vary in "
                             "size: batch by dataset.batch_size (the most per process)")
    if stated.total_num_update is None:
        raise UserInputError("a recipe's schedule is linear warmup and decay: lr_scheduler._name must be "
                             "polynomial_decay")
    notes = []
    if {"batch_size", "update_freq"} <= given:  # both given: they make the global batch
        batch = stated.batch_size * world_size * stated.update_freq
        if global_batch is not None and global_batch != batch:
            raise UserInputError(f"{names['global_batch']} {global_batch} but {names['batch_size']} "
                                 f"{stated.batch_size} x {world_size} x {names['set_update_freq']} "
                                 f"{stated.update_freq} = {batch}: give one or the other")
        size, update_freq = stated.batch_size, stated.update_freq
    else:
        batch = global_batch or recipe.global_batch
        size, update_freq = split_batch(batch, stated.batch_size, world_size, unit,
                                        stated.update_freq if "update_freq" in given else None, names)
    if "max_update" in given:
        max_update = stated.max_update
    elif recipe.epochs is not None:
        if not train_samples:
            raise UserInputError(f"the recipe counts epochs, but the training set has no {unit}")
        max_update = math.ceil(recipe.epochs * train_samples / batch)
    else:  # the recipe's number of sequences, in updates of this batch
        max_update = math.ceil(recipe.updates * recipe.global_batch / batch)
        if batch != recipe.global_batch:
            notes.append(f"length: {recipe.updates} updates of {recipe.global_batch} {unit} (the recipe) = "
                         f"{max_update} updates of {batch}")
        passes = max_update * batch / train_samples if train_samples else 0
        if passes > MANY_EPOCHS and "max_update" not in given:
            notes.append(f"note: {max_update} updates of {batch} are {passes:.3g} passes over these "
                         f"{train_samples} {unit}: recipe.updates=N sets a length for a corpus this small")
    warmup = stated.warmup_updates if "warmup_updates" in given else round(recipe.warmup * max_update)
    total = stated.total_num_update if "total_num_update" in given else max_update
    if "lr" in given:
        lr = stated.lr
        if batch != recipe.global_batch:
            notes.append(f"lr: {lr:.3g} as given, for {batch} {unit} per update (the recipe: {recipe.lr:.3g} "
                         f"for {recipe.global_batch})")
    elif batch == recipe.global_batch:
        lr = recipe.lr
    elif recipe.lr_scaling == "refuse":
        raise UserInputError(f"{batch} {unit} per update, but the recipe's lr {recipe.lr:.3g} is for "
                             f"{recipe.global_batch} and its lr_scaling is refuse: use "
                             f"{names['global_batch']} {recipe.global_batch}, or give {names['lr']} yourself")
    else:
        rule, words = LR_SCALING[recipe.lr_scaling]
        lr = recipe.lr * rule(batch / recipe.global_batch)
        notes.append(f"lr: {lr:.3g} = the recipe's {recipe.lr:.3g} (for {recipe.global_batch} {unit} per "
                     f"update) {words.format(new=batch, old=recipe.global_batch)} (recipe.lr_scaling; "
                     f"{names['lr']} sets it yourself)")
    max_epoch = stated.max_epoch if "max_epoch" in given else 0
    settings = {KEYS["batch_size"]: size, KEYS["update_freq"]: [update_freq], KEYS["max_update"]: max_update,
                KEYS["max_epoch"]: max_epoch, KEYS["warmup_updates"]: warmup, KEYS["total_num_update"]: total,
                KEYS["lr"]: [lr]}
    return Plan(world_size, size, update_freq, batch, unit, train_samples, max_update, max_epoch, warmup,
                total, lr, dataclasses.asdict(recipe), settings, notes)


def finish(plan: Plan, stated: Stated, given: set[str], strict: bool) -> None:
    """Where the run ends, its last lr, and the contradictions: refused (strict) or noted."""
    plan.last_update = plan.max_update or None
    if plan.max_epoch and plan.train_samples and plan.batch_size:
        epoch_end = plan.max_epoch * updates_per_epoch(plan.train_samples, plan.batch_size, plan.world_size,
                                                       plan.update_freq)
        if plan.last_update is None or epoch_end < plan.last_update:
            plan.last_update = epoch_end
    if not plan.total_num_update or plan.last_update is None:
        return
    plan.final_lr = lr_after(plan.last_update - 1, plan.lr, plan.warmup_updates, plan.total_num_update,
                             stated.end_lr, stated.power)
    names = plan.names
    left = (plan.final_lr - stated.end_lr) / (plan.lr - stated.end_lr) if plan.lr != stated.end_lr else 0
    ended_by = (f"{names['max_epoch']}={plan.max_epoch} (about {plan.last_update} updates)"
                if plan.last_update != plan.max_update else f"{names['max_update']}={plan.max_update}")
    problem = None
    if plan.warmup_updates >= plan.last_update:
        problem = f"the run ends ({ended_by}) within the warmup of {plan.warmup_updates} updates"
    elif plan.last_update < plan.total_num_update - 1 and left > FINAL_LR_SHARE:  # fairseq's epochs: +-1
        problem = (f"the run ends ({ended_by}) before the lr decay does (lr_scheduler.total_num_update="
                   f"{plan.total_num_update}): lr {plan.final_lr:.3g} at the last update, "
                   f"{100 * left:.0f}% of the peak")
    elif plan.total_num_update < plan.last_update - 1:
        problem = (f"the lr decay ends at update {plan.total_num_update} (lr_scheduler.total_num_update) but "
                   f"the run goes on to {plan.last_update} ({ended_by}) at lr {stated.end_lr:g}")
    if problem is None:
        return
    if not strict:
        plan.notes.append(f"note: {problem}")
        return
    dropped = [names[name] for name in sorted(given & {"max_epoch", "max_update", "total_num_update",
                                                       "warmup_updates"})]
    fix = f"drop {' '.join(dropped)} and " if dropped else ""
    raise UserInputError(f"{problem}: {fix}set the length with {names['length']}")


# ---------------------------------------------------------------------------------------------- configs

def read_config(config_dir: Path, config_name: str) -> dict:
    import yaml

    path = Path(config_dir) / f"{config_name}.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise UserInputError(f"cannot read config {path}: {str(err).splitlines()[0]}") from None
    return raw if isinstance(raw, dict) else {}


def read_recipe(config_dir: Path, config_name: str, overrides: dict[str, str]) -> Optional[Recipe]:
    """The config's recipe with the command line's ``recipe.KEY=VALUE`` applied; None without one."""
    raw = read_config(config_dir, config_name)
    where = f"config {config_name}"
    if RECIPE_KEY not in raw:
        if overrides:
            raise UserInputError(f"{where} has no recipe: recipe.{next(iter(overrides))} does not apply (set "
                                 "fairseq's settings instead, e.g. optimization.max_update=N)")
        return None
    stated = sorted(name for name in RECIPE_REPLACES
                    if KEYS[name].split(".")[1] in (raw.get(KEYS[name].split(".")[0]) or {}))
    if stated:
        raise UserInputError(f"{where} has a recipe and also states {KEYS[stated[0]]}: the launcher derives "
                             "it from the recipe; remove it from the YAML (a KEY=VALUE on the command line "
                             "still overrides it)")
    recipe = dict(raw[RECIPE_KEY] or {})
    if "epochs" in overrides:
        recipe.pop("updates", None)
    if "updates" in overrides:
        recipe.pop("epochs", None)
    return Recipe.from_mapping({**recipe, **overrides}, where)


_STRIPPED: dict[tuple[Path, str], Path] = {}


def without_recipe(config_dir: Path, config_name: str) -> Path:
    """A config dir where ``config_name`` is the config minus its recipe block, for hydra and fairseq (whose
    schema has no such key): ``config_dir`` itself when there is none, else a copy in a temporary
    directory, kept while this process lives."""
    config_dir = Path(config_dir)
    raw = read_config(config_dir, config_name)
    if RECIPE_KEY not in raw:
        return config_dir
    key = (config_dir.resolve(), config_name)
    if key not in _STRIPPED:
        directory = Path(tempfile.mkdtemp(prefix="recipe-free-config-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        text = (config_dir / f"{config_name}.yaml").read_text(encoding="utf-8")
        (directory / f"{config_name}.yaml").write_text(drop_top_level_key(text, RECIPE_KEY), encoding="utf-8")
        _STRIPPED[key] = directory
    return _STRIPPED[key]


def drop_top_level_key(text: str, key: str) -> str:
    """YAML text without one top-level key and its block (the lines up to the next top-level key), the rest
    byte for byte: hydra reads it with its own YAML rules (1e-06 is a number there, not in PyYAML)."""
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if line[:1] not in (" ", "\t", "\n", "\r", "#", ""):
            inside = line.startswith(f"{key}:")
        if not inside:
            kept.append(line)
    return "".join(kept)


def split_overrides(overrides: list[str]) -> tuple[dict[str, str], list[str]]:
    """(the ``recipe.KEY=VALUE`` overrides as KEY -> VALUE, the others: fairseq's and hydra's). The plan's
    settings (KEYS) become ``++KEY=VALUE``: they apply whether or not the YAML lists them."""
    recipe, others = {}, []
    for item in overrides:
        key, _, value = item.partition("=")
        name = key.lstrip("+~")
        if name.startswith(RECIPE_KEY + "."):
            recipe[name.split(".", 1)[1]] = value
        elif name in KEYS.values() and not key.startswith("~"):
            others.append(f"++{name}={value}")
        else:
            others.append(item)
    return recipe, others


def given_settings(overrides: list[str]) -> set[str]:
    """The names (KEYS) of the plan's settings that the overrides set."""
    keys = {item.partition("=")[0].lstrip("+~") for item in overrides}
    return {name for name, key in KEYS.items() if key in keys}


def stated_settings(cfg) -> Stated:
    """The schedule settings of a composed fairseq config."""
    scheduler = cfg.lr_scheduler
    polynomial = scheduler is not None and scheduler.get("_name") == "polynomial_decay"
    lr = cfg.optimization.lr
    return Stated(batch_size=cfg.dataset.batch_size, update_freq=int(cfg.optimization.update_freq[0]),
                  max_update=int(cfg.optimization.max_update), max_epoch=int(cfg.optimization.max_epoch),
                  lr=float(lr if isinstance(lr, (int, float)) else lr[0]), max_tokens=cfg.dataset.max_tokens,
                  warmup_updates=int((scheduler or {}).get("warmup_updates", 0) or 0),
                  total_num_update=int(scheduler.total_num_update) if polynomial else None,
                  end_lr=float(scheduler.end_learning_rate) if polynomial else 0.0,
                  power=float(scheduler.power) if polynomial else 1.0)


def unit_of(cfg) -> str:
    return "windows" if cfg.task._name == "squad2" else "sequences"


def train_samples(cfg) -> int:
    """The training set's windows (task squad2: recorded by prepare_squad2.py) or sequences (fairseq's own
    dataset of the task, over every data shard: the blocks of tokens_per_sample a masked LM trains on)."""
    split = cfg.dataset.train_subset
    if cfg.task._name == "squad2":
        from fairseq_ext.squad.format import METADATA_FILE, read_metadata

        try:
            return int(read_metadata(cfg.task.data)["splits"][split]["windows"])
        except (OSError, KeyError, ValueError) as err:
            raise UserInputError(f"{cfg.task.data}/{METADATA_FILE} does not record the {split!r} split's "
                                 f"windows ({type(err).__name__}): re-run prepare_squad2.py") from None
    from fairseq_ext.training.preflight import setup_task

    task = setup_task(cfg)
    total = 0
    for shard in range(1, len(str(cfg.task.data).split(":")) + 1):
        task.load_dataset(split, epoch=shard, combine=False)
        total += len(task.dataset(split))
    return total


def plan_run(cfg, recipe: Optional[Recipe], overrides: list[str], world_size: int,
             global_batch: Optional[int], count: bool = True) -> Plan:
    """The plan of a fairseq run on ``world_size`` processes (``count``: read the training set's size even
    where the plan does not need it, to report epochs)."""
    stated = stated_settings(cfg)
    needs_size = (recipe is not None and recipe.epochs is not None) or stated.max_epoch > 0
    samples = train_samples(cfg) if count or needs_size else None
    return resolve(stated, recipe, given_settings(overrides), world_size, samples, global_batch, unit_of(cfg))
