"""Where a Hugging Face model is (a directory, or a hub id's snapshot in the local cache), and loading its
weights with a one-line error for what transformers reports as a traceback."""

from __future__ import annotations

from pathlib import Path

from fairseq_ext.errors import UserInputError

HUB_FILES = ("config.json", "*.safetensors", "*.json", "merges.txt", "vocab.*", "*.model")
# The files a fast tokenizer is built from, any one set per model type. Without them transformers builds
# an empty tokenizer (the 5 specials): every question and context becomes <s></s>.
TOKENIZER_FILES = {"xlm-roberta": (("tokenizer.json",), ("sentencepiece.bpe.model",))}
DEFAULT_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))


def model_directory(path: str | Path) -> Path:
    """``path`` if it is a Hugging Face model directory (it has config.json), else a one-line error; cheap,
    so that tools check it before transformers loads."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserInputError(f"{path}: not a Hugging Face model directory (no config.json)")
    return path


def resolve_model_dir(model: str) -> Path:
    """A model directory as given, or the local snapshot of a hub id (downloaded unless HF_HUB_OFFLINE)."""
    if Path(model).is_dir():
        return model_directory(model)
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(model, allow_patterns=list(HUB_FILES)))
    except Exception as err:  # invalid id, not cached offline, not on the hub, network: all one message
        reason = _first_line(err)
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        where = f"the local Hugging Face cache{offline}"
        raise UserInputError(f"{model}: no such directory, and not found in {where}: {reason}") from None


def load_hf_tokenizer(model_dir: Path, config):
    """The fast tokenizer of the model directory ``model_dir`` (``config``: its AutoConfig), checked for
    what it is before transformers reads it: its files are there (else they are named), and every token id
    has an embedding row (``config.vocab_size``)."""
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    sets = TOKENIZER_FILES.get(config.model_type, DEFAULT_TOKENIZER_FILES)
    if not any(all((model_dir / name).is_file() for name in names) for names in sets):
        wanted = " or ".join(" + ".join(names) for names in sets)
        present = ", ".join(sorted(path.name for path in model_dir.iterdir())) or "nothing"
        raise UserInputError(f"{model_dir} has no tokenizer files ({wanted}; it holds {present}): copy them "
                             "from the directory the model was exported or downloaded to")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserInputError(f"cannot load the tokenizer of {model_dir}: {_first_line(err)}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserInputError(f"{model_dir}: no fast tokenizer (tokenizer.json or vocab.json + merges.txt)")
    if len(tokenizer) > config.vocab_size:
        raise UserInputError(f"{model_dir}: its tokenizer has {len(tokenizer)} tokens but the model "
                             f"{config.vocab_size} embedding rows (config.json vocab_size): the tokenizer "
                             "files do not belong to this model")
    return tokenizer


def load_pretrained(auto_class, model_dir: Path, **kwargs):
    """``(model, loading info)`` of ``auto_class.from_pretrained(model_dir, **kwargs)``, or a one-line
    UserInputError: a damaged or truncated weights file (safetensors' SafetensorError), weights whose sizes
    disagree with config.json (transformers' RuntimeError after a report in its log; here the first
    mismatch is named), anything else transformers cannot read."""
    from safetensors import SafetensorError

    try:
        model, loading = auto_class.from_pretrained(str(model_dir), output_loading_info=True,
                                                    ignore_mismatched_sizes=True, **kwargs)
    except SafetensorError as err:
        raise UserInputError(f"cannot load {model_dir}: its weights file is damaged or truncated "
                             f"({_first_line(err)})") from None
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise UserInputError(f"cannot load {model_dir}: {_first_line(err)}") from None
    mismatched = sorted(loading["mismatched_keys"], key=lambda item: item[0])  # (key, stored, expected)
    if mismatched:
        key, stored, expected = mismatched[0]
        raise UserInputError(f"{model_dir}: {len(mismatched)} weights disagree with its config.json (e.g. "
                             f"{key}: {tuple(stored)} in the weights, {tuple(expected)} by config.json): the "
                             "config does not belong to these weights")
    return model, loading


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
