"""`archlab explain`: which methods apply to which task, and one entry point for all of them.

The attribution methods themselves come from Captum; archlab's part is choosing the layers and
baselines, batching, and drawing. Outputs go to RUN_DIR/explain/ (or ``out``), with an
``explain.json`` summary that reports read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archlab.errors import ArchlabError

SUMMARY = "explain.json"  # written last into the output folder: what was explained, and where


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Parameters stop requiring gradients while attributions run: the backward passes then
    skip every weight gradient (about a third less CPU time for an LSTM, same attributions)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


def subset(n: int, limit: int) -> torch.Tensor:
    """Sorted indices of a seeded random ``limit`` of ``n`` samples (all when limit is 0)."""
    if not limit or n <= limit:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:limit].sort().values


@dataclass(frozen=True)
class ExplainRequest:
    """What to explain: a run, optional user inputs, the methods and their knobs."""

    run_dir: Path
    out: Path
    inputs: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    steps: int = 50  # integrated-gradients steps (Gauss-Legendre nodes)
    series: str = ""  # sales: "Store=1,Dept=1" for the one-series view ("" = largest)
    top: int = 1  # per class: how many most-confident right and wrong predictions
    limit: int = 1000  # test samples for the aggregate attribution views (0 = all)

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise ArchlabError(f"--steps {self.steps}: must be >= 2")
        if self.top < 1:
            raise ArchlabError(f"--top {self.top}: must be >= 1")
        if self.limit < 0:
            raise ArchlabError(f"--limit {self.limit}: must be >= 0")


@dataclass(frozen=True)
class Explainer:
    """Registry entry: the methods a task supports (the first ones run by default)."""

    run: Callable[[ExplainRequest], dict[str, Any]]
    methods: tuple[str, ...]
    default: tuple[str, ...]


def _explainers() -> dict[str, Explainer]:
    # Imported here: Captum and matplotlib load only when `archlab explain` runs.
    from archlab.explain import images, sales, text

    return {
        "images": Explainer(images.explain_run, ("gradcam", "occlusion"), ("gradcam",)),
        "text": Explainer(text.explain_run, ("ig",), ("ig",)),
        "sales": Explainer(sales.explain_run, ("ig", "permutation"), ("ig", "permutation")),
    }


def explain(
    run_dir: Path,
    inputs: list[str] | None = None,
    method: str | None = None,
    out: Path | None = None,
    **knobs: Any,
) -> Path:
    """Explain a finished run (its test split, or ``inputs``); returns the output folder."""
    from archlab import rundir
    from archlab.runner import load_config

    run_dir = Path(run_dir)
    rundir.require_finished(run_dir)
    cfg = load_config(run_dir)
    spec = _explainers()[cfg.task]
    methods = spec.default
    if method:
        methods = tuple(m.strip() for m in method.split(",") if m.strip())
        bad = [m for m in methods if m not in spec.methods]
        if bad or not methods:
            raise ArchlabError(
                f"--method {method}: not for runs of task {cfg.task} ({run_dir}); "
                f"valid: {', '.join(spec.methods)}"
            )
    req = ExplainRequest(
        run_dir=run_dir,
        out=Path(out) if out is not None else run_dir / "explain",
        inputs=tuple(inputs or ()),
        methods=methods,
        **knobs,
    )
    made = not req.out.exists()
    rundir.make_out_dir(req.out, given=out is not None)
    try:
        summary = spec.run(req)
    except BaseException:
        if made and not any(req.out.iterdir()):  # a bad --series: no empty folder left behind
            req.out.rmdir()
        raise
    from archlab.utils import write_json_atomic

    write_json_atomic(req.out / SUMMARY, {"task": cfg.task, "methods": list(methods), **summary})
    return req.out


# Methods and sample limits of the explanations `reproduce` and `demo` add to their reports.
STUDY_METHODS = {"images": "gradcam,occlusion", "text": "ig", "sales": "ig,permutation"}
STUDY_LIMITS = {"smoke": 64, "demo-tiny": 64}  # other profiles: ExplainRequest's default


def explain_study(
    out: Path, experiments: list[dict[str, Any]], profile: str, log: Callable[[str], None]
) -> None:
    """Explain the first seed of each trained experiment of a study (not the ablations) into
    its RUN_DIR/explain/; finished explanations are kept, so a re-run resumes. A failure is
    logged and the study goes on."""
    knobs = {"limit": STUDY_LIMITS[profile]} if profile in STUDY_LIMITS else {}
    for exp in experiments:
        if exp["kind"] != "run":
            continue
        run_dir = Path(out) / exp["part"] / exp["key"] / exp["runs"][""][0]
        if (run_dir / "explain" / SUMMARY).exists():
            continue
        log(f"[{exp['part']}] explaining {exp['title']} ({run_dir.name})")
        try:
            explain(run_dir, method=STUDY_METHODS[exp["part"]], **knobs)
        except ArchlabError as e:
            log(f"[{exp['part']}] no explanation for {exp['title']}: {e}")
