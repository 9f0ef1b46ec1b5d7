"""Hugging Face RoBERTa (a directory or a hub id in the local cache) -> fairseq model directory:
``model.pt`` (restorable by fairseq-hydra-train, loadable by ``RobertaModel.from_pretrained``), ``dict.txt``
and the GPT-2 BPE files, verified before anything is written.

``RobertaForMaskedLM`` and ``RobertaModel`` become fairseq's ``roberta`` (the latter with a freshly
initialised masked-LM head, reported), ``RobertaForQuestionAnswering`` our ``roberta_span_qa``. What HF
has and fairseq has not is folded in exactly (state_dict) or refused with a one-line reason (config).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from fairseq_ext.checkpoints import load_checkpoint
from fairseq_ext.errors import UserInputError
from fairseq_ext.export import tokenizer_files
from fairseq_ext.export.config import (
    ENCODER,
    HF_ARCHITECTURES,
    SPAN_QA,
    check_hf_structure,
    fairseq_args,
    hf_kind,
)
from fairseq_ext.export.fairseq_model import (
    FairseqRoberta,
    build_model,
    checkpoint_state,
    dictionary_of,
    load_dictionary,
    load_fairseq_roberta,
)
from fairseq_ext.export.state_dict import NOT_WEIGHTS, fairseq_state_dict
from fairseq_ext.export.tokenizer_files import ExportVocabulary
from fairseq_ext.export.verify import DEFAULT_TOLERANCE, Verification, VerificationError, compare
from fairseq_ext.hf.hub import load_hf_tokenizer, load_pretrained
from fairseq_ext.outputs import OutputDirectory
from fairseq_ext.squad.settings import DEFAULT, QASettings
from fairseq_ext.tokenizer import default_tokenizer_dir, find_tokenizer_dir, load_tokenizer
from fairseq_ext.tokenizer.gpt2 import write_bpe_files

CHECKPOINT = "model.pt"
OUTPUT_FILES = (CHECKPOINT, *tokenizer_files.FAIRSEQ_FILES)
FRESH_HEAD_SEED = 1  # the masked-LM head given to a RobertaModel: the same on every run


@dataclass
class ImportReport:
    kind: str
    source: Path  # the model directory (a hub id resolved to its cached snapshot)
    roberta: FairseqRoberta
    vocabulary: ExportVocabulary
    verification: Optional[Verification]
    tokenizer: str  # the tokenizer directory, or where its files were rebuilt from


def load_hf_model(model_dir: Path):
    """(kind, config, fast tokenizer, fp32 model in eval mode) of a RoBERTa directory, checked."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForQuestionAnswering,
    )

    try:
        config = AutoConfig.from_pretrained(str(model_dir))
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"cannot read {model_dir / 'config.json'}: {str(err).splitlines()[0]}") from None
    kind = hf_kind(config)
    check_hf_structure(kind, config)
    auto_class = {SPAN_QA: AutoModelForQuestionAnswering, ENCODER: AutoModel}.get(kind, AutoModelForMaskedLM)
    tokenizer = load_hf_tokenizer(model_dir, config)
    model, _ = load_pretrained(auto_class, model_dir, dtype=torch.float32)
    return kind, config, tokenizer, model.eval()


def qa_settings(config, max_positions: int) -> QASettings:
    """The windows and answer settings a span-QA export recorded, else the defaults fitted to the model."""
    recorded = getattr(config, "squad_settings", None)
    if recorded:
        return QASettings.from_object(recorded)
    return dataclasses.replace(DEFAULT, max_seq_length=min(DEFAULT.max_seq_length, max_positions))


def convert_model(kind: str, config, hf_model, vocabulary: ExportVocabulary,
                  symbols: list[str]) -> FairseqRoberta:
    """The fairseq model holding the HF model's weights."""
    dictionary = dictionary_of(symbols)
    args = fairseq_args(kind, config)
    with torch.random.fork_rng():
        torch.manual_seed(FRESH_HEAD_SEED)
        model = build_model(args, dictionary, args.max_positions)
    state, dropped = fairseq_state_dict(hf_model.state_dict(), kind, vocabulary.dictionary_size)
    expected = {key for key in model.state_dict() if not NOT_WEIGHTS.search(key)}
    fresh = sorted(expected - set(state))
    if fresh and (kind != ENCODER or any(not key.startswith("encoder.lm_head.") for key in fresh)):
        raise UserInputError(f"the model lacks tensors fairseq's RoBERTa needs: {', '.join(fresh[:5])}")
    try:
        model.load_state_dict({**model.state_dict(), **state}, strict=True, model_cfg=args)
    except RuntimeError as err:
        raise UserInputError(f"the model's tensors do not fit a fairseq RoBERTa "
                             f"({str(err).splitlines()[-1].strip()})") from None
    settings = qa_settings(config, args.max_positions) if kind == SPAN_QA else None
    return FairseqRoberta(model=model.eval(), kind=kind, args=args, dictionary=dictionary, dropped=dropped,
                          squad_settings=settings)


def import_model(model_dir: Path, out_dir: Path, tokenizer_dir: Optional[Path] = None, force: bool = False,
                 verify: bool = True, tolerance: float = DEFAULT_TOLERANCE) -> ImportReport:
    """Writes ``out_dir`` (model.pt, dict.txt, encoder.json, vocab.bpe) atomically from the HF model in
    ``model_dir`` (fairseq_ext.hf.hub.resolve_model_dir finds a hub id's). A failed verification raises
    VerificationError and leaves ``out_dir`` untouched. Without ``tokenizer_dir``, $GPT2_BPE_DIR or
    gpt2_bpe/, GPT-2's files are rebuilt from the model's own merges
    (fairseq_ext.tokenizer.gpt2.encoder_from_merges)."""
    tokenizer_dir = find_tokenizer_dir(tokenizer_dir) if tokenizer_dir is not None \
        else default_tokenizer_dir()
    output = OutputDirectory(out_dir, "hf_to_fairseq", inputs=[model_dir, tokenizer_dir], replace=force)
    kind, config, tokenizer, hf_model = load_hf_model(model_dir)
    with contextlib.ExitStack() as stack:
        source = str(tokenizer_dir)
        if tokenizer_dir is None:  # no GPT-2 files at hand: the model's own merges are all they hold
            tokenizer_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            write_bpe_files(tokenizer_files.tokenizer_merges(tokenizer), tokenizer_dir)
            source = f"GPT-2 BPE files rebuilt from the merges of {model_dir}"
        files = tokenizer_files.for_directory(tokenizer_dir)
        vocabulary = files.import_vocabulary(tokenizer)
        if config.vocab_size != len(vocabulary.tokens):
            raise UserInputError(f"the model has {config.vocab_size} embedding rows but its tokenizer "
                                 f"{len(vocabulary.tokens)} tokens: every row must be a dictionary symbol")

        with output.staged() as staging:
            symbols = files.write_fairseq(vocabulary, staging)
            roberta = convert_model(kind, config, hf_model, vocabulary, symbols)
            final = out_dir.resolve()
            torch.save(checkpoint_state(roberta, final, files.fairseq_bpe_config(final), str(model_dir)),
                       staging / CHECKPOINT)
            verification = None
            if verify:  # the written files, read back as fairseq reads them
                written = load_fairseq_roberta(load_checkpoint(staging / CHECKPOINT), staging / CHECKPOINT,
                                               load_dictionary(staging / "dict.txt"))
                written.kind = kind
                encoder = load_tokenizer(staging).to_dictionary(written.dictionary.symbols,
                                                                written.dictionary.unk())
                verification = compare(tokenizer, hf_model, written, encoder, vocabulary, tolerance)
                if not verification.ok:
                    raise VerificationError(verification)
    return ImportReport(kind=kind, source=model_dir, roberta=roberta, vocabulary=vocabulary,
                        verification=verification, tokenizer=source)


def describe(report: ImportReport) -> list[str]:
    args, vocabulary = report.roberta.args, report.vocabulary
    lines = [
        f"source: {report.source} ({HF_ARCHITECTURES[report.kind]})",
        f"model: fairseq {args._name}, {args.encoder_layers} layers, hidden {args.encoder_embed_dim}, "
        f"{args.encoder_attention_heads} heads, ffn {args.encoder_ffn_embed_dim}, max positions "
        f"{args.max_positions}, activation {args.activation_fn}",
        f"tokenizer: {report.tokenizer}",
        f"dictionary: {vocabulary.dictionary_size} symbols with specials and <mask>",
    ]
    if vocabulary.aliases:
        lines.append(f"  {vocabulary.aliases} alias ids after <mask> (GPT-2 tokens absent from the "
                     "dictionary) are <unk> in fairseq")
    lines += [f"not converted: {item}" for item in report.roberta.dropped]
    if report.kind == ENCODER:
        lines.append("masked-LM head: freshly initialised (the model has none)")
    if report.roberta.squad_settings is not None:
        lines.append(f"task squad2: {report.roberta.squad_settings.describe()}")
    lines.append("verification: " + (report.verification.summary() + " -> OK" if report.verification
                                     else "skipped (--no-verify)"))
    return lines
