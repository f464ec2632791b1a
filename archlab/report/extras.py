"""Report inputs that are not training runs: theory checks and model summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archlab import rundir
from archlab.utils import write_text_atomic

# The study's theory questions, answered by the tools (argv after `archlab theory`).
THEORY_COMMANDS: dict[str, list[str]] = {
    "conv: 32 wide x 28 high RGB, 10 filters 5x5, stride 1, no padding": [
        "conv",
        "--input",
        "3x28x32",
        "--filters",
        "10",
        "--kernel",
        "5",
    ],
    "conv: the same with padding 1": [
        "conv",
        "--input",
        "3x28x32",
        "--filters",
        "10",
        "--kernel",
        "5",
        "--padding",
        "1",
    ],
    "conv: the same on a grayscale input": [
        "conv",
        "--input",
        "1x28x32",
        "--filters",
        "10",
        "--kernel",
        "5",
    ],
    "softmax shift invariance and overflow": ["softmax"],
    "LSTM backward pass vs autograd": ["lstm-grad"],
}
# Model summaries shown in the report: name -> (input shape, classes) of the study's images;
# a report whose image runs had another input or class count shows theirs (image_run_shape).
SUMMARIES: dict[str, tuple[str, int]] = {"vgg13": ("1x64x64", 3), "resnet18": ("1x64x64", 3)}


def theory_outputs(out_dir: Path) -> list[dict[str, Any]]:
    """Run each theory command, save its output; a failed check is recorded, not hidden."""
    from typer.testing import CliRunner

    from archlab.theory.cli import theory_app

    runner = CliRunner()
    rows = []
    for i, (title, argv) in enumerate(THEORY_COMMANDS.items()):
        res = runner.invoke(theory_app, argv)
        path = out_dir / f"{i:02d}-{argv[0]}.txt"
        write_text_atomic(path, res.output)
        rows.append(
            {
                "title": title,
                "command": "archlab theory " + " ".join(argv),
                "exit_code": res.exit_code,
                "file": str(path.relative_to(out_dir.parent)),
            }
        )
    return rows


def image_run_shape(run_dir: Path) -> tuple[str, int] | None:
    """The input shape ('CxHxW') and class count an image run trained on (its data.json)."""
    path = Path(run_dir) / rundir.DATA
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    if not {"channels", "size", "class_names"} <= info.keys():
        return None
    return f"{info['channels']}x{info['size']}x{info['size']}", len(info["class_names"])


def model_summaries(out_dir: Path, shape: tuple[str, int] | None = None) -> list[dict[str, Any]]:
    """A torchinfo table per image model, at ``shape`` (the runs' input and classes) if given."""
    from archlab.models import MODELS
    from archlab.report.summary import model_summary

    rows = []
    for name, default in SUMMARIES.items():
        if name not in MODELS:
            continue
        input_shape, classes = shape or default
        path = out_dir / f"{name}.txt"
        write_text_atomic(path, model_summary(name, input_shape, classes))
        rows.append(
            {
                "model": name,
                "input": input_shape,
                "classes": classes,
                "file": str(path.relative_to(out_dir.parent)),
            }
        )
    return rows
