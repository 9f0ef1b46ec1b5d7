"""Other layouts of extractive QA data turned into SQuAD's (what every other stage reads).

- ``squad``: SQuAD v1.1/v2.0 itself, which DRCD and CMRC 2018's squad-style files use; checked and written
  back unchanged in content.
- ``cmrc``: CMRC 2018's original layout: a list of ``{"context_id", "context_text", "title", "qas":
  [{"query_id", "query_text", "answers": [str, ...]}]}``. Answers carry no position: each is located at its
  first occurrence in the context; one that does not occur is kept with ``answer_start`` -1 and counted
  (evaluation scores it by its text, as the official script does; a training file skips its question); a
  question with an empty answer list is dropped and counted.
- ``hw7``: ``{"questions": [{"id", "paragraph_id", "question_text", "answer_text", "answer_start",
  "answer_end"}], "paragraphs": [str, ...]}`` (``answer_end`` inclusive; a test file has null answers).

A question written without an ``answers`` field is unlabelled (a test file): it is predicted, never scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from fairseq_ext.errors import UserInputError
from fairseq_ext.squad.data import PathLike, json_field, nearest_occurrence, parse_articles, read_json  # noqa: F401

FORMATS = ("squad", "cmrc", "hw7")


@dataclass
class Conversion:
    squad: dict  # the SQuAD file's content
    questions: int = 0
    unlabelled: int = 0
    unlocated_answers: list[tuple[str, str]] = field(default_factory=list)  # (qid, answer) not in the context
    dropped_questions: list[str] = field(default_factory=list)  # qids whose answer list is empty

    def summary(self) -> str:
        line = (f"{self.questions} questions written ({self.unlabelled} without answers: predicted, not "
                f"scored), {len(self.unlocated_answers)} answers not found in their context (kept with "
                "answer_start -1: scored by their text, their questions skipped for training")
        if self.unlocated_answers:
            qid, answer = self.unlocated_answers[0]
            line += f"; e.g. {qid}: {answer!r}"
        return line + f"), {len(self.dropped_questions)} questions with an empty answer list dropped"


def convert(dataset: Any, layout: str, source: str = "input") -> Conversion:
    """``dataset`` (parsed JSON) in ``layout`` as SQuAD; a one-line error names what does not fit."""
    converters: dict[str, Callable[[Any, str], Conversion]] = {"squad": _from_squad, "cmrc": _from_cmrc,
                                                               "hw7": _from_hw7}
    if layout not in converters:
        raise UserInputError(f"unknown format {layout!r} (one of {', '.join(FORMATS)})")
    conversion = converters[layout](dataset, source)
    # the result must read back as SQuAD: the checks of the SQuAD reader apply to every layout
    parse_articles(conversion.squad["data"], align_answers=False, source=source)
    return conversion


def _from_squad(dataset: Any, source: str) -> Conversion:
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise UserInputError(f"{source}: not a SQuAD file (expected an object with a 'data' list); "
                             f"try --format {'cmrc' if isinstance(dataset, list) else 'hw7'}")
    qas = [qa for article in dataset["data"] for paragraph in json_field(article, "paragraphs", list, source)
           for qa in json_field(paragraph, "qas", list, source)]
    return Conversion(squad=dataset, questions=len(qas),
                      unlabelled=sum(isinstance(qa, dict) and "answers" not in qa for qa in qas))


def _from_cmrc(dataset: Any, source: str) -> Conversion:
    if not isinstance(dataset, list):
        raise UserInputError(f"{source}: not CMRC 2018's original layout (expected a list of "
                             "{context_id, context_text, qas} objects)")
    conversion = Conversion(squad={"version": "v1.1", "data": []})
    for index, item in enumerate(dataset):
        where = f"{source}: item {index}"
        context = json_field(item, "context_text", str, where)
        context_id = str(json_field(item, "context_id", (str, int), where, default=index))
        paragraph = {"id": context_id, "context": context, "qas": []}
        for qa in json_field(item, "qas", list, where):
            qid = str(json_field(qa, "query_id", (str, int), where))
            question = {"id": qid, "question": json_field(qa, "query_text", str, f"{where} question {qid}")}
            conversion.questions += 1
            if "answers" not in qa:
                conversion.unlabelled += 1
                paragraph["qas"].append(question)
                continue
            question["answers"] = []
            answers = json_field(qa, "answers", list, f"{where} question {qid}")
            if not answers:  # CMRC has no unanswerable questions: nothing to score it against
                conversion.questions -= 1
                conversion.dropped_questions.append(qid)
                continue
            for answer in answers:
                if not isinstance(answer, str):
                    raise UserInputError(f"{where} question {qid}: answers should be strings, got "
                                         f"{type(answer).__name__}")
                start = context.find(answer) if answer.strip() else -1
                if start < 0:
                    conversion.unlocated_answers.append((qid, answer))
                question["answers"].append({"text": answer, "answer_start": start})
            paragraph["qas"].append(question)
        title = str(json_field(item, "title", str, where, default=context_id))
        conversion.squad["data"].append({"title": title, "paragraphs": [paragraph]})
    return conversion


def _from_hw7(dataset: Any, source: str) -> Conversion:
    if not isinstance(dataset, dict) or "questions" not in dataset or "paragraphs" not in dataset:
        raise UserInputError(f"{source}: not the HW7 layout (expected an object with 'questions' and "
                             "'paragraphs')")
    paragraphs = json_field(dataset, "paragraphs", list, source)
    conversion = Conversion(squad={"version": "v1.1", "data": []})
    previous_paragraph = None
    for index, qa in enumerate(json_field(dataset, "questions", list, source)):
        where = f"{source}: question {index}"
        qid = str(json_field(qa, "id", (str, int), where))
        paragraph_id = json_field(qa, "paragraph_id", int, where)
        if not 0 <= paragraph_id < len(paragraphs) or not isinstance(paragraphs[paragraph_id], str):
            raise UserInputError(f"{where}: paragraph_id {paragraph_id} is not one of the "
                                 f"{len(paragraphs)} paragraphs")
        question = {"id": qid, "question": json_field(qa, "question_text", str, where)}
        answer_text = qa.get("answer_text")
        if answer_text is None:  # a test question
            conversion.unlabelled += 1
        else:
            text = json_field(qa, "answer_text", str, where)
            start = hw7_answer_start(paragraphs[paragraph_id], text,
                                     json_field(qa, "answer_start", int, where),
                                     json_field(qa, "answer_end", int, where, default=None))
            if start < 0:
                conversion.unlocated_answers.append((qid, text))
            question["answers"] = [{"text": text, "answer_start": start}]
        # question order is kept (a CSV of answers follows it): consecutive questions on one paragraph
        # share an article
        if paragraph_id != previous_paragraph:
            conversion.squad["data"].append({"title": f"paragraph {paragraph_id}", "paragraphs": [
                {"context": paragraphs[paragraph_id], "qas": []}]})
            previous_paragraph = paragraph_id
        conversion.squad["data"][-1]["paragraphs"][0]["qas"].append(question)
        conversion.questions += 1
    return conversion


def hw7_answer_start(context: str, text: str, start: int, end: Optional[int]) -> int:
    """Where an HW7 answer starts in its context: ``answer_start`` where the text is there, else
    ``answer_end`` (inclusive) minus the text's length where it is there (a wrong start, or an end before
    the start), else the occurrence nearest to either; -1 when the text is not there."""
    for candidate in (start, None if end is None else end - len(text) + 1):
        if candidate is not None and candidate >= 0 and text and context.startswith(text, candidate):
            return candidate
    for near in (start, end):
        found = None if near is None or not text.strip() else nearest_occurrence(context, text, near)
        if found is not None:
            return found
    return -1
