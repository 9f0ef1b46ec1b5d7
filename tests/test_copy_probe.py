"""scripts/copy_probe.py: how often a masked LM restores a masked repeated name (docs/learnable-qa.md)."""

from __future__ import annotations

import re
import subprocess
import sys

import torch

from fairseq_ext.commands import copy_probe
from fairseq_ext.squad.learnable import make_dataset
from fairseq_ext.tokenizer import load_tokenizer
from fairseq_ext.tokenizer.dictionary import load_roberta_dictionary
from tests.conftest import REPO

CONTEXT = "Emily Murphy works as a painter. Keith Cole is a carpenter. Emily Murphy was born in 1994."


def test_names_are_the_questions_capitalised_words_and_only_repeated_ones_are_probed():
    names = copy_probe.question_names("What is Keith Cole's job? Ask Emily")
    assert names == {"Keith", "Cole", "Ask", "Emily"}  # "What" opens the question
    spans = copy_probe.repeated_mentions(CONTEXT, {"Emily", "Murphy", "Keith", "Cole"})
    assert [CONTEXT[a:b] for a, b in spans] == ["Emily", "Murphy", "Emily", "Murphy"]  # Keith Cole: once


class EchoModel(torch.nn.Module):
    """Logits that put each input token first, or, with ``gold``, the token of the unmasked text: a
    masked LM that copies perfectly (gold) or not at all (echoing <mask>)."""

    def __init__(self, vocab: int, gold: torch.Tensor | None = None):
        super().__init__()
        self.vocab, self.gold = vocab, gold

    def max_positions(self) -> int:
        return 128

    def forward(self, tokens):
        source = tokens if self.gold is None else self.gold
        return (torch.nn.functional.one_hot(source, self.vocab).float(),)


def test_probe_counts_restored_mentions_with_the_real_tokenizer(gpt2_bpe_dir):
    dictionary = load_roberta_dictionary(gpt2_bpe_dir / "dict.txt")
    tokenizer = load_tokenizer(gpt2_bpe_dir)
    ids, _ = tokenizer.to_dictionary(dictionary.symbols).encode_with_offsets(CONTEXT)
    gold = torch.tensor([[dictionary.bos(), *ids, dictionary.eos()]])
    names = [(CONTEXT, {"Emily", "Murphy", "Keith", "Cole"})]
    copying = copy_probe.probe(EchoModel(len(dictionary), gold), dictionary, tokenizer, names, "cpu")
    assert copying == {"masked": 4, "restored": 4, "beyond_positions": 0}
    echoing = copy_probe.probe(EchoModel(len(dictionary)), dictionary, tokenizer, names, "cpu")
    assert echoing == {"masked": 4, "restored": 0, "beyond_positions": 0}


def run_probe(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "copy_probe.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_probe_runs_on_a_masked_lm_and_refuses_what_it_cannot_probe(tiny_pretrained_checkpoint,
                                                                    tiny_squad_checkpoint, gpt2_bpe_dir,
                                                                    tmp_path):
    import json

    for lang in ("en", "zh"):
        _, dev = make_dataset(lang, 10, 60, seed=3, people=(2, 3))
        (tmp_path / f"{lang}.json").write_text(json.dumps(dev, ensure_ascii=False))
    done = run_probe("--checkpoint", tiny_pretrained_checkpoint, "--data", tmp_path / "en.json",
                     "--tokenizer", gpt2_bpe_dir)
    assert done.returncode == 0, done.stderr
    found = re.fullmatch(r".*: restored (\d+) of (\d+) masked repeated names \(\d+\.\d%\) in (\d+) "
                         r"contexts\n", done.stdout)
    assert found and int(found[2]) >= 2 * int(found[3]) and int(found[1]) <= int(found[2]), done.stdout
    for args, message in (
        (("--checkpoint", tiny_squad_checkpoint, "--data", tmp_path / "en.json"),
         "is not a masked-LM checkpoint (task 'squad2'): give the checkpoint of scripts/pretrain.sh"),
        (("--checkpoint", tiny_pretrained_checkpoint, "--data", tmp_path / "zh.json"),
         "no context mentions a name of its questions twice (names are capitalised words: English only)"),
    ):
        refused = run_probe(*args, "--tokenizer", gpt2_bpe_dir)
        assert refused.returncode == 2 and refused.stderr.splitlines()[-1].endswith(message), refused.stderr
        assert "Traceback" not in refused.stderr
