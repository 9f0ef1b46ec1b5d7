"""Reading SQuAD v1.1 / v2.0 JSON into flat examples, with answer positions checked against the context."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Union

from fairseq_ext.cli import existing_file
from fairseq_ext.errors import UserInputError

PathLike = Union[str, os.PathLike]

# A misaligned answer_start is moved to the nearest occurrence of the answer text at most this many
# characters away (annotation tools shifted offsets by a few characters); farther means a wrong answer.
ANSWER_SEARCH_RADIUS = 50


@dataclass
class Answer:
    text: str
    start: int  # character offset of the answer in the context
    located: bool = True  # False: the text is not at or near ``start`` (scored by its text, never a label)


@dataclass
class SquadExample:
    qid: str
    title: str
    context: str
    question: str
    answers: list[Answer]  # gold answers, empty for an unanswerable or unlabelled question
    is_impossible: bool
    labelled: bool = True  # False: a test question without an "answers" field, predicted but never scored


@dataclass
class SquadData:
    examples: list[SquadExample]
    version_2: bool  # the file says v2.x or has unanswerable questions
    repaired: int = 0  # answers whose answer_start was moved onto the answer text
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (qid, reason) of dropped questions
    unlocated: list[tuple[str, str]] = field(default_factory=list)  # (qid, reason): kept, scored by text
    labelled: bool = True  # False: no question has answers (a test file): predictions cannot be scored

    def summary(self) -> str:
        """One line for the user: what was read, repaired and skipped."""
        unanswerable = sum(example.is_impossible for example in self.examples)
        answers = f"{unanswerable} unanswerable" if self.labelled else "no answers: predicted, not scored"
        line = (f"{len(self.examples)} questions ({answers}), "
                f"SQuAD {'2.0' if self.version_2 else '1.1'}, {self.repaired} answer_start repaired, "
                f"{len(self.skipped)} questions skipped")
        if self.skipped:
            qid, reason = self.skipped[0]
            line += f" (e.g. {qid}: {reason})"
        if self.unlocated:
            qid, reason = self.unlocated[0]
            line += (f", {len(self.unlocated)} answers not located (predicted and scored by their text; e.g. "
                     f"{qid}: {reason})")
        return line


def read_json(path: PathLike, what: str = "input file") -> Any:
    """A JSON file the user gives, parsed; a UTF-8 byte order mark (written by some Windows editors) is
    read past, as Python's utf-8-sig does. Not JSON or not UTF-8: a one-line error."""
    path = existing_file(path, what, stream=True)
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path}: not valid JSON: {err}") from None


def load_squad(path: PathLike, align_answers: bool = True, training: bool = True) -> SquadData:
    """Reads a SQuAD JSON file.

    With ``align_answers`` (needed for labels), an answer whose ``answer_start`` does not point at its
    text is repaired when the text occurs within ANSWER_SEARCH_RADIUS characters; one that cannot be is
    counted and, for ``training``, its question skipped; otherwise (prediction, evaluation) the question
    is kept, the answer marked not ``located`` (no window label; the metric reads texts only), as the
    official SQuAD and CMRC 2018 scripts score every question. Without ``align_answers`` (metric-only
    use) positions are not checked.
    """
    dataset = read_json(path, "SQuAD file")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise UserInputError(f"{path}: not a SQuAD file (expected an object with a 'data' list)")
    data = parse_articles(dataset["data"], align_answers=align_answers, source=str(path), training=training)
    data.version_2 = data.version_2 or str(dataset.get("version", "")).startswith("v2")
    return data


# The official evaluation files, by the sha256 of their bytes (as published; TFDS and others pin the same
# digests): a score is labelled with a hub dataset id only when it was measured on one of these.
OFFICIAL_FILES = {
    "80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8": ("squad_v2", "SQuAD 2.0 dev"),
    "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9": ("squad", "SQuAD 1.1 dev"),
}


def file_identity(path: PathLike) -> dict:
    """What a scored file is, for eval_results.json and the model card: its name (no directories), its
    sha256 and, for an official evaluation file recognised by its sha256, the hub dataset id and name."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    dataset, name = OFFICIAL_FILES.get(digest, (None, None))
    return {"file": os.path.basename(path), "sha256": digest, "dataset": dataset, "dataset_name": name}


def parse_articles(articles: list, align_answers: bool = True, source: str = "SQuAD data",
                   training: bool = True) -> SquadData:
    """The ``data`` list of a SQuAD file (articles of paragraphs of questions) as a SquadData
    (``align_answers``, ``training``: see load_squad)."""
    data = SquadData(examples=[], version_2=False)
    seen_qids = set()
    for article_index, article in enumerate(articles):
        where = f"{source}: article {article_index}"
        title = json_field(article, "title", str, where, default="")
        where += f" ({title!r})" if title else ""
        for paragraph_index, paragraph in enumerate(json_field(article, "paragraphs", list, where)):
            where_paragraph = f"{where} paragraph {paragraph_index}"
            context = json_field(paragraph, "context", str, where_paragraph)
            for qa_index, qa in enumerate(json_field(paragraph, "qas", list, where_paragraph)):
                qid = json_field(qa, "id", str, f"{where_paragraph} question {qa_index}")
                where_qa = f"{where_paragraph} question {qid}"
                if qid in seen_qids:
                    raise UserInputError(f"{where_qa}: duplicate question id")
                seen_qids.add(qid)
                example = _parse_question(qa, qid, title, context, where_qa)
                if align_answers and not _align_answers(example, data, training):
                    continue
                data.examples.append(example)
                data.version_2 = data.version_2 or example.is_impossible
    labelled = {example.labelled for example in data.examples}
    if len(labelled) > 1:
        example = next(example for example in data.examples if not example.labelled)
        raise UserInputError(f"{source}: question {example.qid} has no 'answers' field but others have one "
                             "(a test file has none, a training or evaluation file has them everywhere)")
    data.labelled = labelled != {False}
    return data


def _parse_question(qa: dict, qid: str, title: str, context: str, where: str) -> SquadExample:
    question = json_field(qa, "question", str, where)
    if "answers" not in qa and not qa.get("is_impossible", False):
        return SquadExample(qid=qid, title=title, context=context, question=question, answers=[],
                            is_impossible=False, labelled=False)
    answers = []
    for answer_index, answer in enumerate(json_field(qa, "answers", list, where)):
        where_answer = f"{where} answer {answer_index}"
        answers.append(Answer(text=json_field(answer, "text", str, where_answer),
                              start=json_field(answer, "answer_start", int, where_answer)))
    is_impossible = json_field(qa, "is_impossible", bool, where, default=not answers)
    if is_impossible == bool(answers):
        raise UserInputError(f"{where}: is_impossible={is_impossible} but {len(answers)} answers given")
    return SquadExample(qid=qid, title=title, context=context, question=question, answers=answers,
                        is_impossible=is_impossible)


def _align_answers(example: SquadExample, data: SquadData, training: bool) -> bool:
    """Repairs misaligned answers in place (counted). One that cannot be is recorded: for ``training``
    the question is then dropped (False), else the answer is marked not located and the question kept."""
    context = example.context
    for answer in example.answers:
        if answer.text and answer.start >= 0 and context.startswith(answer.text, answer.start):
            continue
        nearest = nearest_occurrence(context, answer.text, answer.start) if answer.text.strip() else None
        if nearest is None:
            reason = f"answer {answer.text!r} not found near answer_start {answer.start} in its context"
            if training:
                data.skipped.append((example.qid, reason))
                return False
            data.unlocated.append((example.qid, reason))
            answer.located = False
            continue
        answer.start = nearest
        data.repaired += 1
    return True


def nearest_occurrence(context: str, text: str, start: int):
    lo = max(0, start - ANSWER_SEARCH_RADIUS)
    hi = min(len(context), start + ANSWER_SEARCH_RADIUS + len(text))
    candidates = []
    position = context.find(text, lo, hi)
    while position != -1:
        candidates.append(position)
        position = context.find(text, position + 1, hi)
    return min(candidates, key=lambda p: (abs(p - start), p)) if candidates else None


_MISSING = object()


def json_field(item: Any, name: str, kind: Union[type, tuple[type, ...]], where: str,
               default: Any = _MISSING) -> Any:
    """``item[name]`` of a JSON object read from a data file, checked to be of ``kind``: a missing field
    (without ``default``) or one of another type is a UserInputError that says ``where`` it is."""
    if not isinstance(item, dict):
        raise UserInputError(f"{where}: expected a JSON object, got {type(item).__name__}")
    value = item.get(name, default)
    if value is _MISSING:
        raise UserInputError(f"{where}: missing field {name!r}")
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python; an answer_start of true/false is malformed all the same
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        expected = " or ".join(k.__name__ for k in kinds)
        raise UserInputError(f"{where}: field {name!r} should be {expected}, got {type(value).__name__}")
    return value
