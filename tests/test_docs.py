"""The README and docs/*.md as a test: every command runs, every quoted figure equals what it prints.

The rules (what runs, quick variants, skips with reasons, sample outputs, figure checks) are in
``docs_check.py``. CI runs the quick variants; FXTRAIN_DOCS_FULL=1 runs every block as written,
the slow ones included. Whoever changes a figure edits the docs only: the expected values are
read from them.
"""
import os
import re
from pathlib import Path

import pytest

from docs_check import DocError, check, check_document, compare_output, parse, strip_setup

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FULL = os.environ.get("FXTRAIN_DOCS_FULL") == "1"


@pytest.fixture(scope="module")
def docs_run(tmp_path_factory):
    return check(ROOT, tmp_path_factory.mktemp("docs"), DOCS, FULL)


def test_every_command_runs_and_every_figure_matches(docs_run):
    print(f"\ndocs check: {docs_run['commands']} commands run, {docs_run['figures']} figures checked")
    assert not docs_run["errors"], "\n".join(docs_run["errors"])


def test_the_check_reaches_the_docs(docs_run):
    # a parser that silently found nothing would pass the test above: these floors keep it honest
    assert docs_run["commands"] >= 30, docs_run["commands"]
    assert docs_run["figures"] >= 100, docs_run["figures"]
    skips = [el for els in docs_run["elements"].values() for el in els if "skip" in el.opts or "slow" in el.opts]
    assert all(el.opts.get("reason") for el in skips)


def _recheck(docs_run, old, new):
    """The README's errors when ``old`` (a figure, once) reads ``new``, against the outputs already recorded."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    session = docs_run["sessions"]["README.md"]
    before = set(check_document(parse(text, "README.md"), session)[0])
    after = check_document(parse(text.replace(old, new), "README.md"), session)[0]
    return [e for e in after if e not in before]


@pytest.mark.parametrize("old, new", [
    ("update                          1,581,983", "update                          1,581,984"),  # a sample output
    ("| 1 | 296 | 12,128 |", "| 1 | 296 | 12,182 |"),                                               # a table
    ("fits a hidden layer of 86 units", "fits a hidden layer of 87 units"),                             # prose
    ("| default | 24,992 (520.7 µs)", "| default | 24,992 (521 µs)"),                                # a rounding
])
def test_an_edited_figure_fails_the_check(docs_run, old, new):
    if "1,581,983" in old and "README.md" not in docs_run["sessions"]:
        pytest.skip("the README did not run")
    errors = _recheck(docs_run, old, new)
    wrong = re.findall(r"[\d,.]+", new)[-1]
    # exactly the edited figure is reported, naming the value the README now claims
    assert len(errors) == 1 and wrong in errors[0], errors


# ---------------------------------------------------------------- the checker's own rules, without commands

def test_a_skip_without_a_reason_is_refused():
    with pytest.raises(DocError, match="must say why"):
        parse("<!-- doctest: skip -->\n```sh\nls\n```\n", "x.md")
    els = parse('<!-- doctest: skip reason="needs a GPU" -->\n```sh\nls\n```\n', "x.md")
    assert els[0].opts == {"skip": True, "reason": "needs a GPU"}


@pytest.mark.parametrize("line, kept", [
    ("pip install -e . && fxtrain simulate --target cortex-m4", "fxtrain simulate --target cortex-m4"),
    ('pip install -e ".[test]" && python -m pytest', ""),
    ("sudo apt-get install gcc g++ qemu-system-arm", ""),
    ("python3 -m venv .venv && . .venv/bin/activate", ""),
    ("fxtrain train --out runs/sr8 && fxtrain export runs/sr8 --out runs/fw", None),
])
def test_installation_commands_are_recognised_and_not_rerun(line, kept):
    assert strip_setup(line) == (line if kept is None else kept)


def test_sample_output_is_compared_token_by_token_with_timings_masked():
    shown = ["where   steps  result   seconds", "host    445    bit-exact   0.04", "...", "total 13,748"]
    actual = "where steps result seconds\nhost 445 bit-exact 0.31\nbuffer 1\nbuffer 2\ntotal 13,748\n"
    errors, n = compare_output(shown, actual, [r"\d+\.\d\d$"], "x.md:1")
    # whitespace and the masked timing differ; "..." skips two lines; the two figures are equal
    assert errors == [] and n == 2
    errors, _ = compare_output([*shown[:3], "total 13,749"], actual, [r"\d+\.\d\d$"], "x.md:1")
    assert len(errors) == 1 and "'13,749' where it prints '13,748'" in errors[0]


def test_help_texts_say_what_the_code_does():
    from cli_helpers import invoke
    top, compare = " ".join(invoke("--help").output.split()), invoke("compare", "--help").output
    experiment = " ".join(invoke("experiment", "--help").output.split())
    # the API list names measure, sweep and experiment; compare has no --resume to speak of; sr's optimizer
    # grid has Robbins-Monro
    assert "verify(), measure(), sweep() and experiment()" in top
    assert "--resume" not in compare and "--resume" in invoke("train", "--help").output
    assert "sr: SGD, Robbins-Monro SGD, momentum" in experiment
    import fxtrain
    from fxtrain.limits import MAX_CELLS, SPEC_BYTES
    assert {"measure", "sweep", "experiment"} <= set(fxtrain.__all__)
    sweep = " ".join(invoke("sweep", "--help").output.split())
    # the limits --help states are the ones the code applies
    assert f"at most {SPEC_BYTES // 2**20} MiB" in sweep and f"at most {MAX_CELLS:,} cells" in sweep
