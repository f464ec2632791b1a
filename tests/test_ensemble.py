"""`archlab ensemble`: averaging rules, shared-split checks, and end to end on text and sales."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archlab import runner
from archlab.cli import main
from archlab.ensemble import combine, evaluate_ensemble
from archlab.errors import ArchlabError
from tests.helpers import sales_smoke, text_cfg, write_panel, write_tweets


def test_combine_averages_probabilities_or_values() -> None:
    a, b = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 3.0, 0.0]])
    want = (a.softmax(-1) + b.softmax(-1)) / 2
    torch.testing.assert_close(combine("logits", [a, b]).exp().float(), want)
    torch.testing.assert_close(combine("values", [a, b]).float(), (a + b) / 2)
    with pytest.raises(ArchlabError):
        combine("ranks", [a, b])


def _text_runs(tmp_path: Path, *sets: str) -> list[Path]:
    csv = write_tweets(tmp_path / "tweets.csv")
    return [
        runner.train(
            text_cfg(csv, "data.subset=0", "train.epochs=2", f"seed={s}", *sets), tmp_path / "runs"
        )
        for s in (0, 1)
    ]


def test_text_ensemble_equals_averaged_saved_probabilities(tmp_path: Path) -> None:
    runs = _text_runs(tmp_path, "split_seed=7")
    res = evaluate_ensemble(runs)
    probs = [pd.read_csv(d / "test_predictions.csv") for d in runs]
    assert probs[0]["text"].tolist() == probs[1]["text"].tolist()  # one split, two inits
    cols = [c for c in probs[0].columns if c.startswith("p_")]
    mean = (probs[0][cols].to_numpy() + probs[1][cols].to_numpy()) / 2
    names = [c[2:] for c in cols]
    truth = probs[0]["true"].map(names.index).to_numpy()
    assert res["ensemble"]["test_accuracy"] == pytest.approx((mean.argmax(1) == truth).mean())
    supports = {k: v for k, v in res["ensemble"].items() if k.startswith("test_support_class_")}
    assert supports and all(type(v) is int for v in supports.values())  # counts, as metrics.json
    for m, d in zip(res["members"], runs, strict=True):
        saved = json.loads((d / "metrics.json").read_text())
        assert m["test_accuracy"] == pytest.approx(saved["test_accuracy"])
        # Each member's blend with its TF-IDF model is listed, and said to be left out.
        if "test_blend_accuracy" in saved:
            assert m["test_blend_accuracy"] == pytest.approx(saved["test_blend_accuracy"])
            assert "each member's blend with its peer" in res["note"]
    assert res["members_mean"]["test_accuracy"] == pytest.approx(
        np.mean([m["test_accuracy"] for m in res["members"]])
    )


def test_runs_with_different_splits_are_refused(tmp_path: Path) -> None:
    runs = _text_runs(tmp_path)  # split follows the seed
    with pytest.raises(ArchlabError, match="test split differs"):
        evaluate_ensemble(runs)
    with pytest.raises(ArchlabError, match="at least two"):
        evaluate_ensemble(runs[:1])
    # Another file, same seed: its data are named, not the split's seed.
    other = write_tweets(tmp_path / "other.csv", n_per_class=13)
    run = runner.train(text_cfg(other, "data.subset=0", "train.epochs=1"), tmp_path / "runs")
    with pytest.raises(ArchlabError, match=r"trained on other data than .*other.csv") as e:
        evaluate_ensemble([runs[0], run])
    assert "split_seed" not in str(e.value)


def test_sales_ensemble_averages_forecasts_cli(tmp_path: Path, capsys) -> None:
    root = write_panel(tmp_path / "panel")
    runs = [
        runner.train(sales_smoke(root, "sales-gru-smoke", f"seed={s}"), tmp_path / "r")
        for s in (0, 1)
    ]
    out = tmp_path / "ens.json"
    assert main(["ensemble", *map(str, runs), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res == json.loads(capsys.readouterr().out)
    assert res["task"] == "sales" and len(res["members"]) == 2
    # The time split is the same for every seed; the ensemble's WMAE is that of the mean forecast,
    # so by the triangle inequality it is at most the members' mean WMAE.
    assert res["ensemble"]["test_wmae"] <= res["members_mean"]["test_wmae"] + 1e-9
