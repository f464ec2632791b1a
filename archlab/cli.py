"""Command-line interface: the only place that parses strings into configs.

Exit codes: 0 success, 2 bad input or usage (one line on stderr), 130 Ctrl-C, 143 SIGTERM,
129 SIGHUP, 141 stdout's reader gone (``| head``, silently, as SIGPIPE ends other tools),
1 anything else.

Longer than our ~400-line guide on purpose: it is the user-facing contract (every subcommand,
flag and help text of ``archlab``), kept in one file to read top to bottom; each command is a
few lines that hand typed arguments to the module doing the work.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import os
import re
import shlex
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

# typer 0.29 vendors click as typer._click; its exceptions are what the parser raises.
from typer._click import exceptions as click

from archlab.config import RunConfig, apply_overrides, labelled, task_defaults
from archlab.errors import ArchlabError
from archlab.theory.cli import theory_app

SIGPIPE_EXIT = 141  # 128 + SIGPIPE (13): what a shell reports for a process SIGPIPE ended
# A command stopped by Ctrl-C (130), SIGHUP (129) or SIGTERM (143): these win over 141.
STOPPED_EXITS = frozenset({130, 128 + signal.SIGHUP, 128 + signal.SIGTERM})
STARTED = time.time()  # --budget counts from here: its imports are part of the wall time

app = typer.Typer(
    name="archlab",
    help="Train, compare and explain classic deep-learning architectures on your own data.\n\n"
    "--debug, anywhere on the command line, shows an error's full traceback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Theory tools live in their own sub-app (importing it does not import torch).
app.add_typer(theory_app, name="theory")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"archlab {version('archlab')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Train, compare and explain classic deep-learning architectures on your own data."""


SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any config field: section.key=value (repeatable)."),
]


def _command_line() -> str:
    return "archlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def build_config(
    task: str | None,
    preset: str | None,
    data: str | None,
    model: str | None,
    epochs: int | None,
    seed: int | None,
    overrides: list[str] | None,
    config: Path | None = None,
) -> RunConfig:
    """Resolve a config file or preset/task defaults, then flags, then --set overrides."""
    from archlab.presets import PRESETS
    from archlab.task_configs import TASK_CONFIGS

    partial = _partial_config(config) if config is not None else None
    if config is not None and partial is None:
        cfg = RunConfig.from_yaml(config.read_text(), where=str(config))  # a broken file: why
        if task or preset:
            raise ArchlabError(f"--config {config} names its task; drop --task and --preset")
        if (config.parent / "inputs.json").is_file():  # a run's: its data, from anywhere
            from archlab.runner import trained_paths

            cfg = trained_paths(cfg, config.parent)
        cfg = labelled(cfg, task_defaults(cfg.task), f"config {config}")
    elif preset:
        if preset not in PRESETS:
            raise ArchlabError(f"unknown preset {preset!r}; see `archlab train --list-presets`")
        cfg = PRESETS[preset]
        if task and task != cfg.task:
            raise ArchlabError(f"--task {task} conflicts with preset {preset} (task {cfg.task})")
        cfg = labelled(cfg, task_defaults(cfg.task), f"preset {preset}")
    else:
        if not task:
            named = f": --config {config} names no task" if config else ""
            tasks = ",".join(TASK_CONFIGS)
            raise ArchlabError(f"give --task {{{tasks}}} or --preset NAME{named}")
        if task not in TASK_CONFIGS:
            raise ArchlabError(f"unknown task {task!r}; valid: {', '.join(TASK_CONFIGS)}")
        cfg = task_defaults(task)
    if partial is not None:  # a file of some settings, over the task's or preset's
        base = cfg.to_dict()
        for k, v in partial.items():
            both = isinstance(base.get(k), dict) and isinstance(v, dict)
            base[k] = {**base[k], **v} if both else v
        cfg = labelled(RunConfig.from_dict(base, where=str(config)), cfg, f"config {config}")
    for flag, item in _flag_sets(data, model, epochs, seed, overrides):
        cfg = apply_overrides(cfg, [item], source=flag)
    return cfg


@contextlib.contextmanager
def _goes_on(out: Path) -> Iterator[None]:
    """A command of many runs (ablate, sweep, reproduce) stopped by Ctrl-C: say that the same
    command continues it, not only the one run --resume names."""
    from archlab.utils import shell_quote  # not imported while a Ctrl-C is handled

    try:
        yield
    except KeyboardInterrupt:
        print(f"archlab: to go on, run this command again with --out {shell_quote(str(out))}: "
              "finished runs are kept; one interrupted resumes", file=sys.stderr)  # fmt: skip
        raise


def _partial_config(config: Path) -> dict[str, Any] | None:
    """A --config file's settings when it names no task (they change --task's or --preset's),
    None for a whole run config; a folder or a missing file is one line."""
    import yaml

    if config.is_dir():
        inside = config / "config.yaml"
        run = f"; a run's config is {inside}" if inside.is_file() else ""
        raise ArchlabError(f"--config {config}: a folder, not a config file{run}")
    if not config.is_file():
        raise ArchlabError(f"{config}: no such file")
    try:
        d = yaml.safe_load(config.read_text())
    except yaml.YAMLError:
        return None  # RunConfig.from_yaml says what is wrong
    return d if isinstance(d, dict) and "task" not in d else None


def _flag_sets(
    data: str | None,
    model: str | None,
    epochs: int | None,
    seed: int | None,
    overrides: list[str] | None,
) -> list[tuple[str, str]]:
    """(flag, --set string) for each plain flag given, then for each --set."""
    sets: list[tuple[str, str]] = []
    if data is not None:
        if not Path(data).exists():
            raise ArchlabError(f"{data}: no such file or directory")
        sets.append(("--data", f"data.path={data}"))
    if model is not None:
        sets.append(("--model", f"model.name={model}"))
    if epochs is not None:
        sets.append(("--epochs", f"train.epochs={epochs}"))
    if seed is not None:
        sets.append(("--seed", f"seed={seed}"))
    return [*sets, *(("--set", s) for s in overrides or [])]


def _check_out(out: Path | None) -> None:
    """Refuse an --out that is (or lies under) a file, before any work starts."""
    from archlab.rundir import check_out_dir

    if out is not None:
        check_out_dir(out)


def _resume_config(
    run_dir: Path, sets: list[str], task: str | None, preset: str | None, config: Path | None
) -> RunConfig:
    """The resumed run's config with this session's runtime settings; refuses other changes.

    A resumed run continues from its checkpoint, so changing what it computes (optim.lr,
    epochs, data...) midway would leave a run that no config.yaml describes.
    """
    from archlab.runner import RUNTIME_KEYS, config_changes, load_config
    from archlab.utils import shell_quote

    if not run_dir.is_dir():  # as every other command says it
        raise ArchlabError(f"--resume {run_dir}: no such run directory")
    if task or preset or config:
        raise ArchlabError(
            f"--resume {run_dir}: the run keeps its own config ({run_dir}/config.yaml); "
            "drop --task, --preset and --config"
        )
    saved = load_config(run_dir)
    wanted = apply_overrides(saved, sets)
    changes = config_changes(saved, wanted)
    if changes:
        raise ArchlabError(
            f"--resume {run_dir}: a resumed run keeps its config, and these would change it: "
            f"{'; '.join(changes)}. Only {', '.join(RUNTIME_KEYS)} may change on resume; to "
            f"train with the change, start a new run: archlab train --config "
            f"{shell_quote(str(run_dir / 'config.yaml'))} --set ..."
        )
    return wanted


@app.command()
def train(
    task: Annotated[str | None, typer.Option(help="images, sales or text.")] = None,
    data: Annotated[str | None, typer.Option(help="Data path (folder, .npz, CSV...).")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    preset: Annotated[
        str | None, typer.Option(help="Named experiment, e.g. images-resnet18.")
    ] = None,
    set_: SetOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Directory for run directories (default: runs).")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run dir.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Start from a run config YAML (config.yaml, best.yaml).")
    ] = None,
    list_presets: Annotated[bool, typer.Option("--list-presets", help="List presets.")] = False,
    budget: Annotated[
        str | None,
        typer.Option(help="Search settings on the validation split within this time (20m, 1h)."),
    ] = None,
) -> None:
    """Train a model; prints the run directory as the last line."""
    if list_presets:  # before the runner's imports: listing needs no torch
        from archlab.presets import PRESETS, describe

        width = max(map(len, PRESETS))
        for name, cfg in PRESETS.items():
            print(f"{name:{width}s}  {cfg.train.epochs:>2d} ep  {describe(name)}")
        return
    from archlab import runner
    from archlab.train import distributed

    out_given, out = out is not None, out if out is not None else Path("runs")
    if budget is not None:
        if resume is not None:
            raise ArchlabError("--budget starts a new search; it cannot --resume a run")
        from archlab.budget import parse_budget

        seconds = parse_budget(budget)  # a bad duration fails before any data is read
        _check_out(out)
        cfg = build_config(task, preset, data, model, epochs, seed, set_, config)
        run_dir = _train_budget(cfg, seconds, out, preset, set_ or [])
        _print_metrics(run_dir)
        return
    try:
        if resume is not None:
            if out_given:  # it continues in its own directory
                raise ArchlabError(f"--resume {resume} continues in that run directory; drop "
                                   "--out")  # fmt: skip
            sets = [s for _, s in _flag_sets(data, model, epochs, seed, set_)]
            wanted = _resume_config(resume, sets, task, preset, config)
            from archlab import rundir

            if rundir.is_finished(resume) and distributed.from_env().is_main:
                print(f"archlab: {resume} finished already: nothing to resume; its metrics:",
                      file=sys.stderr)  # fmt: skip
            run_dir = runner.train(None, out, resume_dir=resume, runtime=wanted)
        else:
            _check_out(out)
            cfg = build_config(task, preset, data, model, epochs, seed, set_, config)
            run_dir = runner.train(cfg, out, name=preset, command=_command_line())
    finally:
        # Under torchrun: tear gloo down while the interpreter is whole. Left to exit-time
        # destructors, its worker threads sometimes abort the process ("terminate called
        # without an active exception"), which failed a 2-rank run that had finished.
        distributed.shutdown()
    if not distributed.from_env().is_main:
        return  # under torchrun rank 0 reports
    _print_metrics(run_dir)


def _train_budget(
    cfg: RunConfig, seconds: float, out: Path, preset: str | None, sets: list[str]
) -> Path:
    import optuna

    from archlab.budget import run_budget
    from archlab.train import distributed

    if distributed.from_env().enabled:
        raise ArchlabError("--budget runs its trials one after another; run it without torchrun")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from us
    fixed = [s.partition("=")[0].strip() for s in sets]  # keys the user set stay as set
    name = preset or f"{cfg.task}-{cfg.model.name}"
    result = run_budget(cfg, seconds, out, name, fixed=fixed, command=_command_line(),
                        started=STARTED)  # fmt: skip
    print(f"archlab: {result.summary()}", file=sys.stderr)
    print(f"archlab: every trial and the choice: {result.search_dir}", file=sys.stderr)
    return result.run_dir


def _print_metrics(run_dir: Path) -> None:
    """The run's headline test metrics, then its directory as the last line."""
    from archlab import rundir

    metrics = rundir.read_metrics(run_dir)
    # test_blend_*: what predict answers where validation chose a blend (a horizon run's with
    # its statistical peer, a text run's with its TF-IDF model).
    shown = ("test_accuracy", "test_f1_macro", "test_blend_accuracy", "test_blend_f1_macro",
             "test_wmae", "test_blend_wmae", "test_r2", "epochs_run")  # fmt: skip
    keys = [k for k in shown if k in metrics]
    print(
        " ".join(
            f"{k}={metrics[k]:.4f}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}"
            for k in keys
        )
    )
    print(run_dir)


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.", metavar="RUN_DIR")],
    data: Annotated[str | None, typer.Option(help="Evaluate on this data instead.")] = None,
    all_: Annotated[
        bool,
        typer.Option(
            "--all",
            help="With --data (images, text): score every image or row of it, with no split; "
            "it may hold any of the run's classes.",
        ),
    ] = False,
) -> None:
    """Re-evaluate a saved run on its test split; prints metrics as JSON."""
    from archlab import runner

    print(json_with_matrices(runner.evaluate(run_dir, data, score_all=all_)))


def json_with_matrices(obj: dict) -> str:
    """JSON like ``json.dumps(indent=2)``, but a list of lists (a confusion matrix) prints one
    row per line, as a matrix, instead of one number per line."""
    items = []
    for k, v in obj.items():
        if isinstance(v, list) and v and all(isinstance(r, list) for r in v):
            rows = ",\n".join(f"    {json.dumps(r)}" for r in v)
            items.append(f"  {json.dumps(k)}: [\n{rows}\n  ]")
        else:
            items.append(f"  {json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(items) + "\n}"


@app.command()
def ensemble(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Finished runs sharing a test split.", metavar="RUN_DIR"),
    ],
    out: Annotated[Path | None, typer.Option(help="Also write the result to this JSON.")] = None,
) -> None:
    """Average the test predictions of several runs; prints members' and ensemble metrics."""
    from archlab import rundir
    from archlab.ensemble import evaluate_ensemble
    from archlab.utils import write_json_atomic

    if out is not None:
        rundir.check_out_file(Path(out), [str(d) for d in run_dirs])
    twice = [
        d for i, d in enumerate(run_dirs) if d.resolve() in {e.resolve() for e in run_dirs[:i]}
    ]
    if twice:
        raise ArchlabError(f"{twice[0]}: given twice; an ensemble averages different runs")
    result = evaluate_ensemble(list(run_dirs))
    if out is not None:
        write_json_atomic(out, result)
    print(json.dumps(result, indent=2))


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.", metavar="RUN_DIR")],
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="Inputs: image files, texts, or a sales history CSV.", metavar="INPUT"),
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="A file of inputs (CSV for sales/text).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Sales forecaster runs: write the forecasts of --file's rows (e.g. Walmart's "
            "test.csv.gz) as a Kaggle submission CSV (Id,<target>)."
        ),
    ] = None,
) -> None:
    """Predict with a saved run; prints one JSON object per input.

    A sales forecaster run (any data.horizon; not the parity framing) needs no input: it
    forecasts the H steps after the end of its data (or of a history CSV given as input).
    """
    from archlab import rundir, runner
    from archlab.tasks.base import InputFile
    from archlab.tasks.sales_horizon import baseline_rows

    items = list(inputs or [])
    _no_pipes(items)
    if file is not None:
        items.append(InputFile(file))  # always a file, never a text
    cfg, task, model = runner.restore_task(run_dir)
    forecaster = cfg.task == "sales" and cfg.data.framing == "forecast"
    if cfg.task == "sales" and not forecaster:  # before asking for inputs it cannot use
        raise ArchlabError(f"predict needs a forecast-framing run (data.framing=forecast); "
                           f"{run_dir} is of the study's parity framing, which has no predict: "
                           "train with data.framing=forecast")  # fmt: skip
    if not items and not forecaster:
        raise ArchlabError("give at least one input (or --file PATH)")
    if out is not None and not forecaster:
        raise ArchlabError(
            "--out writes a submission of a sales forecaster run (data.framing=forecast); "
            f"{run_dir} is a run of task {cfg.task}: drop --out"
        )
    if out is not None and file is None:
        raise ArchlabError(
            "--out needs --file ROWS.csv: the rows to forecast (series keys and dates) whose "
            "forecasts the submission holds"
        )
    if out is not None:
        rundir.check_out_file(Path(out), [*items, str(run_dir)])
    with runner.inference(run_dir, cfg, model):  # the arithmetic the run was tested in
        rows = task.predict(model, items)
    if out is None:
        for row in rows:
            print(_json_line(row))
        if forecaster and (took := baseline_rows(rows, task.data_cfg.series_keys)):
            print(f"archlab: note: {took}", file=sys.stderr)
        return
    _write_submission(rows, task.data_cfg, Path(out))  # the keys as read (a wide table's)


def _json_line(row: dict[str, Any]) -> str:
    """One JSON object on one line, non-ASCII text as itself (café, 航班, not \\u escapes)
    where stdout can write it, escaped where it cannot (still the same JSON)."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return json.dumps(row)
    return line


def _write_submission(rows: list[dict[str, Any]], data: Any, out: Path) -> None:
    """Kaggle's format: Id = the series keys and the date joined by '_', then the forecast."""
    import pandas as pd

    from archlab.data.sales import SINGLE_SERIES, SINGLE_VALUE
    from archlab.tasks.sales_horizon import baseline_rows
    from archlab.utils import atomic_path

    keys, date = list(data.series_keys), data.date_column
    df = pd.DataFrame(rows)
    if keys == [SINGLE_SERIES] and (df[SINGLE_SERIES] == SINGLE_VALUE).all():
        keys = []  # a file that is one series: its key is reading's, not the user's
    # Column-wise concatenation: a row-wise join took 12 s for Walmart's 115,064 rows.
    ids = df[date].astype(str)
    for k in reversed(keys):
        ids = df[k].astype(str) + "_" + ids
    # A wide table's values are the target only inside the run (its default name, Walmart's
    # Weekly_Sales): its file has no such column, so the submission says "forecast".
    read_wide = data.series_keys == (SINGLE_SERIES,) and data.target == type(data)().target
    sub = pd.DataFrame({"Id": ids, "forecast" if read_wide else data.target: df.forecast})
    with atomic_path(out) as tmp:
        sub.to_csv(tmp, index=False)
    took = baseline_rows(rows, keys)
    print(f"archlab: {len(sub)} forecasts ({sub.Id.nunique()} distinct ids)"
          f"{'; ' + took if took else ''}", file=sys.stderr)  # fmt: skip
    print(out)


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.", metavar="RUN_DIR")],
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="Inputs: image files, texts (default: test split).", metavar="INPUT"),
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="A file of inputs (a CSV of texts or of sales history).")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(help="images: gradcam, occlusion; text: ig; sales: ig, permutation."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default RUN_DIR/explain).")] = (
        None
    ),
    steps: Annotated[int, typer.Option(help="Integrated-gradients steps.")] = 50,
    series: Annotated[
        str, typer.Option(help="Sales: series for the per-step view, e.g. Store=1,Dept=1.")
    ] = "",
    top: Annotated[int, typer.Option(help="Per class: most confident right/wrong shown.")] = 1,
    limit: Annotated[
        int,
        typer.Option(
            help="Test samples for aggregate views (0 = all; sales permutation importance: "
            "10,000 for any other value)."
        ),
    ] = 1000,
) -> None:
    """Show what a trained network looks at: Grad-CAM, integrated gradients, permutation
    importance; prints the files written, then the output folder as the last line."""
    from archlab.explain import explain as run
    from archlab.tasks.base import InputFile

    items = list(inputs or [])
    _no_pipes([str(x) for x in items])
    if file is not None:
        items.append(InputFile(file))  # always a file, never a text
    out_dir = run(run_dir, items, method, out, steps=steps, series=series, top=top, limit=limit)
    summary = json.loads((out_dir / "explain.json").read_text())
    for name in summary.get("files", []):
        print(out_dir / name)
    print(out_dir)


def _needs(command: str, *modules: str) -> None:
    """Refuse, in one line, a command whose optional dependencies are not installed."""
    from importlib.util import find_spec

    missing = [m for m in modules if find_spec(m) is None]
    if missing:
        need = ", ".join(missing)
        raise ArchlabError(
            f"archlab {command} needs {need}: pip install 'archlab[serve]' (in a checkout: "
            "pip install -e '.[serve]')"
        )


@app.command("export")
def export_(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.", metavar="RUN_DIR")],
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    # A string, not a Path: Path("") is ".", and --out "" must not export into the current folder.
    out: Annotated[str | None, typer.Option(help="Output folder (default RUN_DIR/export).")] = (
        None
    ),
    verify: Annotated[
        bool,
        typer.Option(help="Check onnxruntime against torch on the test split (reads the data)."),
    ] = True,
) -> None:
    """Export a run as ONNX beside contract.json (its preprocessing and outputs) and
    examples.json (test rows and their outputs); prints the check, the files, then the output
    folder as the last line."""
    _needs("export", "onnx", "onnxscript", "onnxruntime")
    from archlab.export import CONTRACT_FILE, EXAMPLES_FILE, MODEL_FILE, export

    if format.lower() != "onnx":
        raise ArchlabError(f"--format {format}: the only export format is onnx")
    if out is not None and not out.strip():
        raise ArchlabError("--out '': give a folder (leave --out out for RUN_DIR/export)")
    out_dir = Path(out) if out is not None else run_dir / "export"
    result = export(run_dir, Path(out) if out is not None else None, verify=verify)
    for where, c in result["verification"].items():
        if where != "tolerance":
            same = f", argmax equal: {c['argmax_equal']}" if "argmax_equal" in c else ""
            print(f"onnxruntime vs torch, {where}: {c['rows']} rows, max |diff| "
                  f"{c['max_abs_diff']:.2e}{same}")  # fmt: skip
    for name in (MODEL_FILE, CONTRACT_FILE, EXAMPLES_FILE):
        if (out_dir / name).exists():
            print(out_dir / name)
    print(out_dir)


@app.command()
def serve(
    run_dirs: Annotated[list[Path], typer.Argument(help="Finished runs.", metavar="RUN_DIR")],
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body, MiB.")] = 8.0,
    timeout: Annotated[float, typer.Option(help="Seconds one request may take.")] = 30.0,
    max_batch: Annotated[
        int, typer.Option(help="Images/texts of concurrent requests per forward pass (1: none).")
    ] = 32,
) -> None:
    """Serve runs over HTTP: a page at /, POST /NAME/predict and /NAME/explain, /health, and
    the OpenAPI page at /docs. Ctrl-C stops it."""
    _needs("serve", "fastapi", "uvicorn", "python_multipart")
    from archlab.serve import LIMITS_ERROR, Limits
    from archlab.serve import serve as run

    if not 0 <= port < 65536:
        raise ArchlabError(f"--port {port}: must be 0..65535")
    if not 0 < max_upload_mb < float("inf"):  # nan, inf: int() of them would crash
        raise ArchlabError(LIMITS_ERROR)
    limits = Limits(max_upload_bytes=int(max_upload_mb * 2**20), timeout_s=timeout,
                    max_batch=max_batch)  # fmt: skip
    run(run_dirs, host, port, limits)


@app.command()
def summary(
    model: Annotated[str, typer.Argument(help="Registered model name.", metavar="MODEL")],
    input: Annotated[str, typer.Option(help="Input shape CxHxW (images).")] = "1x64x64",
    classes: Annotated[int, typer.Option(help="Number of classes.")] = 3,
) -> None:
    """Print a layer table (torchinfo): layer, output shape, parameters."""
    from archlab.models import MODELS
    from archlab.report.summary import model_summary

    if model not in MODELS:
        raise ArchlabError(f"unknown model {model!r}; valid: {', '.join(MODELS)}")
    print(model_summary(model, input, classes))


@app.command()
def ablate(
    task: Annotated[str, typer.Option(help="Task of the ablation.")] = "images",
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    data: Annotated[str | None, typer.Option(help="Data path.")] = None,
    techniques: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated techniques (default: the task's; the presets page "
            "lists each task's)."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per technique.")] = 1,
    preset: Annotated[str | None, typer.Option(help="Base preset (optimizer, epochs...).")] = None,
    set_: SetOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (re-run to resume).")] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Share the cells with other workers through this database (e.g. "
            "sqlite:///abl.db, postgresql://user@host/db); --out must be a folder they all see."
        ),
    ] = None,
) -> None:
    """Run each regularization technique alone for N seeds; writes ablation.md/csv and curves."""
    from archlab.ablate import run_ablation, run_shared_ablation
    from archlab.presets import PRESETS

    _check_out(out)
    if preset is None and model is not None and f"{task}-{model}" in PRESETS:
        preset = f"{task}-{model}"
        # Said first: a preset's settings may not fit a user's data, and its errors come
        # before any config line.
        print(f"archlab: note: ablate starts from preset {preset} (the preset named after "
              f"--model {model}); --preset NAME to start from another",
              file=sys.stderr)  # fmt: skip
    base = build_config(None if preset else task, preset, data, model, epochs, None, set_)
    from archlab.presets import DEFAULT_TECHNIQUES

    if techniques is None:
        techs = list(DEFAULT_TECHNIQUES.get(base.task, ("baseline",)))
    else:
        techs = [t.strip() for t in techniques.split(",") if t.strip()]
        if not techs:
            raise ArchlabError("--techniques names no technique; give e.g. baseline,dropout")
    out_dir = (
        out
        or Path("runs") / f"ablate-{base.task}-{base.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    _check_out(out_dir)
    with _goes_on(out_dir):  # a shared grid too: the same command takes its cells up again
        if storage is None:
            run_ablation(base, techs, seeds, out_dir)
            left = 0
        else:
            left = run_shared_ablation(base, techs, seeds, out_dir, storage)
    if left:
        note = (
            f"archlab: {left} cell(s) still training on other workers; the one that "
            "finishes the last writes the table (or run this command again then)"
        )
        print(note, file=sys.stderr)
        print(out_dir)
        return
    print((out_dir / "ablation.md").read_text(), end="")
    print(out_dir)


@app.command()
def sweep(
    trials: Annotated[int, typer.Option(help="Trials of the study in all, across all workers.")],
    task: Annotated[str | None, typer.Option(help="images, sales or text.")] = None,
    data: Annotated[str | None, typer.Option(help="Data path (folder, .npz, CSV...).")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    preset: Annotated[str | None, typer.Option(help="Base experiment, e.g. text-bilstm.")] = None,
    config: Annotated[Path | None, typer.Option(help="Base run config YAML.")] = None,
    set_: SetOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs per trial.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every trial and the sampler.")] = None,
    space: Annotated[
        Path | None, typer.Option(help="YAML search space replacing the default one.")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="Storage URL the workers share (default: OUT/sweep.db).")
    ] = None,
    study_name: Annotated[
        str | None, typer.Option(help="Study name (default: the preset, or TASK-MODEL).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default: runs/sweep-NAME).")
    ] = None,
) -> None:
    """Tune hyperparameters with Optuna; workers sharing --storage split one study's trials."""
    import optuna

    from archlab.rundir import safe_name
    from archlab.sweep import run_sweep, search_space

    if trials < 1:
        raise ArchlabError(f"--trials {trials}: must be >= 1")
    _check_out(out)
    base = build_config(task, preset, data, model, epochs, seed, set_, config)
    name = study_name or preset or f"{base.task}-{base.model.name}"
    out_dir = out or Path("runs") / f"sweep-{safe_name(name)}"
    space_ = search_space(space, base)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from us
    with _goes_on(out_dir):
        result = run_sweep(base, space_, trials, out_dir, study_name=name, storage=storage,
                           command=_command_line())  # fmt: skip
    print(result.summary())
    print(out_dir)


@app.command()
def reproduce(
    data_dir: Annotated[
        Path, typer.Option(help="Folder with images3/, walmart/, twitter_airline/.")
    ],
    profile: Annotated[
        str,
        typer.Option(
            help="smoke (minutes; ~70 s on 2 idle cores), quick (<= 60 min), full, or long "
            "(full with the tuned "
            "image recipes at 64 px for 50-60 epochs: for a GPU)."
        ),
    ] = "quick",
    seeds: Annotated[int, typer.Option(help="Seeds per experiment.")] = 1,
    out: Annotated[Path, typer.Option(help="Output directory (re-run to resume).")] = Path(
        "runs/reproduce"
    ),
    parts: Annotated[
        str, typer.Option(help="Comma-separated parts to run: images,sales,text.")
    ] = "images,sales,text",
    cells: Annotated[
        Path | None,
        typer.Option(
            help="Committed ablation cells (e.g. bench/results/ablation_cpu) to read instead of "
            "training the cells they match exactly."
        ),
    ] = None,
) -> None:
    """Run every experiment of the study and build one report; prints the report's index.html,
    then the output folder as the last line."""
    from archlab.reproduce import reproduce as run

    _check_out(out)
    if cells is not None and not cells.is_dir():
        raise ArchlabError(f"--cells {cells}: not a directory")
    chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
    with _goes_on(out):
        report_dir = run(data_dir, profile, seeds, out, parts=chosen, cells=cells)
    print(report_dir / "index.html")
    print(out)


@app.command()
def eda(
    task: Annotated[str, typer.Option(help="Task whose exploratory plots to draw.")],
    data: Annotated[str | None, typer.Option(help="Data path.")] = None,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option(help="Output directory for the plots.")] = Path("runs/eda"),
) -> None:
    """Exploratory plots of a data set (sales: the study's five; text: counts and lengths)."""
    from archlab.tasks import TASKS

    _check_out(out)
    cfg = build_config(task, None, data, None, None, None, set_)
    spec = TASKS[cfg.task]
    if spec.eda is None:
        raise ArchlabError(f"task {task!r} has no exploratory plots")
    for path in spec.eda(cfg, out):
        print(path)
    print(out)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output directory (re-run to resume).")] = Path(
        "runs/demo"
    ),
    data: Annotated[
        Path | None,
        typer.Option(help="Folder with images3/, walmart/, twitter_airline/: the study, smoke."),
    ] = None,
) -> None:
    """Theory, summaries, short image and sales runs on data shipped with the dependencies, and
    the study's report (--data DIR: `reproduce --profile smoke` on real data); prints its path."""
    from archlab.demo import result_lines, run_demo
    from archlab.reproduce import PARTS, find_data
    from archlab.reproduce import reproduce as run

    _check_out(out)
    if data is None:
        report_dir = run_demo(out)
    else:
        if not data.is_dir() or not any(find_data(data, part) for part in PARTS):
            raise ArchlabError(
                f"{data}: --data needs a folder holding images3/, walmart/ or "
                "twitter_airline/ (the layout of `archlab reproduce --data-dir`)"
            )
        report_dir = run(data, "smoke", 1, out)
    for line in result_lines(out):
        print(line)
    print(report_dir / "index.html")


def _required_usage(param: Any) -> Any:
    def pieces(ctx: Any) -> list[str]:
        return [param.display_name_raw + ("..." if param.nargs != 1 else "")]

    return pieces


def _unwrapped(text: str | None) -> str | None:
    """Each paragraph of a help text on one line, for the terminal to wrap: typer's help keeps
    a docstring's line breaks, which broke sentences mid-way at any width. Paragraph breaks
    (a blank line) and a ``\\b`` paragraph (kept as written, click's mark) stay."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else re.sub(r"[ \t]*\n[ \t]*", " ", p.strip()) for p in paragraphs
    )


def _plain_help(command: Any) -> Any:
    """Help as the conventions go: no type beside a plain flag (typer prints ``<bool>`` for
    --pool, --help; an empty metavar is what its panel prints instead), an argument in capitals
    (``RUN_DIR``, as a metavar names it; typer writes a bare one as ``run_dir``) and a required
    one as ``RUN_DIR`` in the usage line (typer writes ``{RUN_DIR}``), and help texts unwrapped."""
    command.help = _unwrapped(command.help)
    command.short_help = _unwrapped(command.short_help)
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        if getattr(param, "help", None):
            param.help = _unwrapped(param.help)
        if param.param_type_name == "argument" and param.metavar is None:
            param.metavar = param.name.upper()
        if param.param_type_name == "argument" and param.required:
            param.get_usage_pieces = _required_usage(param)
    get_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)
    return command


_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR,
    errno.ENOTDIR, errno.EFBIG, errno.EIO,
}  # fmt: skip


# Signals that end a run as a Ctrl-C does (a checkpoint kept): SIGTERM (`kill`, `timeout`, a
# scheduler's stop) and SIGHUP (the terminal closed, an ssh session dropped).
_STOPS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _terminate_as_interrupt(seen: list[int]) -> Iterator[None]:
    """SIGTERM and SIGHUP raised as KeyboardInterrupt, and noted in ``seen``: every path that
    keeps work on Ctrl-C (a checkpoint, a search's record) keeps it on them too, which
    otherwise end the process where it stands."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        # As a Ctrl-C there: training's first one finishes the step and checkpoints.
        on_int = signal.getsignal(signal.SIGINT)
        if callable(on_int) and on_int is not signal.default_int_handler:
            on_int(signum, frame)  # its handler says which signal came
            return
        raise KeyboardInterrupt

    # A signal already ignored stays so: `nohup archlab train ... &` must outlive the terminal.
    stops = [s for s in _STOPS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, handler) for s in stops}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _PastTyper(Exception):
    """A Ctrl-C or a closed stdout carried past typer, which would end them as a bare exit
    130 (with no way to tell whether the runner already said where training stopped) and as
    exit 1 ("anything else failed"; rich's console, which prints typer's help, exits 1 too)."""

    def __init__(self, error: KeyboardInterrupt | BrokenPipeError) -> None:
        super().__init__()
        self.error = error


def _past_typer(command: Any) -> Any:
    """The root command, its parsing (``--help`` prints there) and its run (every subcommand's
    parsing and work) raising a Ctrl-C or a closed stdout as ``_PastTyper``."""

    def passing(method: Any) -> Any:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except (KeyboardInterrupt, BrokenPipeError) as e:
                raise _PastTyper(e) from e
            except SystemExit as e:
                if isinstance(e.__context__, BrokenPipeError):  # rich's exit 1 (typer's help)
                    raise _PastTyper(e.__context__) from e
                raise

        return wrapper

    command.make_context = passing(command.make_context)
    command.invoke = passing(command.invoke)
    return command


class _Log:
    """stderr that outlives its reader: `archlab train ... 2>&1 | head` (or `| less`, quit)
    killed the training at its next line, with no checkpoint. Once the reader is gone (or the
    terminal, after SIGHUP) the lines go to devnull and the command goes on; data on stdout
    still ends it as a closed pipe does."""

    def __init__(self, stream: Any) -> None:
        self._stream, self._gone = stream, False

    def _reader_gone(self, e: OSError) -> None:
        if not isinstance(e, BrokenPipeError) and e.errno not in (errno.EPIPE, errno.EIO):
            raise e
        self._gone = True
        with contextlib.suppress(OSError, ValueError):  # what is still buffered goes there too
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except OSError as e:
                self._reader_gone(e)
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except OSError as e:
                self._reader_gone(e)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's
        return getattr(self._stream, name)


def _matplotlib_cache() -> None:
    """A read-only or missing home: matplotlib warned in two lines on every command that draws
    and built its font cache again each time, in a fresh temporary folder. One folder per user
    under the temporary directory instead (MPLCONFIGDIR, set before matplotlib is imported).
    Nothing is created unless matplotlib's own folders cannot be (as it decides)."""
    if "MPLCONFIGDIR" in os.environ:
        return
    home = os.path.expanduser("~")
    if sys.platform.startswith(("linux", "freebsd")):
        xdg = (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"))
        wanted = [os.path.join(os.environ.get(var) or os.path.join(home, sub), "matplotlib")
                  for var, sub in xdg]  # fmt: skip
    else:
        wanted = [os.path.join(home, ".matplotlib")]
    if all(_can_make(d) for d in wanted):
        return
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else 0
    cache = os.path.join(tempfile.gettempdir(), f"archlab-matplotlib-{uid}")
    with contextlib.suppress(OSError):
        os.makedirs(cache, mode=0o700, exist_ok=True)
        st = os.lstat(cache)  # the user's own folder, not one another user left or linked
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
            os.environ["MPLCONFIGDIR"] = cache


def _can_make(folder: str) -> bool:
    """``folder`` is writable, or its nearest existing parent is (so it can be made)."""
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        if os.path.dirname(path) == path:
            return False
        path = os.path.dirname(path)
    return os.path.isdir(path) and os.access(path, os.W_OK)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, mapping errors to exit codes and one-line messages."""
    _matplotlib_cache()
    if sys.stderr is None:  # started with it closed (`2>&-`): the messages go nowhere
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process's, until exit)
    if sys.stdout is None:  # `>&-`: predict's answers, eval's scores would be lost, exit 0
        print("archlab: error: stdout is closed: the output has nowhere to go (give it a "
              "file: > out.txt, or > /dev/null)", file=sys.stderr)  # fmt: skip
        return 2
    for stream in (sys.stdout, sys.stderr):  # a path or label the terminal cannot encode prints
        # escaped, not as a traceback; surrogateescape (a UTF-8 locale's) already writes a
        # name that is no UTF-8 as its bytes, the folder's real name: kept
        if getattr(stream, "errors", None) == "strict":
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="backslashreplace")
    stderr = sys.stderr
    sys.stderr = stderr if isinstance(stderr, _Log) else _Log(stderr)
    rc: int | None = None
    try:
        rc = _main(argv)
        sys.stdout.flush()  # a reader gone shows here, while the exit code can still say so
    except BrokenPipeError:
        # `archlab ... | head`: end as SIGPIPE ends other tools, 128 + 13 and nothing said.
        # Output still buffered goes to devnull: flushed at exit, it would print "Exception
        # ignored ... BrokenPipeError" (the docs' "Note on SIGPIPE" in the signal module).
        with contextlib.suppress(OSError, ValueError):  # not a file descriptor: nothing kept
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        # `archlab train ... | tee log`, Ctrl-C: the terminal's SIGINT ends tee too, often
        # first; the run stopped as interrupted (resumable), which 141 would hide.
        return rc if rc in STOPPED_EXITS else SIGPIPE_EXIT
    finally:
        sys.stderr = stderr
    return rc


def _main(argv: list[str] | None) -> int:
    """The command's exit code; a closed stdout raised as BrokenPipeError (for ``main``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        args = _paths(args)
    except ArchlabError as e:
        print(f"archlab: error: {e}", file=sys.stderr)
        return 2
    command = _past_typer(_plain_help(typer.main.get_command(app)))
    terminated: list[int] = []
    try:
        with _terminate_as_interrupt(terminated):
            rc = command.main(args=args, prog_name="archlab", standalone_mode=False)
    except _PastTyper as e:
        if isinstance(e.error, BrokenPipeError):
            stop = _stopped_by(e.error)
            if stop is None and not terminated:  # the reader alone went: 141 (``main``)
                raise e.error from None
            # the Ctrl-C that stopped the command ended its reader (`| tee`) as well
            return _interrupted(terminated, _said(stop))
        return _interrupted(terminated, _said(e.error))
    except ArchlabError as e:
        if debug:
            raise
        message = " ".join(str(e).splitlines())  # one line, whatever a value held
        print(f"archlab: error: {message}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except click.NoArgsIsHelpError as e:
        e.show()
        return 2
    except click.UsageError as e:
        print(f"archlab: error: {e.format_message()} (see --help)", file=sys.stderr)
        return 2
    except click.ClickException as e:
        print(f"archlab: error: {e.format_message()}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, typer.Abort):
        return _interrupted(terminated)
    except OSError as e:
        # A full disk, a read-only folder, a path that is a directory: the user's machine, not
        # archlab, so one line naming the file (writes are atomic: nothing partial is left).
        if debug or e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"archlab: error: {where}{e.strerror}", file=sys.stderr)
        return 2
    if isinstance(rc, int) and rc:
        return _interrupted(terminated) if rc == 130 else rc
    return 0


# Options and --set keys whose values are paths: a leading ~ the shell left (`--out=~/runs`, a
# quoted '~/x') made a folder named ~ in the current one (which `rm -rf ~` then takes for the
# home folder). Inputs (predict's texts) are never rewritten.
_READ = ("--data", "--file", "--config", "--space", "--cells", "--data-dir", "--resume")
_WRITTEN = ("--out",)
_PATH_KEYS = ("data.path", "data.image_root", "data.embeddings", "model.init")


def _paths(args: list[str]) -> list[str]:
    """The path values of ``args`` with a leading ~ expanded as the shell would; an empty
    --out refused (an unset $OUTDIR scattered a run's files in the current folder), and a
    pipe or device given as a file to read, which was "no such file" (or, read once to be
    fingerprinted, "empty")."""
    out = []
    for i, a in enumerate(args):
        inline = a.startswith("--") and "=" in a  # --out=x, not --out x
        flag, value = a.split("=", 1) if inline else (args[i - 1] if i else "", a)
        key = ""
        if flag == "--set" and "=" in value:  # --set data.path=~/x
            key, value = value.split("=", 1)
            if key not in _PATH_KEYS:
                out.append(a)
                continue
        elif flag not in _READ + _WRITTEN:
            out.append(a)
            continue
        if flag == "--out" and not value:
            raise ArchlabError("--out '': give a folder (. for the current one)")
        if value.startswith("~"):
            value = os.path.expanduser(value)
        if flag == "--set" or flag in _READ:
            if value == "-":
                raise ArchlabError(f"{key or flag} -: standard input is not read; save it to "
                                   "a file")  # fmt: skip
            _no_pipes([value])
        joined = f"{key}={value}" if key else value
        out.append(f"{flag}={joined}" if inline else joined)
    return out


def _no_pipes(paths: list[str]) -> None:
    """Refuse a file to read that is a pipe or device (``<(cmd)``; a sales history so given
    read as "the file is empty": read once to be fingerprinted, then again to be parsed)."""
    for item in paths:
        if _not_a_file(item):
            raise ArchlabError(f"{item}: a pipe or device, not a file (archlab reads its data "
                               "more than once: to check and fingerprint it); save it to a "
                               "file")  # fmt: skip


def _not_a_file(arg: str) -> bool:
    """``arg`` names a pipe, socket or device (``<(cmd)``, /dev/stdin, /dev/null)."""
    try:
        mode = os.stat(arg).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _said(error: BaseException | None) -> bool:
    """Whether the interrupt's line is on stderr already: the runner's, naming where training
    stopped and how to resume, raised as its Interrupted or as the cause of one raised on it
    (a --budget refit's). The runner not imported, it raised nothing (and torch stays out)."""
    runner = sys.modules.get("archlab.runner")
    while runner is not None and error is not None:
        if isinstance(error, runner.Interrupted):
            return True
        error = error.__cause__
    return False


def _stopped_by(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM, SIGHUP) that ``error`` was raised while handling, if any: a
    line to stdout after it, its reader gone as well."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:  # a cycle of contexts ends the walk
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _interrupted(terminated: list[int], said: bool = False) -> int:
    """The last line and exit code of a Ctrl-C (130; none where a line ``said`` it already) or
    a SIGTERM or SIGHUP (128 + the signal, as a shell reports; its line always: none before
    names the signal)."""
    if terminated:
        print(f"archlab: terminated ({signal.Signals(terminated[0]).name})", file=sys.stderr)
        return 128 + terminated[0]
    if not said:
        print("archlab: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
