"""SQuAD fine-tuning with transformers' ``Trainer`` (run_qa semantics) on the project's features and
post-processing: the HF-side reference against which the fairseq ``squad2`` task can be compared.

The run is a fairseq fine-tuning config's in Trainer terms (:class:`ConfigDefaults`): Adam(W) with its betas,
eps and weight decay, linear warm-up then linear decay to 0 at the last update (fairseq's
``polynomial_decay`` with power 1), gradient-norm clipping, and the schedule fairseq's launcher derives
(fairseq_ext.training.schedule): a recipe's global batch split over devices x gradient accumulation, its
epochs turned into updates on the training windows, its warmup share and lr. The loss is HF's: mean of the
start and end cross-entropies, as the span_qa criterion computes it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from fairseq_ext.checkout import checkout_path
from fairseq_ext.errors import UserInputError
from fairseq_ext.squad.features import PAD
from fairseq_ext.squad.settings import QASettings
from fairseq_ext.training import schedule

# finetune_hf.py's options for the plan's settings (fairseq_ext.training.schedule names)
OPTIONS = {"lr": "lr", "batch_size": "per_device_batch", "update_freq": "gradient_accumulation",
           "max_update": "updates", "warmup_updates": "warmup_updates"}


def config_path(config: str) -> Path:
    """A config name of configs/finetuning (squad2_base), or the path of a YAML file."""
    path = Path(config)
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    return checkout_path("configs", "finetuning", f"{config}.yaml")


@dataclass
class ConfigDefaults:
    """What a fairseq fine-tuning YAML (configs/finetuning/*.yaml) says about a run, read, not restated,
    so that both sides train alike: its recipe (None: it states fairseq's values itself), the schedule
    settings as stated, the optimizer, clip_norm, dropout (None: the model's own) and seed."""

    recipe: Optional[schedule.Recipe]
    stated: schedule.Stated
    weight_decay: float
    adam_betas: tuple[float, float]
    adam_eps: float
    clip_norm: float
    dropout: Optional[float]
    seed: int

    @classmethod
    def read(cls, config: str, epochs: Optional[float] = None) -> ConfigDefaults:
        """The config's defaults, its recipe with ``epochs`` (--epochs) instead of its own."""
        path = config_path(config)
        raw = schedule.read_config(path.parent, path.stem)
        if epochs is not None and schedule.RECIPE_KEY not in raw:
            raise UserInputError(f"--epochs: config {path.stem} has no recipe (it states its updates): give "
                                 "--updates N, or use a config with a recipe (squad2_base)")
        recipe = schedule.read_recipe(path.parent, path.stem, {} if epochs is None else {"epochs": epochs})
        try:
            optimization, optimizer, dataset = raw["optimization"], raw["optimizer"], raw["dataset"]
            lr = optimization.get("lr", [recipe.lr if recipe else None])
            lr = float(lr[0] if isinstance(lr, list) else lr)
            max_update = int(optimization.get("max_update", 0) or 0)
            stated = schedule.Stated(
                batch_size=int(dataset["batch_size"]), max_update=max_update, max_epoch=0, lr=lr,
                update_freq=int(optimization.get("update_freq", [1])[0]),
                warmup_updates=int((raw.get("lr_scheduler") or {}).get("warmup_updates", 0) or 0),
                total_num_update=max_update)  # transformers' linear schedule ends at the last update
            betas = optimizer.get("adam_betas", "(0.9,0.999)")
            model = raw.get("model") or {}
            return cls(recipe=recipe, stated=stated, weight_decay=float(optimizer.get("weight_decay", 0.0)),
                       adam_betas=tuple(float(b) for b in str(betas).strip("()[]").split(",")),
                       adam_eps=float(optimizer.get("adam_eps", 1e-8)),
                       clip_norm=float(optimization.get("clip_norm", 0.0)),
                       dropout=float(model["dropout"]) if "dropout" in model else None,
                       seed=int((raw.get("common") or {}).get("seed", 1)))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise UserInputError(f"{path}: not a fairseq fine-tuning config with optimization, optimizer and "
                                 f"dataset settings ({type(err).__name__}: {err})") from None

    def plan(self, given: dict, devices: int, windows: int,
             global_batch: Optional[int] = None) -> schedule.Plan:
        """The run's batch and schedule on ``devices`` for ``windows`` training windows; ``given``: the
        options set on the command line (OPTIONS' names -> value), which win."""
        values = {name: given[option] for name, option in OPTIONS.items() if given.get(option) is not None}
        if "max_update" in values:
            values["total_num_update"] = values["max_update"]
        stated = dataclasses.replace(self.stated, **values)
        return schedule.resolve(stated, self.recipe, set(values) - {"total_num_update"}, devices, windows,
                                global_batch, "windows", names=schedule.HF_NAMES)


@dataclass
class TrainingSettings:
    """One fine-tuning run in Trainer terms."""

    lr: float  # peak
    per_device_batch: int  # windows per device and forward pass
    gradient_accumulation: int
    updates: int
    warmup_updates: int
    weight_decay: float
    adam_betas: tuple[float, float]
    adam_eps: float
    clip_norm: float
    dropout: Optional[float] = None  # None: the model's
    seed: int = 1
    precision: Optional[str] = None  # fp16, bf16, None: fp32

    @classmethod
    def of(cls, plan: schedule.Plan, defaults: ConfigDefaults, **options) -> TrainingSettings:
        """The plan's batch and schedule with the config's optimizer, each replaced by ``options`` given."""
        values = {"weight_decay": defaults.weight_decay, "adam_betas": defaults.adam_betas,
                  "adam_eps": defaults.adam_eps, "clip_norm": defaults.clip_norm, "dropout": defaults.dropout,
                  "seed": defaults.seed}
        values.update({key: value for key, value in options.items() if value is not None})
        return cls(lr=plan.lr, per_device_batch=plan.batch_size, gradient_accumulation=plan.update_freq,
                   updates=plan.max_update, warmup_updates=plan.warmup_updates, **values)


def training_devices() -> int:
    """The devices the Trainer splits a batch over: torchrun's processes, else every visible GPU (one
    process, DataParallel), else the CPU."""
    if os.environ.get("WORLD_SIZE"):
        return int(os.environ["WORLD_SIZE"])
    return max(torch.cuda.device_count(), 1)


class FeatureDataset(torch.utils.data.Dataset):
    """Training windows with their answer labels (start/end token positions, 0 for no answer)."""

    def __init__(self, features):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        feature = self.features[index]
        return {"input_ids": feature.input_ids, "start_positions": feature.start_position,
                "end_positions": feature.end_position}


def collate(items: Sequence[dict]) -> dict:
    """Right-padded batch with its attention mask (positions skip <pad>, as in fairseq)."""
    input_ids = torch.full((len(items), max(len(item["input_ids"]) for item in items)), PAD, dtype=torch.long)
    for row, item in enumerate(items):
        input_ids[row, :len(item["input_ids"])] = torch.tensor(item["input_ids"])
    return {"input_ids": input_ids, "attention_mask": input_ids.ne(PAD).long(),
            "start_positions": torch.tensor([item["start_positions"] for item in items]),
            "end_positions": torch.tensor([item["end_positions"] for item in items])}


def load_model_for_training(model_dir: Path, settings: QASettings, training: TrainingSettings):
    """RobertaForQuestionAnswering (a masked-LM export gets a fresh span head, drawn from torch's generator
    as the caller seeded it) with the run's dropout (None: the model's own) and its span head computing
    in fp32."""
    from transformers import AutoModelForQuestionAnswering

    from fairseq_ext.hf.qa import SETTINGS_KEY, with_fp32_head

    overrides = {}
    if training.dropout is not None:
        overrides = {"hidden_dropout_prob": training.dropout,
                     "attention_probs_dropout_prob": training.dropout}
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir), **overrides)
    setattr(model.config, SETTINGS_KEY, settings.as_dict())  # saved with the model
    return with_fp32_head(model)


def finetune(model_dir: Path, features: Sequence, settings: QASettings, training: TrainingSettings,
             work_dir: Path, progress: bool = True):
    """The fine-tuned model (eval mode) and the Trainer's log (one record per update)."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    model = load_model_for_training(model_dir, settings, training)
    arguments = TrainingArguments(
        output_dir=str(work_dir), per_device_train_batch_size=training.per_device_batch,
        gradient_accumulation_steps=training.gradient_accumulation, learning_rate=training.lr,
        max_steps=training.updates, warmup_steps=training.warmup_updates, lr_scheduler_type="linear",
        weight_decay=training.weight_decay, adam_beta1=training.adam_betas[0],
        adam_beta2=training.adam_betas[1], adam_epsilon=training.adam_eps, max_grad_norm=training.clip_norm,
        fp16=training.precision == "fp16", bf16=training.precision == "bf16",
        seed=training.seed, data_seed=training.seed, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, remove_unused_columns=False,
        disable_tqdm=not progress)
    trainer = Trainer(model=model, args=arguments, train_dataset=FeatureDataset(features),
                      data_collator=collate)
    trainer.remove_callback(PrinterCallback)  # one dict printed per update; the log is returned instead
    trainer.train()
    return model.eval(), [record for record in trainer.state.log_history if "loss" in record]
