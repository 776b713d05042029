"""C sources from the template files in ``firmware_export/templates/``.

A template is ``string.Template`` text (``${name}`` placeholders). A snippet file
holds several small templates, each introduced by a ``//@ name`` line; text before
the first such line documents the file and is dropped.
"""
import re
import string
from functools import lru_cache

from .._version import __version__
from .._files import data_dir

_SNIPPET = re.compile(r"^//@ (\w+)\n", re.M)


def template_dir():
    return data_dir("firmware_export") / "templates"


@lru_cache(maxsize=None)
def _read(name):
    return (template_dir() / name).read_text(encoding="utf-8")


def render(name, **values):
    """Fill template file ``name``; ``version`` is supplied. A missing placeholder raises KeyError."""
    return string.Template(_read(name)).substitute(version=__version__, **values)


@lru_cache(maxsize=None)
def snippets(name):
    """{snippet name: string.Template} of a snippet file."""
    parts = _SNIPPET.split(_read(name))[1:]
    return {key: string.Template(body) for key, body in zip(parts[::2], parts[1::2])}


def fill(file, snippet, **values):
    """One filled snippet of template file ``file``."""
    return snippets(file)[snippet].substitute(**values)
