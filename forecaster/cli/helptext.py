"""`--help` that reads well at any width, 80 columns included.

Docstrings are hard-wrapped for the source (near 95 columns); shown as they are, each line would
be wrapped again at 80, leaving ragged halves. So prose paragraphs are joined into one line each
and rich wraps them at the console's width, while indented paragraphs (the examples) stay
preformatted: a command too long for 80 columns is broken at its options with a shell
continuation (`\\`) and a trailing `# comment` moves above it, so every line can be copied.

`fit_typer_help` also makes Typer's help honour the width (`render.console_width`: COLUMNS when
piped, else 80), drops the `<bool>` type Typer shows after flags, and lets a long default
(`--models`) wrap instead of being cut.
"""

from __future__ import annotations

import inspect
import shlex

EXAMPLE_WIDTH = 76  # help text is printed with one column of padding on each side of 80


def reflow(doc: str | None) -> str:
    """A docstring as help text: prose paragraphs on one line each, indented blocks kept."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    out = []
    for paragraph in paragraphs:
        lines = paragraph.split("\n")
        if paragraph.startswith("\b") or all(line.startswith(" ") for line in lines):
            out.append("\n".join(part for line in lines for part in fit_example(line)))
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def fit_example(line: str, width: int = EXAMPLE_WIDTH) -> list[str]:
    """One example command as lines of at most `width`: broken before options, with ` \\`."""
    if len(line) <= width:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    command, _, comment = line.strip().partition("   # ")
    lines = [f"{indent}# {comment.strip()}"] if comment else []
    try:
        tokens = shlex.split(command, posix=False)
    except ValueError:  # unbalanced quotes: leave the line as written
        return [*lines, f"{indent}{command}"]
    groups: list[str] = []
    for token in tokens:  # an option with its value(s) stays on one line
        if groups and not token.startswith("-") and groups[-1].startswith("-"):
            groups[-1] += f" {token}"
        else:
            groups.append(token)
    current = indent
    for group in groups:
        candidate = f"{current} {group}" if current.strip() else f"{current}{group}"
        if current.strip() and len(candidate) + 2 > width:
            lines.append(f"{current} \\")
            current = f"{indent}    {group}"
        else:
            current = candidate
    return [*lines, current]


def fit_typer_help(width: int) -> None:
    """Typer's help at `width` columns, no `<bool>` after flags, long defaults wrapped, not cut."""
    import typer.core
    import typer.rich_utils as rich_utils
    from rich.columns import Columns
    from rich.text import Text

    if rich_utils.MAX_WIDTH is None:  # TERMINAL_WIDTH, Typer's own setting, still wins
        rich_utils.MAX_WIDTH = width
    if getattr(typer.core.TyperOption.display_type_rich, "_fitted", False):
        return
    shown_type = typer.core.TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag or self.count else shown_type(self, ctx)

    display_type_rich._fitted = True
    typer.core.TyperOption.display_type_rich = display_type_rich
    parameter_help = rich_utils._get_parameter_help

    def one_text(**kwargs):
        """Typer's Columns of (help, default, required) keeps a long default on one cut line."""
        parts = parameter_help(**kwargs).renderables
        if not all(isinstance(p, Text) for p in parts):
            return Columns(parts)
        text = Text(" ").join(_breakable(p) for p in parts)
        text.overflow = "fold"
        return text

    rich_utils._get_parameter_help = one_text


def _breakable(part):
    """`[default: naive,drift,arima,...]`: a space after each comma of a long list, so it wraps."""
    from rich.text import Text

    plain = part.plain
    if plain.startswith("[default: ") and len(plain) > 40 and "," in plain and " " not in plain[10:]:
        return Text(plain.replace(",", ", "), style=part.style)
    return part
