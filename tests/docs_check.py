"""The README and docs/*.md as a test: run their commands, compare the figures they quote.

What a document holds, and what happens to it:

- a fenced ``sh`` block: each command line runs with bash in a scratch folder, in document
  order (later lines use what earlier ones wrote). Installation commands (pip install,
  apt-get, making a venv) and the test command itself are recognised and not rerun. A
  ``python`` block runs as a script there.
- a fenced block whose lines start with ``$ ``: the commands run, and the lines after each
  are its sample output, compared token by token with what it prints (``...`` on a line of
  its own stands for any number of lines).
- an HTML comment right before a block, table or paragraph steers the check:

  ``<!-- doctest: quick="--epochs 50 => --epochs 2; ..." -->``  replacements made before the
      block runs in CI (the full text runs when FXTRAIN_DOCS_FULL=1);
  ``<!-- doctest: fails="simulate --target atmega328p" -->``  lines holding that text must exit
      1 with one Error line;
  ``<!-- doctest: skip reason="..." -->``  not run; ``slow reason="..."``: run only when
      FXTRAIN_DOCS_FULL=1. A reason is required, or the document fails the test;
  ``<!-- doctest: skip-line="tcp://host" reason="..." -->``  those lines of a block not run;
  ``<!-- doctest: file=mydata.csv -->``  the block is written to that file first;
  ``<!-- doctest: output -->``  the block is the sample output of the block before it;
  ``<!-- doctest: figures from="CMD" from="CMD" ignore="20 1" -->``  every number of the table or
      paragraph that follows must be among the numbers the commands print (a command already
      run in the session is not run again);
  ``mask="REGEX"`` on any output check: matches (timings) are not compared.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DIRECTIVE = re.compile(r"^<!--\s*doctest:(.*?)-->\s*$")
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
# a figure: 4,095,999 or 0.9554 or 21 or -4; thousands separators only in groups of three
NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])")
SETUP = re.compile(r"^\s*(sudo\s+)?(pip3?\s+install|python3?\s+-m\s+pip\s+install|apt(-get)?\s|python3?\s+-m\s+venv"
                   r"|\.\s+\S*activate|source\s+\S*activate|python3?\s+-m\s+pytest)")
FLAGS = ("skip", "slow", "output", "figures")
LISTS = ("mask", "from")  # keys that may repeat


class DocError(Exception):
    """A document that the checker cannot read as intended (e.g. a skip without a reason)."""


@dataclass
class Element:
    """A fenced block, a table or a paragraph, with the directive right before it."""
    doc: str
    line: int
    kind: str           # "fence", "table" or "paragraph"
    lang: str
    text: str
    opts: dict = field(default_factory=dict)

    @property
    def where(self):
        return f"{self.doc}:{self.line}"


def parse_directive(body, where):
    opts = {}
    for token in shlex.split(body):
        key, eq, value = token.partition("=")
        if not eq and key not in FLAGS:
            raise DocError(f"{where}: unknown doctest flag '{key}'")
        if key in LISTS:
            opts.setdefault(key, []).append(value)
        else:
            opts[key] = value if eq else True
    if ("skip" in opts or "slow" in opts or "skip-line" in opts) and not opts.get("reason"):
        raise DocError(f"{where}: a skip must say why (reason=\"...\")")
    if "figures" in opts and not opts.get("from"):
        raise DocError(f"{where}: a figures check names the commands that print them (from=\"...\")")
    return opts


def parse(text, doc):
    """The document's elements, each with the directive that precedes it (if any)."""
    lines, out, i, pending = text.splitlines(), [], 0, None
    while i < len(lines):
        line = lines[i]
        m = DIRECTIVE.match(line.strip())
        if m:
            pending = parse_directive(m.group(1), f"{doc}:{i + 1}")
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("```")), len(lines))
            out.append(Element(doc, i + 1, "fence", f.group(1), "\n".join(lines[i + 1:j]), pending or {}))
            i, pending = j + 1, None
            continue
        if line.strip():
            j = i
            while j < len(lines) and lines[j].strip() and not FENCE.match(lines[j]) and not DIRECTIVE.match(lines[j]):
                j += 1
            kind = "table" if line.lstrip().startswith("|") else "paragraph"
            out.append(Element(doc, i + 1, kind, "", "\n".join(lines[i:j]), pending or {}))
            i, pending = j, None
            continue
        i += 1
    return out


def numbers(text):
    return NUMBER.findall(text.replace("\u2212", "-"))


def command_lines(text):
    """Logical lines of a shell block: continuations joined, blank lines and comment lines dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def strip_setup(line):
    """``line`` without its installation parts (``pip install ... && fxtrain ...`` keeps the fxtrain part)."""
    parts = [p for p in re.split(r"\s*&&\s*", line) if not SETUP.match(p)]
    return " && ".join(parts)


def quick(text, opts, full):
    """The block as CI runs it: the directive's replacements made, unless running in full."""
    if full or not opts.get("quick"):
        return text
    for pair in opts["quick"].split(";"):
        old, _, new = pair.partition("=>")
        if old.strip() not in text:
            raise DocError(f"quick replacement '{old.strip()}' is not in the block")
        text = text.replace(old.strip(), new.strip())
    return text


@dataclass
class Ran:
    command: str
    rc: int
    stdout: str
    stderr: str
    seconds: float = 0.0


class Session:
    """A scratch folder where one document's commands run in order, with this checkout's fxtrain."""

    def __init__(self, root, work, full=False, timeout=900):
        self.root, self.work, self.full, self.timeout = Path(root), Path(work), full, timeout
        self.ran, self.by_command, self.by_element, self.failures = [], {}, {}, []
        bin_dir = self.work / ".bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        # the guard matters: Dask's worker processes re-run the main script of the process that starts them
        (bin_dir / "fxtrain").write_text(f"#!{sys.executable}\nimport sys\nfrom fxtrain.cli import main\n"
                                         "if __name__ == '__main__':\n    sys.exit(main())\n")
        (bin_dir / "fxtrain").chmod(0o755)
        for name in ("python", "python3"):
            (bin_dir / name).unlink(missing_ok=True)
            (bin_dir / name).symlink_to(sys.executable)
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PYTHONPATH": f"{self.root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "MPLBACKEND": "Agg"}
        self.env.pop("FXTRAIN_TEST_KILL", None)
        for folder in ("examples", "benchmarks"):  # a reader runs the README from the checkout's root
            shutil.copytree(self.root / folder, self.work / folder, dirs_exist_ok=True)

    def run(self, command, expect_rc=0, where="", reuse=False):
        """Run one command line here; ``reuse``: a figure check takes an earlier run of the same line."""
        if reuse and command in self.by_command:
            return self.by_command[command]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=self.work, env=self.env,
                               capture_output=True, text=True, timeout=self.timeout, stdin=subprocess.DEVNULL)
            ran = Ran(command, p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)
        except subprocess.TimeoutExpired:
            ran = Ran(command, -1, "", f"did not finish within {self.timeout} s")
        self.ran.append(ran)
        self.by_command[command] = ran
        errors = [ln for ln in ran.stderr.splitlines() if ln.startswith("Error:")]
        if ran.rc != expect_rc or (expect_rc == 1 and (len(errors) != 1 or "Traceback" in ran.stderr)):
            tail = (ran.stderr.strip().splitlines() or ["(no output)"])[-1]
            self.failures.append(f"{where}: `{command}` exited {ran.rc}, expected {expect_rc}: {tail}")
        return ran


def _skipped(opts, full):
    return "skip" in opts or ("slow" in opts and not full)


def run_document(session, elements):
    """Run every command of a document's elements in order (files first); failures go to session.failures."""
    for el in elements:
        if el.kind == "fence" and el.opts.get("file"):
            (session.work / el.opts["file"]).write_text(el.text + "\n")
    for el in elements:
        if _skipped(el.opts, session.full):
            continue
        if el.kind == "fence" and el.lang in ("sh", "bash", "python") and not el.opts.get("file"):
            session.by_element[el.line] = _run_block(session, el)
        elif el.kind == "fence" and el.text.lstrip().startswith("$ "):
            for cmd, _ in sample_outputs(el.text):
                session.run(cmd, where=el.where, reuse=True)
        elif el.opts.get("figures"):
            for cmd in figure_commands(el):
                session.run(cmd, where=el.where, reuse=True)


def _run_block(session, el):
    text = quick(el.text, el.opts, session.full)
    if el.lang == "python":
        script = session.work / f"snippet_{el.line}.py"
        script.write_text(text + "\n")
        return [session.run(f"python {script.name}", where=el.where)]
    out = []
    for line in command_lines(text):
        if el.opts.get("skip-line") and el.opts["skip-line"] in line:
            continue
        cmd = strip_setup(line)
        if cmd:
            out.append(session.run(cmd, 1 if el.opts.get("fails") and el.opts["fails"] in cmd else 0, el.where))
    return out


def sample_outputs(text):
    """[(command, its sample output lines)] of a ``$`` block."""
    pairs = []
    for line in text.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:].strip(), []))
        elif pairs:
            pairs[-1][1].append(line)
    return pairs


def figure_commands(el):
    """The commands whose output a ``figures from="CMD" from="CMD"`` check reads."""
    return el.opts.get("from", [])


def _masked(line, masks):
    for m in masks:
        line = re.sub(m, "<masked>", line)
    return line


def compare_output(shown, actual, masks, where):
    """Mismatches between sample output lines and real output, token by token (``...`` skips lines).

    Returns (mismatch messages, number of figures compared).
    """
    got = [_masked(ln, masks).split() for ln in actual.splitlines() if ln.strip()]
    want = [(i, _masked(ln, masks).split()) for i, ln in enumerate(shown) if ln.strip()]
    errors, figures, g = [], 0, 0
    for k, (i, tokens) in enumerate(want):
        if tokens == ["..."]:
            nxt = next((t for _, t in want[k + 1:] if t != ["..."]), None)
            while g < len(got) and nxt is not None and got[g] != nxt and not _close(got[g], nxt):
                g += 1
            continue
        line = got[g] if g < len(got) else []
        figures += sum(1 for t in tokens if NUMBER.fullmatch(t.strip("(),;:%")))
        if tokens != line:
            bad = next((f"'{a}' where it prints '{b}'" for a, b in zip(tokens, line) if a != b),
                       f"{len(tokens)} tokens where it prints {len(line)}")
            errors.append(f"{where}+{i + 1}: {bad}: {' '.join(line) or '(no line)'}")
        g += 1
    return errors, figures


def _close(a, b):
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) <= 1


def check_document(elements, session):
    """Compare every sample output and figure with what the commands printed: (errors, figures checked)."""
    errors, figures, previous = list(session.failures), 0, None
    for el in elements:
        skipped = _skipped(el.opts, session.full)
        if el.kind == "fence" and el.line in session.by_element:
            previous = session.by_element[el.line]
        if skipped:
            continue
        masks = el.opts.get("mask", [])
        if el.kind == "fence" and el.text.lstrip().startswith("$ "):
            for cmd, shown in sample_outputs(el.text):
                if shown:
                    e, n = compare_output(shown, session.by_command[cmd].stdout, masks, el.where)
                    errors, figures = errors + e, figures + n
        elif el.kind == "fence" and el.opts.get("output"):
            e, n = compare_output(el.text.splitlines(), previous[-1].stdout if previous else "", masks, el.where)
            errors, figures = errors + e, figures + n
        elif el.opts.get("figures"):
            e, n = _check_figures(el, session)
            errors, figures = errors + e, figures + n
    return errors, figures


def _check_figures(el, session):
    printed = set()
    for cmd in figure_commands(el):
        printed.update(numbers(_masked(session.by_command[cmd].stdout, el.opts.get("mask", []))))
    ignore = set(el.opts.get("ignore", "").split())
    quoted = [n for n in numbers(el.text) if n not in ignore]
    missing = [n for n in quoted if n not in printed]
    return [f"{el.where}: {n} is not in what `{'; '.join(figure_commands(el))}` prints" for n in missing], len(quoted)


def check(root, work, docs, full=False):
    """Run and check the given documents (paths relative to ``root``), each in its own folder.

    Returns {"commands": n, "figures": n, "errors": [...], "sessions": {doc: Session}, "elements": {doc: [...]}}.
    """
    report = {"commands": 0, "figures": 0, "errors": [], "sessions": {}, "elements": {}}
    for doc in docs:
        elements = parse((Path(root) / doc).read_text(encoding="utf-8"), doc)
        session = Session(root, Path(work) / doc.replace("/", "_"), full)
        run_document(session, elements)
        errors, figures = check_document(elements, session)
        report["commands"] += len(session.ran)
        report["figures"] += figures
        report["errors"] += errors
        report["sessions"][doc], report["elements"][doc] = session, elements
    return report
