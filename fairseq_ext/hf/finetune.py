"""SQuAD fine-tuning with transformers' ``Trainer`` (run_qa semantics) on the project's features and
post-processing: the HF-side reference against which the fairseq ``squad2`` task can be compared.

The optimisation is fairseq's recipe expressed in Trainer terms: Adam(W) with the given betas, eps and
weight decay, linear warm-up then linear decay to 0 at the last update (fairseq's ``polynomial_decay``
with power 1), gradient-norm clipping, a fixed number of updates of a fixed number of windows. The loss
is HF's: mean of the start and end cross-entropies, as the span_qa criterion computes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from fairseq_ext.checkout import checkout_path
from fairseq_ext.squad import SquadExample, build_features
from fairseq_ext.squad.features import PAD
from fairseq_ext.squad.settings import QASettings
from fairseq_ext.tokenizer.hf_adapter import HFTokenizerAdapter

# the fairseq fine-tuning config whose hyper-parameters finetune_hf.py uses unless told otherwise
DEFAULT_CONFIG = checkout_path("configs", "finetuning", "squad2_tiny.yaml")


@dataclass
class TrainingSettings:
    """One fine-tuning run: fairseq's squad2 recipe (see from_config) in Trainer terms."""

    lr: float
    batch_size: int  # windows per update
    updates: int
    warmup_updates: int
    weight_decay: float
    adam_betas: tuple[float, float]
    adam_eps: float
    clip_norm: float
    dropout: Optional[float] = None  # None: the model's
    seed: int = 1

    @classmethod
    def from_config(cls, path: Path = DEFAULT_CONFIG) -> TrainingSettings:
        """The hyper-parameters of a fairseq fine-tuning YAML (configs/finetuning/*.yaml): optimizer,
        learning rate and schedule, windows per update (batch_size x update_freq), max_update, clip_norm,
        dropout, seed; read, not restated, so that both sides train with the same recipe."""
        import yaml

        from fairseq_ext.errors import UserInputError

        try:
            config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            optimization, optimizer = config["optimization"], config["optimizer"]
            lr = optimization["lr"]
            betas = optimizer.get("adam_betas", "(0.9,0.999)")
            model = config.get("model", {})
            update_freq = optimization.get("update_freq", [1])
            return cls(lr=float(lr[0] if isinstance(lr, list) else lr),
                       batch_size=int(config["dataset"]["batch_size"]) * int(update_freq[0]),
                       updates=int(optimization["max_update"]),
                       warmup_updates=int(config["lr_scheduler"].get("warmup_updates", 0)),
                       weight_decay=float(optimizer.get("weight_decay", 0.0)),
                       adam_betas=tuple(float(b) for b in str(betas).strip("()[]").split(",")),
                       adam_eps=float(optimizer.get("adam_eps", 1e-8)),
                       clip_norm=float(optimization.get("clip_norm", 0.0)),
                       dropout=float(model["dropout"]) if "dropout" in model else None,
                       seed=int(config.get("common", {}).get("seed", 1)))
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
            raise UserInputError(f"{path}: not a fairseq fine-tuning config with optimization, optimizer, "
                                 f"dataset and lr_scheduler settings ({type(err).__name__}: {err})") from None


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
    """(tokenizer, RobertaForQuestionAnswering): a masked-LM export gets a fresh span head (seeded)."""
    from transformers import AutoModelForQuestionAnswering, set_seed

    from fairseq_ext.hf.qa import SETTINGS_KEY, load_qa_model

    set_seed(training.seed)
    tokenizer, _ = load_qa_model(model_dir, trained_head=False)  # one-line errors for a bad directory
    overrides = {}
    if training.dropout is not None:
        overrides = {"hidden_dropout_prob": training.dropout,
                     "attention_probs_dropout_prob": training.dropout}
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir), **overrides)
    setattr(model.config, SETTINGS_KEY, settings.as_dict())  # saved with the model
    return tokenizer, model


def finetune(model_dir: Path, train: Sequence[SquadExample], settings: QASettings,
             training: TrainingSettings, work_dir: Path, progress: bool = True):
    """The fine-tuned model (eval mode), its tokenizer and the Trainer's log (one record per update)."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    tokenizer, model = load_model_for_training(model_dir, settings, training)
    features = build_features(train, HFTokenizerAdapter(tokenizer), **settings.windows(), progress=progress)
    arguments = TrainingArguments(
        output_dir=str(work_dir), per_device_train_batch_size=training.batch_size, learning_rate=training.lr,
        max_steps=training.updates, warmup_steps=training.warmup_updates, lr_scheduler_type="linear",
        weight_decay=training.weight_decay, adam_beta1=training.adam_betas[0],
        adam_beta2=training.adam_betas[1], adam_epsilon=training.adam_eps, max_grad_norm=training.clip_norm,
        seed=training.seed, data_seed=training.seed, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, remove_unused_columns=False,
        disable_tqdm=not progress)
    trainer = Trainer(model=model, args=arguments, train_dataset=FeatureDataset(features),
                      data_collator=collate)
    trainer.remove_callback(PrinterCallback)  # one dict printed per update; the log is returned instead
    trainer.train()
    return tokenizer, model.eval(), [record for record in trainer.state.log_history if "loss" in record]
