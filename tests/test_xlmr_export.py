"""The SentencePiece export: fairseq checkpoints of the Chinese path become XLMRobertaForMaskedLM /
XLMRobertaForQuestionAnswering with a fast tokenizer AutoTokenizer loads, ids equal to fairseq's through
dict.txt, logits within 1e-4; and the acceptance check: transformers' answers on the CMRC trial slice equal
fairseq's."""

from __future__ import annotations

import json
import subprocess
import sys

from fairseq.data import Dictionary
from transformers import AutoConfig, AutoTokenizer

from fairseq_ext.squad import load_squad
from fairseq_ext.tokenizer import load_tokenizer
from tests.conftest import REPO
from tests.spm_fixtures import run_tool


def export(checkpoint, spm_dir, out):
    return run_tool("fairseq_to_hf.py", "--checkpoint", checkpoint, "--tokenizer", spm_dir, "--out", out)


def test_span_qa_checkpoint_becomes_xlmr_and_answers_as_fairseq(cmrc_checkpoint, cmrc_squad_bin, spm_dir,
                                                                tmp_path):
    hf_dir = tmp_path / "hf"
    done = export(cmrc_checkpoint, spm_dir, hf_dir)
    assert "ids identical" in done.stdout
    config = AutoConfig.from_pretrained(hf_dir)
    assert config.model_type == "xlm-roberta" and config.architectures == ["XLMRobertaForQuestionAnswering"]
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    assert tokenizer.is_fast and type(tokenizer).__name__ == "XLMRobertaTokenizer"

    # ids: the HF tokenizer against the SentencePiece model + dict.txt, on every context and question
    dictionary = Dictionary.load(str(spm_dir / "dict.txt"))
    dictionary.add_symbol("<mask>")
    fairseq_side = load_tokenizer(spm_dir).to_dictionary(dictionary.symbols, dictionary.unk())
    examples = load_squad(cmrc_squad_bin / "valid.json").examples
    texts = sorted({e.context for e in examples} | {e.question for e in examples})
    for text in texts:
        expected = fairseq_side.encode_with_offsets(text)[0]
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == expected, text

    # the acceptance check: transformers' answers equal fairseq's on >= 99.5% of the questions
    fairseq_out, hf_out = tmp_path / "fairseq", tmp_path / "transformers"
    run_tool("predict_squad2.py", "--checkpoint", cmrc_checkpoint, "--data", cmrc_squad_bin / "valid.json",
             "--tokenizer", spm_dir, "--out", fairseq_out, "--metric", "cmrc")
    run_tool("evaluate_hf.py", "--model", hf_dir, "--data", cmrc_squad_bin / "valid.json", "--out", hf_out,
             "--metric", "cmrc")
    answers = {side: json.loads((out / "predictions.json").read_text(encoding="utf-8"))
               for side, out in (("fairseq", fairseq_out), ("transformers", hf_out))}
    same = sum(answers["transformers"].get(qid) == answer for qid, answer in answers["fairseq"].items())
    print(f"transformers = fairseq on {same}/{len(examples)} CMRC questions")
    assert len(answers["fairseq"]) == len(examples) and same >= 0.995 * len(examples)
    scores = {side: json.loads((out / "eval_results.json").read_text())
              for side, out in (("fairseq", fairseq_out), ("transformers", hf_out))}
    assert list(scores["transformers"]) == ["AVERAGE", "F1", "EM", "TOTAL", "SKIP",
                                           "no_answer_baseline", "answered", "data"]
    assert abs(scores["fairseq"]["F1"] - scores["transformers"]["F1"]) <= 0.5


def test_masked_lm_checkpoint_becomes_xlmr_masked_lm(spm_pretrained_checkpoint, spm_dir, tmp_path):
    done = export(spm_pretrained_checkpoint, spm_dir, tmp_path / "hf")
    assert "ids identical" in done.stdout and "-> OK" in done.stdout
    config = AutoConfig.from_pretrained(tmp_path / "hf")
    assert config.architectures == ["XLMRobertaForMaskedLM"]
    assert config.vocab_size == len(Dictionary.load(str(spm_dir / "dict.txt"))) + 1  # + <mask>, no aliases


def test_export_refuses_another_tokenizer(cmrc_checkpoint, gpt2_bpe_dir, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "convert" / "fairseq_to_hf.py"), "--checkpoint",
                           str(cmrc_checkpoint), "--gpt2-bpe", str(gpt2_bpe_dir), "--out",
                           str(tmp_path / "hf")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "was made with the sentencepiece tokenizer" in done.stderr
