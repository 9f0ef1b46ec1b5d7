"""fairseq RoBERTa checkpoint -> Hugging Face model directory, verified before anything is written.

Span-QA checkpoints (model ``roberta_span_qa``) become ``RobertaForQuestionAnswering``, masked-LM ones
``RobertaForMaskedLM``; every size comes from the checkpoint. The tokenizer is GPT-2's byte-level BPE
re-indexed through the fairseq dictionary (tokenizer_files), so a HF token id is the fairseq index.
The written directory is loaded back as users load it and compared with the fairseq model (verify).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint, own_dictionary, training_data_dir
from fairseq_ext.cli import existing_file, finite_number
from fairseq_ext.errors import UserInputError
from fairseq_ext.export import card, tokenizer_files
from fairseq_ext.export.config import SPAN_QA, check_fairseq_structure, hf_config
from fairseq_ext.export.fairseq_model import FairseqRoberta, load_dictionary, load_fairseq_roberta
from fairseq_ext.export.state_dict import hf_state_dict
from fairseq_ext.export.tokenizer_files import ExportVocabulary
from fairseq_ext.export.verify import DEFAULT_TOLERANCE, Verification, VerificationError, compare
from fairseq_ext.outputs import OutputDirectory
from fairseq_ext.tokenizer import check_record, find_tokenizer_dir, load_tokenizer
from fairseq_ext.tokenizer.dictionary import check_same_dictionary

MODEL_FILES = ("config.json", "model.safetensors", "README.md")
OUTPUT_FILES = MODEL_FILES + tokenizer_files.HF_FILES
BEST = "best"  # --null-threshold best: best_f1_thresh of the eval results


@dataclass
class CardOptions:
    languages: tuple[str, ...] = ("en",)
    license: Optional[str] = None
    eval_results: Optional[Path] = None  # eval_results.json of predict_squad2.py / evaluate_hf.py
    eval_dataset: Optional[str] = None  # a hub dataset id; None: recognised from eval_results.json
    null_threshold: Union[None, float, str] = None  # a value, BEST, or None: the fine-tuning task's


@dataclass
class ExportReport:
    kind: str
    config: object  # transformers RobertaConfig
    dictionary: Path
    vocabulary: ExportVocabulary
    dropped: list[str]
    verification: Optional[Verification]
    null_threshold: Optional[tuple[float, str]]


def null_threshold(option: Union[None, float, str], eval_results: Optional[dict],
                   eval_path: Optional[Path]) -> Optional[tuple[float, str]]:
    """(threshold, where it comes from) for --null-threshold T|best, None when not given."""
    if option is None:
        return None
    if option == BEST:
        if eval_results is None or "best_f1_thresh" not in eval_results:
            raise UserInputError("--null-threshold best needs --eval-results with best_f1_thresh (SQuAD 2.0 "
                                 "eval_results.json)")
        return (finite_number(eval_results["best_f1_thresh"], f"{eval_path}: best_f1_thresh"),
                f"best_f1_thresh of {eval_path.name}")
    return finite_number(option, "--null-threshold (a number or 'best')"), "--null-threshold"


def build_hf_model(roberta: FairseqRoberta, vocabulary: ExportVocabulary, family: str = "Roberta"):
    import transformers

    settings = roberta.squad_settings.as_dict() if roberta.squad_settings else None
    config = hf_config(roberta.kind, roberta.model, roberta.args, len(vocabulary.tokens), settings, family)
    model = getattr(transformers, config.architectures[0])(config)
    model.load_state_dict(hf_state_dict(roberta.model.state_dict(), roberta.kind, vocabulary,
                                        config.tie_word_embeddings), strict=True)
    return model.eval()


def load_hf(directory: Path, kind: str):
    from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering, AutoTokenizer

    auto_class = AutoModelForQuestionAnswering if kind == SPAN_QA else AutoModelForMaskedLM
    return AutoTokenizer.from_pretrained(str(directory)), auto_class.from_pretrained(str(directory)).eval()


def export(checkpoint: Path, tokenizer_dir: Optional[Path], out_dir: Path,
           dictionary_path: Optional[Path] = None, force: bool = False, verify: bool = True,
           tolerance: float = DEFAULT_TOLERANCE,
           card_options: Optional[CardOptions] = None) -> ExportReport:
    """Writes the HF directory ``out_dir`` as a unit (fairseq_ext.outputs). A failed verification raises
    VerificationError and leaves ``out_dir`` untouched."""
    checkpoint = existing_file(checkpoint, "checkpoint")
    card_options = card_options or CardOptions()
    tokenizer_dir = find_tokenizer_dir(tokenizer_dir)
    output = OutputDirectory(out_dir, "fairseq_to_hf", replace=force,
                             inputs=[checkpoint, tokenizer_dir, dictionary_path, card_options.eval_results])
    eval_results = card.read_eval_results(card_options.eval_results) if card_options.eval_results else None
    threshold = null_threshold(card_options.null_threshold, eval_results, card_options.eval_results)
    state = load_checkpoint(checkpoint)
    data = training_data_dir(state)
    if data is not None:
        check_record(data, tokenizer_dir, f"{checkpoint}'s training data {data}")
    own = own_dictionary(state, checkpoint)
    given = dictionary_path is not None
    if not given:
        dictionary_path = own or tokenizer_dir / "dict.txt"
    dictionary = load_dictionary(dictionary_path)
    roberta = load_fairseq_roberta(state, checkpoint, dictionary)  # checks the size
    if given and own is not None:
        check_same_dictionary(dictionary_path, own, "--dict", "pass that one, or leave --dict out")
    if threshold is not None:
        if roberta.kind != SPAN_QA:
            raise UserInputError("--null-threshold applies to span-QA checkpoints (task squad2) only")
        roberta.squad_settings = dataclasses.replace(roberta.squad_settings,
                                                     null_score_diff_threshold=threshold[0])
    if eval_results is not None and roberta.kind != SPAN_QA:
        raise UserInputError("--eval-results applies to span-QA checkpoints (task squad2) only")
    check_fairseq_structure(roberta.kind, roberta.model, roberta.args)
    files = tokenizer_files.for_directory(tokenizer_dir)
    vocabulary = files.export_vocabulary(dictionary.symbols)
    hf_model = build_hf_model(roberta, vocabulary, files.hf_family)
    config = hf_model.config
    parameters = hf_model.num_parameters()

    with output.staged() as staging:
        hf_model.save_pretrained(str(staging))
        del hf_model  # verification reloads it from disk, as users will
        files.save_hf(vocabulary, roberta.max_positions, staging)
        verification = None
        if verify:
            encoder = load_tokenizer(tokenizer_dir).to_dictionary(dictionary.symbols, dictionary.unk())
            tokenizer, model = load_hf(staging, roberta.kind)
            verification = compare(tokenizer, model, roberta, encoder, vocabulary, tolerance)
            if not verification.ok:
                raise VerificationError(verification)
        facts = card.CardFacts(
            kind=roberta.kind, name=out_dir.name, config=config.to_dict(), checkpoint=checkpoint,
            num_updates=checkpoint_info(state).num_updates, training=card.training_facts(state),
            verification=verification.summary() if verification else None,
            languages=list(card_options.languages), license=card_options.license,
            eval_results=eval_results, eval_dataset=card_options.eval_dataset, null_threshold=threshold,
            parameters=parameters, tokenizer=f"{files.description}, {len(vocabulary.tokens)} ids")
        card.model_card(facts).save(staging / "README.md")
    return ExportReport(kind=roberta.kind, config=config, dictionary=dictionary_path, vocabulary=vocabulary,
                        dropped=roberta.dropped, verification=verification, null_threshold=threshold)


def describe(report: ExportReport) -> list[str]:
    config, vocabulary = report.config, report.vocabulary
    model = config.architectures[0]
    lines = [
        f"model: {model}, {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        f"{config.num_attention_heads} heads, ffn {config.intermediate_size}, "
        f"max positions {config.max_position_embeddings - 2}, activation {config.hidden_act}",
        f"dictionary: {report.dictionary} ({vocabulary.dictionary_size} symbols with specials and <mask>)",
    ]
    if vocabulary.absent_gpt2_ids:
        lines.append(f"  {len(vocabulary.absent_gpt2_ids)} GPT-2 tokens are not in the dictionary: alias ids "
                     f"{vocabulary.dictionary_size}..{len(vocabulary.tokens) - 1}, embedded as <unk>")
    if vocabulary.literal_symbols:
        lines.append(f"  {len(vocabulary.literal_symbols)} dictionary symbols are no GPT-2 token (kept, "
                     f"never produced by the tokenizer): {', '.join(vocabulary.literal_symbols[:3])}"
                     f"{' ...' if len(vocabulary.literal_symbols) > 3 else ''}")
    for item in report.dropped:
        lines.append(f"not exported: {item} (no counterpart in {model})")
    if report.kind == SPAN_QA:
        threshold = config.squad_settings["null_score_diff_threshold"]
        source = report.null_threshold[1] if report.null_threshold else "the fine-tuning task"
        lines.append(f"null_score_diff_threshold: {threshold:g} (from {source}), stored in config.json")
    lines.append("verification: " + (report.verification.summary() + " -> OK" if report.verification
                                     else "skipped (--no-verify)"))
    return lines
