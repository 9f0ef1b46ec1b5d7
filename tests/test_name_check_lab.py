"""scripts/name_check_lab.py: the fast stand-in for the tiny recipe (docs/learnable-qa.md) trains on the
repo's own features of a learnable set and scores dev answers by kind."""

from __future__ import annotations

import re
import subprocess
import sys

from fairseq_ext.squad.learnable import KINDS
from tests.conftest import REPO

LAB = [sys.executable, str(REPO / "scripts" / "name_check_lab.py")]


def test_the_lab_learns_the_one_person_set_and_reports_every_kind():
    """One person per context, no absent persons: the attribute's sentence decides every question, which
    600 updates learn (fairseq's route: 99% of the answerable ones in 1,000); each kind is reported."""
    done = subprocess.run(LAB + ["--people", "1", "--absent-share", "0", "--train-questions", "3000",
                                 "--dev-questions", "300", "--mlm-updates", "20", "--updates", "600",
                                 "--eval-every", "200"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^set: [\d,]+ training windows, 30\d dev; dictionary \d+; name-blind ceiling",
                     done.stdout, flags=re.M)
    assert "masked LM 20: train loss" in done.stdout
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("fine-tuning 600: loss")
    by_kind = re.findall(r"([a-z][^;(]*(?:\([^)]*\))?) (\d+)% of \d+", last)
    scores = {kind: float(share) for kind, share in by_kind}
    assert set(scores) == {KINDS[0], KINDS[2]}, last  # no absent person, no second holder of an attribute
    # learnt: answering nothing scores 33, answering every question 67 (99.7 on 2026-12-08, 10 s)
    assert float(re.search(r"dev exact ([\d.]+)", last)[1]) > 80, last
    assert scores[KINDS[0]] > 90 and scores[KINDS[2]] > 50, last


def test_heads_must_divide_the_width_and_too_many_questions_are_one_line_errors():
    for options, message in ((["--dim", "64", "--heads", "3"], "--heads 3 does not divide --dim 64"),
                             (["--train-questions", "90000", "--people", "3"], "ask for fewer questions")):
        done = subprocess.run(LAB + options, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr.splitlines()[-1], done.stderr
        assert "Traceback" not in done.stderr
