"""A learnable SQuAD v2 set: short made-up contexts stating attributes of invented people, questions about
one attribute (answer: its span) and about a third unanswerable (an attribute the context does not state,
or a person it does not mention). Names never repeat between train and dev, so a model must find the right
sentence instead of memorising answers; questions are phrased differently from the statements.

Deterministic given the seed. English (GPT-2 BPE path) and Chinese (SentencePiece path) variants.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Iterator

from fairseq_ext.squad.metric import compute_exact

LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class Attribute:
    statements: tuple[str, ...]  # "{name}" and "{value}" placeholders
    questions: tuple[str, ...]  # "{name}" placeholder; worded unlike the statements
    values: tuple[str, ...]


ENGLISH = (
    Attribute(
        ("{name} lives in {value}.", "{name} has a house in {value}.", "The home of {name} is in {value}."),
        ("Where does {name} live?", "In which town does {name} reside?", "What city is {name}'s home?"),
        (
            "Orvan",
            "Telmark",
            "Brisso",
            "Quellan",
            "Dunmere",
            "Astrov",
            "Pelling",
            "Varnholt",
            "Ilsby",
            "Corvath",
            "Miraval",
            "Stennick",
        ),
    ),
    Attribute(
        ("{name} works as a {value}.", "{name} is a {value} by trade.", "By profession {name} is a {value}."),
        ("What is {name}'s job?", "What does {name} do for a living?", "What is the occupation of {name}?"),
        (
            "baker",
            "pilot",
            "carpenter",
            "nurse",
            "teacher",
            "plumber",
            "painter",
            "fisher",
            "lawyer",
            "tailor",
            "chemist",
            "gardener",
        ),
    ),
    Attribute(
        ("{name} owns a {value}.", "{name} keeps a {value} as a pet.", "A {value} lives with {name}."),
        (
            "What pet does {name} have?",
            "Which animal does {name} look after?",
            "What kind of animal is {name}'s pet?",
        ),
        ("parrot", "tortoise", "hamster", "goat", "ferret", "rabbit", "canary", "lizard", "pony", "goldfish"),
    ),
    Attribute(
        (
            "{name} was born in {value}.",
            "{name} came into the world in {value}.",
            "The birth year of {name} is {value}.",
        ),
        ("In what year was {name} born?", "When was {name} born?", "What year is {name}'s birth year?"),
        tuple(str(year) for year in range(1931, 2011, 7)),
    ),
    Attribute(
        (
            "{name} plays the {value}.",
            "{name} is good at the {value}.",
            "{name} practises the {value} daily.",
        ),
        (
            "Which instrument does {name} play?",
            "What musical instrument can {name} play?",
            "On what instrument does {name} perform?",
        ),
        ("violin", "cello", "flute", "harp", "trumpet", "piano", "drums", "oboe", "banjo", "clarinet"),
    ),
    Attribute(
        (
            "{name}'s favourite colour is {value}.",
            "{name} likes the colour {value} best.",
            "Of all colours, {name} prefers {value}.",
        ),
        (
            "What colour does {name} like most?",
            "Which colour is {name}'s favourite?",
            "What is the preferred colour of {name}?",
        ),
        ("red", "green", "blue", "yellow", "purple", "orange", "grey", "pink", "brown", "black"),
    ),
)

CHINESE = (
    Attribute(
        ("{name}住在{value}。", "{name}的家在{value}。", "{name}一直生活在{value}。"),
        ("{name}住在哪里？", "{name}的家在哪个城市？", "{name}生活在什么地方？"),
        ("南川", "青州", "白河", "云港", "石城", "北岭", "东湾", "西平", "金陵", "长沙"),
    ),
    Attribute(
        ("{name}是一名{value}。", "{name}的职业是{value}。", "{name}以做{value}为生。"),
        ("{name}做什么工作？", "{name}的工作是什么？", "{name}从事哪种职业？"),
        ("医生", "教师", "厨师", "司机", "画家", "律师", "农民", "记者", "护士", "木匠"),
    ),
    Attribute(
        ("{name}养了一只{value}。", "{name}家里有一只{value}。", "一只{value}和{name}住在一起。"),
        ("{name}养的是什么动物？", "{name}有什么宠物？", "{name}家的宠物是什么？"),
        ("小猫", "小狗", "鹦鹉", "兔子", "乌龟", "金鱼", "仓鼠", "山羊"),
    ),
    Attribute(
        ("{name}出生于{value}。", "{name}是{value}出生的。", "{name}生在{value}。"),
        ("{name}哪一年出生？", "{name}的出生年份是哪年？", "{name}是什么时候出生的？"),
        tuple(f"{year}年" for year in range(1931, 2011, 7)),
    ),
    Attribute(
        ("{name}最喜欢的颜色是{value}。", "{name}特别喜欢{value}。", "在所有颜色中{name}偏爱{value}。"),
        ("{name}喜欢什么颜色？", "{name}最爱哪种颜色？", "哪种颜色是{name}的最爱？"),
        ("红色", "绿色", "蓝色", "黄色", "紫色", "白色", "黑色", "灰色"),
    ),
)

# English names: a given name and a surname, each one GPT-2 token (so comparing two names is comparing
# tokens); a full name never repeats, so none of dev is in train
EN_GIVEN = tuple("""
Adam Alan Albert Alice Amy Andrew Anna Anne Arthur Ben Betty Bill Bob Brian Bruce Carl Carol Charles
Chris Claire Colin Craig Dan Daniel David Dennis Diana Donald Dorothy Douglas Earl Ed Edward
Elizabeth Ellen Emily Emma Eric Frank Fred Gary George Gordon Grace Greg Harold Harry Helen Henry
Howard Hugh Ian Jack Jacob James Jane Janet Jason Jean Jeff Jennifer Jerry Jessica Jim Joan Joe John
Jonathan Joseph Joyce Judy Julia Justin Karen Kate Keith Kelly Ken Kevin Kyle Larry Laura Lee Leo
Lisa Louis Lucy Luke Margaret Maria Mark Martin Mary Matt Max Michael Mike Nancy Neil Nick Oliver
Oscar Patrick Paul Peter Philip Rachel Ralph Ray Richard Rick Robert Roger Ron Rose Roy Ruth Ryan
Sam Sarah Scott Sean Simon Sophie Steve Susan Tim Tom Tony Victor Walter Wayne William""".split())
EN_SURNAMES = tuple("""
Adams Allen Baker Bell Brown Campbell Carter Clark Collins Cook Cooper Davis Edwards Evans Fisher
Ford Foster Gray Green Hall Harris Hill Hughes Jackson Johnson Jones King Lewis Long Miller Mitchell
Moore Morgan Morris Murphy Nelson Parker Perry Phillips Price Reed Richardson Roberts Robinson
Rogers Ross Russell Smith Stewart Taylor Thomas Thompson Turner Walker Ward Watson White Williams
Wilson Wood Wright Young Bailey Barnes Bennett Brooks Butler Cole Cox Crane Dean Ellis Fox Gibson
Grant Hunt Kennedy Knight Lane Mason Mills Palmer Pierce Porter Reid Rice Shaw Stone Webb Wells West
Wolf""".split())
# the defaults (the demo's set): one person per context, so an answerable question needs its attribute's
# sentence found and a third of the unanswerable ones the name checked. --people 2-3 (persons sharing the
# context's attribute types: the name decides every answerable question) is what the tiny recipe does not
# learn yet (docs/learnable-qa.md)
PEOPLE, FACTS, ABSENT_SHARE, SHARED = (1, 1), (2, 2), 0.3, True
WORDINGS = 3  # statement templates and question wordings per attribute (each attribute has 3)
ZH_SURNAMES = "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林罗高"
ZH_GIVEN = "明华伟芳军丽强敏静磊洋勇艳杰娟涛超霞平刚桂英秀兰玉晨浩宇欣怡"


class NamesExhausted(ValueError):
    """The set asks for more distinct names than the name lists make."""


def name_pool_size(language: str) -> int:
    """How many distinct names ``invented_names`` can make."""
    if language == "en":
        return len(set(EN_GIVEN)) * len(set(EN_SURNAMES))
    return len(set(ZH_SURNAMES)) * len(set(ZH_GIVEN)) ** 2


def invented_names(language: str, rng: random.Random) -> Iterator[str]:
    """Distinct names (English: given name + surname; Chinese: surname + 2 chars) until the pool of
    ``name_pool_size`` names is used up: then NamesExhausted (drawing on would never end)."""
    seen, pool = set(), name_pool_size(language)
    while True:
        if len(seen) == pool:
            kind = "English" if language == "en" else "Chinese"
            raise NamesExhausted(f"all {pool:,} {kind} names are used")
        if language == "en":
            name = f"{rng.choice(EN_GIVEN)} {rng.choice(EN_SURNAMES)}"
        else:
            name = rng.choice(ZH_SURNAMES) + "".join(rng.choice(ZH_GIVEN) for _ in range(2))
        if name not in seen:
            seen.add(name)
            yield name


def make_paragraph(
    language: str,
    names: Iterator[str],
    absent: str,
    rng: random.Random,
    qid_prefix: str,
    people: tuple[int, int] = PEOPLE,
    facts: tuple[int, int] = FACTS,
    absent_share: float = ABSENT_SHARE,
    shared: bool = SHARED,
    wordings: int = WORDINGS,
) -> dict:
    """One SQuAD paragraph: ``people`` (a range: fewest, most) persons with ``facts`` attributes each (of
    the same types for all of them when ``shared``, else drawn per person), and one question per person
    and stated fact (answerable), plus about half as many unanswerable ones (an unstated attribute of a
    person present, or, with probability ``absent_share``, the ``absent`` person). The first ``wordings``
    statement templates and question wordings of each attribute are used."""
    attributes = [replace(attribute, statements=attribute.statements[:wordings],
                          questions=attribute.questions[:wordings])
                  for attribute in (ENGLISH if language == "en" else CHINESE)]
    separator = " " if language == "en" else ""
    persons = [next(names) for _ in range(rng.randint(*people))]
    # when two persons have the same attribute, only the name tells which sentence answers
    types = rng.sample(range(len(attributes)), rng.randint(*facts))
    stated = {person: list(types) if shared else rng.sample(range(len(attributes)), len(types))
              for person in persons}
    sentences = []  # (person, attribute, value, value offset, sentence)
    for person in persons:
        for index in stated[person]:
            attribute = attributes[index]
            value = rng.choice(attribute.values)
            template = rng.choice(attribute.statements)
            # where the value starts in its sentence: the formatted text before its placeholder
            value_at = len(template[: template.index("{value}")].format(name=person))
            sentences.append((person, index, value, value_at, template.format(name=person, value=value)))
    rng.shuffle(sentences)
    context, starts = "", []
    for *_, sentence in sentences:
        context += separator if context else ""
        starts.append(len(context))
        context += sentence
    qas = []
    for (person, index, value, value_at, _), start in zip(sentences, starts):
        question = rng.choice(attributes[index].questions).format(name=person)
        qas.append(
            {
                "question": question,
                "answers": [{"text": value, "answer_start": start + value_at}],
                "is_impossible": False,
            }
        )
    in_context = sorted({index for indices in stated.values() for index in indices})
    for _ in range(max(1, len(qas) // 2)):
        # the absent person, about an attribute the context states for someone else
        if rng.random() < absent_share:
            person, index = absent, rng.choice(in_context)
        else:  # a present person, about an attribute not stated for them
            person = rng.choice(persons)
            index = rng.choice([index for index in range(len(attributes)) if index not in stated[person]])
        qas.append(
            {
                "question": rng.choice(attributes[index].questions).format(name=person),
                "answers": [],
                "is_impossible": True,
            }
        )
    rng.shuffle(qas)
    for number, qa in enumerate(qas):
        qa["id"] = f"{qid_prefix}-{number}"
    return {"context": context, "qas": [{"id": qa.pop("id"), **qa} for qa in qas]}


def make_split(
    language: str,
    questions: int,
    names: Iterator[str],
    rng: random.Random,
    split: str,
    people: tuple[int, int] = PEOPLE,
    facts: tuple[int, int] = FACTS,
    absent_share: float = ABSENT_SHARE,
    shared: bool = SHARED,
    wordings: int = WORDINGS,
) -> dict:
    """A SQuAD v2.0 file of at least ``questions`` questions; every name in it comes from ``names``."""
    paragraphs, count = [], 0
    while count < questions:
        try:
            absent = next(names)  # mentioned by no context: questions about them have no answer
            paragraph = make_paragraph(language, names, absent, rng, f"{split}-{len(paragraphs)}", people,
                                       facts, absent_share, shared, wordings)
        except NamesExhausted as err:
            raise NamesExhausted(f"{err} after {count:,} of the {questions:,} {split} questions") from None
        paragraphs.append(paragraph)
        count += len(paragraph["qas"])
    return {"version": "v2.0", "data": [{"title": f"learnable-{language}-{split}", "paragraphs": paragraphs}]}


def make_dataset(
    language: str,
    train_questions: int,
    dev_questions: int,
    seed: int = 1,
    people: tuple[int, int] = PEOPLE,
    facts: tuple[int, int] = FACTS,
    absent_share: float = ABSENT_SHARE,
    shared: bool = SHARED,
    wordings: int = WORDINGS,
) -> tuple[dict, dict]:
    """(train, dev) SQuAD v2.0 files; the two share no name, since both draw from one stream of distinct
    names."""
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r}: one of {', '.join(LANGUAGES)}")
    rng = random.Random(seed)
    names = invented_names(language, rng)
    splits = [make_split(language, questions, names, rng, split, people, facts, absent_share, shared,
                         wordings)
              for split, questions in (("train", train_questions), ("dev", dev_questions))]
    train, dev = splits
    return train, dev


def contexts(squad: dict) -> list[str]:
    return [paragraph["context"] for article in squad["data"] for paragraph in article["paragraphs"]]


KINDS = (
    "answerable, attribute stated for one person",
    "answerable, attribute stated for several persons (the name decides)",
    "unanswerable, attribute stated for nobody",
    "unanswerable, absent person",
    "unanswerable, attribute stated only for another person",
)


def _pattern(template: str) -> re.Pattern:
    pattern = re.escape(template).replace(r"\{name\}", "(?P<name>.+?)")
    return re.compile(pattern.replace(r"\{value\}", "(?P<value>.+?)") + "$")


def _templates(attributes: tuple, field: str) -> list[tuple[int, re.Pattern]]:
    """(attribute index, pattern) of every template, the most literal text first: a template can match
    another's sentence ("一只山羊和朱桂霞住在一起。" is also "{name}住在{value}。"), never a longer one's."""
    templates = [(index, t) for index, a in enumerate(attributes) for t in getattr(a, field)]
    templates.sort(key=lambda item: -len(item[1].replace("{name}", "").replace("{value}", "")))
    return [(index, _pattern(t)) for index, t in templates]


def _first_match(patterns: list, text: str) -> tuple[int, re.Match]:
    return next((index, match) for index, match in ((i, p.match(text)) for i, p in patterns) if match)


def question_kinds(squad: dict, language: str = "en") -> dict[str, str]:
    """qid -> its kind (one of KINDS), read back from the context's sentences and the question's wording:
    which questions need the person's name (the second, fourth and fifth kinds) and which the attribute
    alone decides. For scoring a model by kind (kind_scores)."""
    attributes = ENGLISH if language == "en" else CHINESE
    statements, questions = _templates(attributes, "statements"), _templates(attributes, "questions")
    end = "." if language == "en" else "。"
    kinds = {}
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            stated = []  # (person, attribute)
            for sentence in paragraph["context"].split(end):
                sentence = sentence.strip()
                if sentence:
                    index, match = _first_match(statements, sentence + end)
                    stated.append((match["name"], index))
            persons = {person for person, _ in stated}
            for qa in paragraph["qas"]:
                index, match = _first_match(questions, qa["question"])
                holders = [person for person, attribute in stated if attribute == index]
                if qa.get("answers"):
                    kind = KINDS[0] if len(holders) == 1 else KINDS[1]
                elif not holders:
                    kind = KINDS[2]
                elif match["name"] not in persons:
                    kind = KINDS[3]
                else:
                    kind = KINDS[4]
                kinds[qa["id"]] = kind
    return kinds


def name_blind_ceiling(squad: dict, language: str = "en") -> float:
    """The best exact match (%) any answerer that ignores the question's name can reach: such an answerer
    gives one answer to all questions about the same attribute in the same context (whoever they name), so
    per group it gets at most the most frequent gold answer ("" for no answer) right."""
    questions = _templates(ENGLISH if language == "en" else CHINESE, "questions")
    right = total = 0
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            groups: dict[int, list[str]] = {}
            for qa in paragraph["qas"]:
                index, _ = _first_match(questions, qa["question"])
                answers = qa.get("answers") or ()
                groups.setdefault(index, []).append(answers[0]["text"] if answers else "")
            for golds in groups.values():
                right += max(golds.count(gold) for gold in golds)
                total += len(golds)
    return 100.0 * right / total


def kind_scores(squad: dict, predictions: dict[str, str], language: str = "en") -> dict[str, dict]:
    """Per kind of question: how many, and the percentage answered exactly (SQuAD v2's exact match: any
    gold text, "" for no answer) by ``predictions`` (qid -> text, as predictions.json)."""
    golds = {qa["id"]: [answer["text"] for answer in qa.get("answers") or ()] or [""]
             for article in squad["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    scores = {}
    for qid, kind in question_kinds(squad, language).items():
        entry = scores.setdefault(kind, {"questions": 0, "exact": 0})
        entry["questions"] += 1
        entry["exact"] += max(compute_exact(gold, predictions.get(qid, "")) for gold in golds[qid])
    return {kind: {"questions": s["questions"], "exact": 100.0 * s["exact"] / s["questions"]}
            for kind, s in sorted(scores.items(), key=lambda item: KINDS.index(item[0]))}
