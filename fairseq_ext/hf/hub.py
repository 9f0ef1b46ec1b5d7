"""Where a Hugging Face model is: a directory, or a hub id's snapshot in the local cache."""

from __future__ import annotations

from pathlib import Path

from fairseq_ext.cli import UserInputError

HUB_FILES = ("config.json", "*.safetensors", "*.json", "merges.txt", "vocab.*", "*.model")


def resolve_model_dir(model: str) -> Path:
    """A model directory as given, or the local snapshot of a hub id (downloaded unless HF_HUB_OFFLINE)."""
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserInputError(f"{path}: not a Hugging Face model directory (no config.json)")
        return path
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(model, allow_patterns=list(HUB_FILES)))
    except Exception as err:  # invalid id, not cached offline, not on the hub, network: all one message
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        where = f"the local Hugging Face cache{offline}"
        raise UserInputError(f"{model}: no such directory, and not found in {where}: {reason}") from None
