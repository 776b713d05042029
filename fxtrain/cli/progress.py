"""Progress on stderr: bars and a ticking clock on a terminal, and nothing but whole lines elsewhere.

click's progress bar, when stderr is not a terminal, prints its bare label once ("cells",
"sr 8-bit"), which means nothing in a log; so every bar here exists only on a terminal.
Estimates are whole lines and are printed either way, before the long work starts.
"""
import sys
import threading
import time

import click


def on_terminal():
    return sys.stderr.isatty()


def note(text):
    """One line on stderr."""
    click.echo(text, err=True)


def about(seconds):
    """A duration as a person says it: "about 40 s", "about 3 min"."""
    if seconds < 90:
        return f"about {max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


class Bar:
    """A click progress bar on stderr, opened on the first update and only on a terminal."""

    def __init__(self, label, length=None):
        self.label, self.length, self.bar = label, length, None

    def update(self, n=1, status=None, length=None):
        length = length or self.length
        if not on_terminal() or (self.bar is None and not length):
            return
        if self.bar is None:
            self.bar = click.progressbar(length=length, file=sys.stderr, show_pos=True,
                                         label=self.label, item_show_func=lambda s: s)
            self.bar.__enter__()
        self.bar.update(n, status)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class EpochBar(Bar):
    """Epochs of a training run (a resumed run starts late, so the length comes with the first epoch)."""

    def __init__(self, epochs, label):
        super().__init__(label)
        self.epochs = epochs

    def __call__(self, record):
        self.update(1, f"test acc {record['test_accuracy']:.3f}", length=self.epochs - record["epoch"] + 1)


class SweepBar(Bar):
    """Cells done of all, with how many run now and how many failed; the estimate as a line first."""

    def __init__(self):
        super().__init__("cells")
        self.shown, self.said = 0, False
        self.set_aside = []  # (new name, reason) of each damaged record, said once the bar is closed

    def __call__(self, p):
        self.set_aside = p.set_aside
        if p.estimate is not None and not self.said:
            self.said = True
            earlier = f" ({p.skipped} finished earlier)" if p.skipped else ""
            note(f"sweep: {p.total - p.skipped} cells to run{earlier}, {about(p.estimate)} "
                 "(each kind of cell timed once on this machine)")
        if self.bar is None and not (p.running or p.done):
            return  # nothing runs yet: a refused scheduler should print its error alone
        status = f"done {p.skipped + p.done}, running {p.running}, failed {p.failed}"
        if self.bar is None:
            self.update(p.skipped, status, length=p.total)
            self.shown = p.skipped
        self.update(p.skipped + p.done - self.shown, status)
        self.shown = p.skipped + p.done


class Ticker:
    """Elapsed seconds against an estimate, redrawn twice a second on a terminal, for work that reports
    no steps of its own (an emulator run); silent elsewhere."""

    def __init__(self, label, estimate):
        self.label, self.estimate, self.stop = label, estimate, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t0 = time.monotonic()
        while not self.stop.wait(0.5):
            sys.stderr.write(f"\r{self.label}: {time.monotonic() - t0:.0f} s of {about(self.estimate)}   ")
            sys.stderr.flush()
        sys.stderr.write("\r" + " " * (len(self.label) + 40) + "\r")
        sys.stderr.flush()

    def __enter__(self):
        if on_terminal():
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
