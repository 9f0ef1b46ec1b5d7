"""scripts/learnable_qa.py: the learnable SQuAD v2 set (English and Chinese), deterministic, with exact
answer spans, a third unanswerable and no name shared between train and dev."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from fairseq_ext.commands import learnable_qa
from fairseq_ext.squad import load_squad
from fairseq_ext.squad.learnable import CHINESE, ENGLISH, KINDS, kind_scores, make_dataset, question_kinds
from tests.conftest import REPO


def names_in(squad_file, lang: str) -> set[str]:
    """The persons of every context, read back from the sentences (each starts or ends with a name)."""
    attributes = ENGLISH if lang == "en" else CHINESE
    patterns = [re.compile(re.escape(template).replace(r"\{name\}", "(?P<name>.+?)")
                           .replace(r"\{value\}", ".+?") + "$")
                for attribute in attributes for template in attribute.statements]
    separator = ". " if lang == "en" else "。"
    names = set()
    for example in load_squad(squad_file).examples:
        for sentence in filter(None, example.context.split(separator)):
            sentence = sentence if sentence.endswith(separator.strip()) else sentence + separator.strip()
            match = next(m for m in (p.match(sentence) for p in patterns) if m)
            names.add(match["name"])
    return names


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_writes_a_learnable_set(lang, tmp_path, capsys):
    out = tmp_path / "set"
    assert learnable_qa.main(["--out", str(out), "--lang", lang, "--train-questions", "300",
                              "--dev-questions", "90", "--seed", "3"]) == 0
    assert "train: " in capsys.readouterr().out
    for split, least in (("train", 300), ("dev", 90)):
        data = load_squad(out / f"{split}.json")
        assert data.version_2 and data.repaired == 0 and data.skipped == []
        assert least <= len(data.examples) < least + 12
        assert 0.25 <= sum(e.is_impossible for e in data.examples) / len(data.examples) <= 0.4
        for example in data.examples:
            for answer in example.answers:
                assert example.context[answer.start:answer.start + len(answer.text)] == answer.text
    # no name shared: dev questions cannot be answered from memorised training answers
    assert not names_in(out / "train.json", lang) & names_in(out / "dev.json", lang)
    contexts = (out / "corpus" / "contexts.txt").read_text(encoding="utf-8").split("\n\n")
    # the pretraining corpus: every training context, a document each
    assert contexts == [*dict.fromkeys(e.context for e in load_squad(out / "train.json").examples), ""]

    again = tmp_path / "again"
    learnable_qa.main(["--out", str(again), "--lang", lang, "--train-questions", "300",
                       "--dev-questions", "90", "--seed", "3"])
    for name in ("train.json", "dev.json", "corpus/contexts.txt"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    learnable_qa.main(["--out", str(again), "--lang", lang, "--train-questions", "300", "--seed", "4"])
    assert (again / "train.json").read_bytes() != (out / "train.json").read_bytes()


def test_questions_are_worded_unlike_the_statements(tmp_path):
    learnable_qa.main(["--out", str(tmp_path / "set"), "--train-questions", "200"])
    squad = json.loads((tmp_path / "set" / "train.json").read_text())
    for paragraph in squad["data"][0]["paragraphs"]:
        for qa in paragraph["qas"]:
            body = qa["question"].rstrip("?")
            assert body not in paragraph["context"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_wordings_keeps_the_first_sentence_forms_of_each_attribute(lang, tmp_path):
    """--wordings N: only the first N statement templates and question wordings of each attribute occur,
    and every one of them does in a set of some size; the kinds and ceilings still read the set back."""
    attributes = ENGLISH if lang == "en" else CHINESE
    out = tmp_path / "set"
    learnable_qa.main(["--out", str(out), "--lang", lang, "--people", "2-3", "--wordings", "1",
                       "--train-questions", "2000"])
    squad = json.loads((out / "train.json").read_text(encoding="utf-8"))
    end = "." if lang == "en" else "。"
    sentences = {s.strip() + end for p in squad["data"][0]["paragraphs"] for s in p["context"].split(end)
                 if s.strip()}
    questions = {qa["question"] for p in squad["data"][0]["paragraphs"] for qa in p["qas"]}

    def used(templates, texts):
        patterns = [re.compile(re.escape(t).replace(r"\{name\}", ".+?").replace(r"\{value\}", ".+?") + "$")
                    for t in templates]
        return [any(p.match(text) for text in texts) for p in patterns]

    for attribute in attributes:  # the first form of each attribute occurs; the others do not
        assert used(attribute.statements[:1], sentences) == [True]
        assert used(attribute.questions[:1], questions) == [True]
    # a sentence of a later form could still match a first form's pattern (names and values are free):
    # count them instead: all sentences are the first forms'
    firsts = [a.statements[0] for a in attributes]
    assert all(any(used([t], [s])[0] for t in firsts) for s in sentences)
    kinds = question_kinds(squad, lang)
    assert set(kinds.values()) == {KINDS[1], KINDS[2], KINDS[3]}
    assert make_dataset(lang, 300, 60, wordings=3) == make_dataset(lang, 300, 60)  # 3, the default: all


@pytest.mark.parametrize("option, value, message", [
    ("--facts", "5", "argument --facts: must be between 1 and 4: 5"),
    ("--wordings", "4", "argument --wordings: must be between 1 and 3: 4"),
    ("--people", "3-2", "argument --people: '3-2': LOW must not exceed HIGH"),
    ("--people", "0-2", "argument --people: must be between 1 and 8: 0"),
    ("--train-questions", "10000000", "argument --train-questions: must be between 1 and 1e+06: 10000000"),
    # more questions than distinct names allow: refused once the names run out, not drawn forever
    ("--train-questions", "900000", "ask for fewer questions (--train-questions, --dev-questions) or fewer "
     "persons per context (--people)"),
])
def test_bad_sizes_are_one_line_errors(tmp_path, option, value, message):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "learnable_qa.py"), "--out",
                           str(tmp_path / "x"), option, value], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines()[-1].endswith(message), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_question_has_its_kind(lang):
    """question_kinds reads back which questions the name decides; kind_scores scores answers by kind."""
    # two persons with attribute types drawn each: every kind occurs
    _, dev = make_dataset(lang, 30, 600, seed=5, people=(2, 2), shared=False)
    qas = {qa["id"]: qa for paragraph in dev["data"][0]["paragraphs"] for qa in paragraph["qas"]}
    kinds = question_kinds(dev, lang)
    assert kinds.keys() == qas.keys() and set(kinds.values()) == set(KINDS)  # every kind occurs
    for qid, kind in kinds.items():
        assert kind.startswith("unanswerable") == qas[qid]["is_impossible"]
    gold = {qid: qa["answers"][0]["text"] if qa["answers"] else "" for qid, qa in qas.items()}
    assert all(s["exact"] == 100.0 for s in kind_scores(dev, gold, lang).values())
    silent = kind_scores(dev, {}, lang)  # "no answer" to everything
    assert list(silent) == list(KINDS)
    assert [s["exact"] for s in silent.values()] == [0.0, 0.0, 100.0, 100.0, 100.0]
    assert sum(s["questions"] for s in silent.values()) == len(qas)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_absent_share_sets_which_unanswerable_questions_are_asked(share):
    """--absent-share: the share of unanswerable questions about a person absent from the context."""
    _, dev = make_dataset("en", 30, 300, seed=7, people=(1, 1), facts=(3, 3), absent_share=share)
    kinds = question_kinds(dev)
    unanswerable = [kind for kind in kinds.values() if kind.startswith("unanswerable")]
    absent = sum(kind == KINDS[3] for kind in unanswerable)
    assert unanswerable and absent == (len(unanswerable) if share else 0)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_name_decides_every_answerable_question_of_a_set_of_several_persons(lang):
    """--people 2-3: 2-3 persons per context sharing its attribute types, so every answerable question
    has several holders of its attribute and only the name tells which sentence answers; unanswerable ones
    ask about an attribute stated for nobody or about an absent person. Although one Chinese pet statement
    ("一只{value}和{name}住在一起。") also reads as a town statement ("{name}住在{value}。"), the more
    literal template wins."""
    _, dev = make_dataset(lang, 30, 600, seed=2, people=(2, 3))
    kinds = question_kinds(dev, lang)
    assert set(kinds.values()) == {KINDS[1], KINDS[2], KINDS[3]}
    names = [set(re.findall(r"[A-Z][a-z]+ [A-Z][a-z]+" if lang == "en" else r"^$", paragraph["context"]))
             for paragraph in dev["data"][0]["paragraphs"]]
    assert lang == "zh" or {len(persons) for persons in names} == {2, 3}
    contexts = [paragraph["context"] for paragraph in dev["data"][0]["paragraphs"]]
    assert lang == "en" or any("住在一起" in context for context in contexts)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_kinds_of_the_default_one_person_set(lang):
    """The default set (one person per context) has only the kinds a single person allows."""
    _, dev = make_dataset(lang, 30, 600, seed=2)
    assert set(question_kinds(dev, lang).values()) == {KINDS[0], KINDS[2], KINDS[3]}
