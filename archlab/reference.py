"""The docs' configuration and presets reference, generated from the config dataclasses and PRESETS.

A field's meaning is the comment on its line in the source, after the comment lines just above
it (the house style for documenting a field), so the reference cannot drift from the code: a
field without either has no meaning here, and tests/test_reference.py fails on it.
"""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from functools import cache
from typing import Any, Literal, get_args, get_origin

from archlab.config import (
    SECTIONS,
    TOP_LEVEL,
    OptimConfig,
    RegConfig,
    RunConfig,
    TrainConfig,
    task_defaults,
)
from archlab.presets import DEFAULT_TECHNIQUES, PRESETS, RESET_REG, TECHNIQUES, describe
from archlab.task_configs import TASK_CONFIGS

# The sections every task shares, in the order `--set` lists them.
SHARED: dict[str, type] = {"optim": OptimConfig, "reg": RegConfig, "train": TrainConfig}


def config_classes() -> list[tuple[str, type]]:
    """Every config dataclass a `--set` key reaches, with the heading the reference gives it."""
    out: list[tuple[str, type]] = [("top level", RunConfig)]
    for task, spec in TASK_CONFIGS.items():
        out += [(f"{task}: data", spec.data_config), (f"{task}: model", spec.model_config)]
    out += list(SHARED.items())
    return out


def settable_fields(cls: type) -> list[str]:
    """The field names of ``cls`` that `--set` takes (RunConfig: only its top-level integers)."""
    names = [f.name for f in fields(cls)]
    return [n for n in names if n in TOP_LEVEL] if cls is RunConfig else names


@cache
def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment text: the comment lines just above it, then the one on its line."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}  # line number -> comment text
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(tok.start[0])
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    out: dict[str, str] = {}
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line in comments and line not in code_lines:
            above.insert(0, comments[line])
            line -= 1
        trailing = [
            comments[n] for n in (node.lineno, node.end_lineno) if n in comments and n in code_lines
        ]
        text = " ".join([*above, *dict.fromkeys(trailing)])
        if text:
            out[node.target.id] = text
    return out


def type_name(tp: Any) -> str:
    """How a `--set` value of type ``tp`` is written, in words."""
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        inner = [type_name(a) for a in get_args(tp) if a is not type(None)]
        return " or ".join(inner) + (" or `none`" if type(None) in get_args(tp) else "")
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])} (comma-separated)"
        return f"{len(args)} × {type_name(args[0])} (comma-separated)"
    return getattr(tp, "__name__", str(tp))


def value_text(value: Any) -> str:
    """A default as it would be written after `--set key=`."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value_text(v) for v in value) if value else "(empty)"
    if value == "":
        return '""'
    return str(value)


def _default(cls: type, name: str) -> Any:
    f = cls.__dataclass_fields__[name]
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def fields_table(cls: type, prefix: str) -> str:
    """A Markdown table of ``cls``'s settable fields: key, type, default, meaning."""
    hints = typing.get_type_hints(cls)
    meanings = field_comments(cls)
    # The div (md_in_html) lets the site's stylesheet keep the meaning column readable on a
    # phone, where the table scrolls sideways.
    rows = ['<div class="config-table" markdown>', "", "| key | type | default | meaning |"]
    rows.append("|---|---|---|---|")
    for name in settable_fields(cls):
        default = _default(cls, name)
        shown = "(required)" if default is MISSING else f"`{value_text(default)}`"
        rows.append(
            f"| `{prefix}{name}` | {_cell(type_name(hints[name]))} | {_cell(shown)} "
            f"| {_cell(meanings.get(name, ''))} |"
        )
    return "\n".join([*rows, "", "</div>"])


def config_reference() -> str:
    """The configuration page's generated part: a table per section and task."""
    assert set(SHARED) | {"data", "model"} == set(SECTIONS)
    parts = [
        "## Top level",
        "",
        "Set as `--set seed=N` (or `--seed N`) and `--set split_seed=N`.",
        "",
        fields_table(RunConfig, ""),
    ]
    for task, spec in TASK_CONFIGS.items():
        for section, cls in (("data", spec.data_config), ("model", spec.model_config)):
            doc = inspect.getdoc(cls)
            parts += ["", f"## `{section}` for {task}", ""]
            if doc and not doc.startswith(cls.__name__ + "("):  # dataclass's generated one
                parts += [doc.splitlines()[0], ""]
            parts.append(fields_table(cls, f"{section}."))
    for section, cls in SHARED.items():
        parts += ["", f"## `{section}` (every task)", "", inspect.getdoc(cls).splitlines()[0], ""]
        parts.append(fields_table(cls, f"{section}."))
        for task in TASK_CONFIGS:  # a task that trains from its own recipe (config.py)
            own, bare = getattr(task_defaults(task), section), cls()
            changed = [
                f"`{section}.{f.name}={value_text(getattr(own, f.name))}`"
                for f in fields(own)
                if getattr(own, f.name) != getattr(bare, f.name)
            ]
            if changed:
                parts += ["", f"`--task {task}` with no preset starts from {', '.join(changed)}."]
        if cls is RegConfig:
            parts += ["", "Which `reg` keys each task reads (setting another is refused):", ""]
            parts += ["| task | reads | `reg.augment` values |", "|---|---|---|"]
            for task, spec in TASK_CONFIGS.items():
                knobs = ", ".join(f"`{k}`" for k in spec.reg_knobs)
                augments = ", ".join(f"`{a}`" for a in spec.augments)
                parts.append(f"| {task} | {knobs} | {augments} |")
    return "\n".join(parts) + "\n"


def preset_settings(cfg: RunConfig) -> list[str]:
    """The `--set` settings that take a task's default config to ``cfg``."""
    base = task_defaults(cfg.task)
    out = [f"{k}={getattr(cfg, k)}" for k in TOP_LEVEL if getattr(cfg, k) != getattr(base, k)]
    for section in SECTIONS:
        ours, theirs = getattr(cfg, section), getattr(base, section)
        assert is_dataclass(ours)
        for f in fields(ours):
            if getattr(ours, f.name) != getattr(theirs, f.name):
                out.append(f"{section}.{f.name}={value_text(getattr(ours, f.name))}")
    return out


def presets_reference() -> str:
    """The presets page's generated part: every preset but the -smoke ones, by task, each with
    its description and the settings that take its task's defaults to it (a list, not a
    table: the settings run long, and a list reads on a phone)."""
    parts: list[str] = []
    for task in TASK_CONFIGS:
        parts += ["", f"## {task}", ""]
        for name, cfg in PRESETS.items():
            if cfg.task != task or name.endswith("-smoke"):
                continue
            settings = " ".join(f"`{s}`" for s in preset_settings(cfg)) or "(the defaults)"
            parts.append(f"- **`{name}`**: {describe(name)}.  \n  {settings}")
    parts += ["", "## Ablation techniques", "",
              "`archlab ablate --techniques A,B` takes these names; the starred ones run when "
              "`--techniques` is not given. Images and sales switch every regularizer of the "
              "preset off first (each technique alone); text applies each on top of the "
              "preset.", ""]  # fmt: skip
    for task, techniques in TECHNIQUES.items():
        plain = "every regularizer off" if task in RESET_REG else "the preset as it is"
        items = [f"`{t}`{'*' if t in DEFAULT_TECHNIQUES[task] else ''} "
                 f"({', '.join(f'`{x}`' for x in sets) or plain})"
                 for t, sets in techniques.items()]  # fmt: skip
        parts.append(f"- **{task}**: " + "; ".join(items))
    return "\n".join(parts).lstrip() + "\n"
