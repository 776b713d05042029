"""The CLI as tests call it: one invocation, and the check that an error is one clear line."""
from click.testing import CliRunner

from fxtrain.cli import cli


def invoke(*args):
    """Run ``fxtrain ARGS...`` in-process; returns click's Result (exit_code, output)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *needles):
    """Exit 1, a single 'Error:' line naming the problem, and no traceback."""
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def hide_module(monkeypatch, prefix):
    """Make every ``import`` of a module named ``prefix...`` fail, as if it were not installed."""
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith(prefix):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
