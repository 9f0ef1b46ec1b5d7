"""Does a masked-LM checkpoint copy names? Masks each repeated mention of a question's name in its
context and counts how often the checkpoint's top guess puts the name back.

    scripts/copy_probe.py --checkpoint checkpoints/pretrained/checkpoint_last.pt \\
        --data data/learnable/dev.json --tokenizer bpe

A name (a capitalised word of a question, not its first word) mentioned twice or more in the context can
be restored by copying it from its other mention; a masked LM that does not copy guesses it by frequency.
Answering "which sentence is about the person asked about" needs that same matching (docs/learnable-qa.md).
Each mention is masked on its own (all its tokens), the rest of the context left as it is. English only
(names are found by their capital letter).
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from fairseq_ext.cli import bounded_int, device_of, existing_file, run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.squad import load_squad
from fairseq_ext.tokenizer import add_tokenizer_argument, find_tokenizer_dir, load_tokenizer

WORD = re.compile(r"[A-Z][\w-]*")
CONTEXTS = bounded_int(1, 1_000_000)


def question_names(question: str) -> set[str]:
    """Capitalised words of a question but its first (an interrogative, not a name)."""
    return {match.group() for match in WORD.finditer(question) if match.start() > 0}


def repeated_mentions(context: str, names: set[str]) -> list[tuple[int, int]]:
    """Character spans of every mention of a name that the context mentions twice or more."""
    spans = {}
    for match in WORD.finditer(context):
        if match.group() in names:
            spans.setdefault(match.group(), []).append(match.span())
    return sorted(span for found in spans.values() if len(found) > 1 for span in found)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="masked-LM checkpoint (task masked_lm)")
    parser.add_argument("--data", required=True, metavar="JSON", help="SQuAD file whose contexts are probed")
    add_tokenizer_argument(parser, ", with the checkpoint's dict.txt")
    parser.add_argument("--contexts", type=CONTEXTS, default=200,
                        help="probe the first N contexts (default: 200)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    return parser.parse_args(argv)


def load_masked_lm(checkpoint: Path, tokenizer_dir: Path, device: str):
    """The checkpoint's model in eval mode and its dictionary (TOKENIZER/dict.txt + <mask>)."""
    from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint, model_with_dictionary

    logging.getLogger("fairseq").setLevel(logging.WARNING)  # the task's "dictionary: N types" line
    state = load_checkpoint(checkpoint)
    info = checkpoint_info(state)
    if info.task_name != "masked_lm" or state.get("cfg") is None:
        raise UserInputError(f"{checkpoint} is not a masked-LM checkpoint (task {info.task_name!r}): give "
                             "the checkpoint of scripts/pretrain.sh")
    model, _, task = model_with_dictionary(checkpoint, state, tokenizer_dir)
    return model.to(device), task.source_dictionary


def probe(model, dictionary, tokenizer, contexts: list[tuple[str, set[str]]], device: str) -> dict:
    """Masked mentions restored exactly (every token the top guess) over ``contexts`` (text, names)."""
    import torch

    encoder = tokenizer.to_dictionary(dictionary.symbols)
    limit = model.max_positions() - 2  # <s> ... </s>
    mask, restored, masked, beyond = dictionary.index("<mask>"), 0, 0, 0
    for context, names in contexts:
        ids, offsets = encoder.encode_with_offsets(context)
        sample = torch.tensor([[dictionary.bos(), *ids[:limit], dictionary.eos()]], device=device)
        for start, end in repeated_mentions(context, names):
            positions = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
            if not positions or positions[-1] >= limit:
                beyond += 1
                continue
            at = [p + 1 for p in positions]  # after <s>
            tokens = sample.clone()
            tokens[0, at] = mask
            with torch.no_grad():
                guesses = model(tokens)[0][0, at].argmax(-1)
            masked += 1
            restored += bool((guesses == sample[0, at]).all())
    return {"masked": masked, "restored": restored, "beyond_positions": beyond}


def main(argv=None) -> int:
    args = parse_args(argv)
    checkpoint = existing_file(args.checkpoint, "checkpoint")
    squad = load_squad(existing_file(args.data, "SQuAD file"), align_answers=False)
    tokenizer_dir = find_tokenizer_dir(args.tokenizer, need_dict=True)
    names: dict[str, set[str]] = {}
    for example in squad.examples:
        if example.context in names or len(names) < args.contexts:
            names.setdefault(example.context, set()).update(question_names(example.question))
    if not any(repeated_mentions(context, found) for context, found in names.items()):
        raise UserInputError(f"{args.data}: no context mentions a name of its questions twice (names are "
                             "capitalised words: English only)")
    device = device_of(args.device)
    model, dictionary = load_masked_lm(checkpoint, tokenizer_dir, device)
    result = probe(model, dictionary, load_tokenizer(tokenizer_dir), list(names.items()), device)
    skipped = f"; {result['beyond_positions']} beyond the model's positions, not probed" \
        if result["beyond_positions"] else ""
    print(f"{checkpoint}: restored {result['restored']} of {result['masked']} masked repeated names "
          f"({100 * result['restored'] / max(result['masked'], 1):.1f}%) in {len(names)} contexts{skipped}")
    return 0


def cli() -> None:
    run_cli(main)
