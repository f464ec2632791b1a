"""The text task's blend with its TF-IDF model: chosen on validation, saved, applied by eval,
predict and serve, and named in the export contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from archlab import runner
from archlab.cli import main
from archlab.errors import ArchlabError
from archlab.tasks.text_blend import BLEND_WEIGHTS, choose
from archlab.tasks.text_cls import TFIDF_FILE
from archlab.tasks.tfidf import class_probs, load_tfidf, save_tfidf, tfidf_model
from tests.helpers import text_cfg, write_tweets

NAMES = ["a", "b", "c"]


def test_choose_takes_the_best_validation_f1_and_the_network_on_ties() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2])
    eye = np.eye(3)[labels]
    wrong = np.eye(3)[(labels + 1) % 3]
    # The network is right, the peer wrong: every weight above 0.5 is as good; ties go to 1.
    chosen, lines = choose("auto", 0.8 * eye + 0.1, wrong, labels, NAMES)
    assert chosen["blend_weight"] == 1.0 and chosen["blend_weight_from"] == "validation"
    assert chosen["blend_val_f1_macro_by_weight"][-1] == 1.0
    assert chosen["blend_tfidf_val_f1_macro"] == 0.0
    # Each is right on half the texts, and sure only where it is right: the blend beats both.
    half = np.arange(6) < 3
    net = np.where(half[:, None], 0.9 * eye + 0.05, 0.4 * wrong + 0.3)
    peer = np.where(half[:, None], 0.4 * wrong + 0.3, 0.9 * eye + 0.05)
    chosen, lines = choose("auto", net, peer, labels, NAMES)
    assert chosen["blend_val_f1_macro"] == 1.0
    assert 0 < chosen["blend_weight"] < 1 and chosen["blend_weight"] in BLEND_WEIGHTS
    assert lines[0].startswith(f"chosen: blend {chosen['blend_weight']:g} x network + ")
    # A network at chance beside a sure TF-IDF: every weight under 1 ties on macro-F1; the
    # lowest log-loss wins (w 0), not 0.9 (near-uniform probabilities, 0.4 for the true class).
    chosen, _ = choose("auto", np.full((6, 3), 1 / 3), 0.9 * eye + 0.05, labels, NAMES)
    assert chosen["blend_weight"] == 0.0 and chosen["blend_val_f1_macro"] == 1.0
    forced, _ = choose(0.3, net, peer, labels, NAMES)
    assert forced["blend_weight"] == 0.3 and forced["blend_weight_from"] == "config"


@pytest.mark.parametrize(
    "texts",
    [
        ["great flight thanks", "awful delay again", "gate change when", "love the crew"] * 5,
        ["😀😀", "😡", "😐 😐", "😀"] * 5,  # no word: the models split at spaces instead
    ],
)
def test_a_saved_tfidf_model_predicts_as_the_fitted_one(tmp_path: Path, texts: list[str]) -> None:
    labels = np.array([2, 0, 1, 2] * 5)
    clf = tfidf_model(texts).fit(texts, labels)
    save_tfidf(tmp_path / "m.npz", clf)
    back = load_tfidf(tmp_path / "m.npz")
    new = ["great crew", "😡 awful", "when", "something else"]
    np.testing.assert_array_equal(class_probs(back, new, 3), class_probs(clf, new, 3))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ArchlabError, match=r"bad\.npz: not a TF-IDF model archlab wrote"):
        load_tfidf(tmp_path / "bad.npz")


def _tiny_run(tmp_path: Path, *sets: str) -> tuple[Path, Path, dict]:
    """A tiny one-epoch text run on tweet-like data: (its CSV, run dir, metrics.json)."""
    tweets = write_tweets(tmp_path / "tweets.csv", n_per_class=30)
    cfg = text_cfg(tweets, "train.epochs=1", "train.threads=1", *sets)
    run_dir = runner.train(cfg, tmp_path / "runs")
    return tweets, run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_a_run_blends_on_validation_and_predicts_with_the_blend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One epoch of a tiny network: TF-IDF, which the words tell apart, is the better model.
    from archlab.tasks import tfidf
    from archlab.utils import ContentCache

    monkeypatch.setattr(tfidf, "_FITTED", ContentCache())  # fitted here, so its line is said
    tweets, run_dir, m = _tiny_run(tmp_path, "train.amp=off")
    err = capsys.readouterr().err
    w = m["blend_weight"]
    assert m["blend_weight_from"] == "validation" and w < 1
    assert f"chosen: blend {w:g} x network + {1 - w:g} x TF-IDF (validation;" in err
    n_train = len(json.loads((run_dir / "split.json").read_text())["train"])
    said = f"archlab: fitting the TF-IDF baseline on {n_train:,} training texts\n"
    assert err.count(said) == 1 and err.index(said) < err.index("chosen: blend")  # before it
    assert (run_dir / TFIDF_FILE).exists()
    # test_blend_* are the blend's: predict's labels of the test texts score them.
    _, task, model = runner.restore_task(run_dir)
    split = json.loads((run_dir / "split.json").read_text())["test"]
    test = pd.read_csv(run_dir / "test_predictions.csv", keep_default_na=False)
    assert len(test) == len(split)
    rows = task.predict(model, test["text"].tolist())
    acc = np.mean([r["label"] == t for r, t in zip(rows, test["true"], strict=True)])
    assert m["test_blend_accuracy"] == pytest.approx(acc)
    assert m["test_blend_accuracy"] >= m["test_accuracy"]  # the network alone: test_*
    assert [r["label"] for r in rows] == test["blend_pred"].tolist()  # the file has the blend too
    # eval applies the same blend; the export contract says the graph is the network alone.
    assert main(["eval", str(run_dir)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["test_blend_accuracy"] == pytest.approx(m["test_blend_accuracy"])
    assert main(["export", str(run_dir), "--out", str(tmp_path / "x")]) == 0
    contract = json.loads((tmp_path / "x" / "contract.json").read_text())
    assert contract["blend"]["weight"] == w and contract["blend"]["peer"] == "tfidf"
    capsys.readouterr()
    assert main(["explain", str(run_dir), "great flight thanks"]) == 0
    assert "the explanations are of the network alone; predict and serve blend it" in (
        capsys.readouterr().err
    )
    # data.tfidf_blend=1: the network alone, no model saved, predict is the network's.
    cfg1 = text_cfg(tweets, "train.epochs=1", "train.threads=1", "train.amp=off",
                    "data.tfidf_blend=1")  # fmt: skip
    run1 = runner.train(cfg1, tmp_path / "runs1")
    m1 = json.loads((run1 / "metrics.json").read_text())
    assert "blend_weight" not in m1 and not (run1 / TFIDF_FILE).exists()
    assert m1["test_accuracy"] == m["test_accuracy"]  # the same network either way


def test_a_bf16_run_blends_in_the_arithmetic_predict_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trained and tested in bf16: the weight is chosen, and the test blend scored, under the
    # same autocast as predict's (runner.inference), so predict's labels score test_blend_*.
    _, run_dir, m = _tiny_run(tmp_path, "train.amp=bf16")
    capsys.readouterr()
    assert m["amp_choice"] == "bf16" and "test_blend_accuracy" in m
    test = pd.read_csv(run_dir / "test_predictions.csv", keep_default_na=False)
    test[["text"]].to_csv(tmp_path / "test.csv", index=False)
    assert main(["predict", str(run_dir), "--file", str(tmp_path / "test.csv")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    acc = np.mean([r["label"] == t for r, t in zip(rows, test["true"], strict=True)])
    assert m["test_blend_accuracy"] == pytest.approx(acc)
    assert main(["eval", str(run_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["test_blend_f1_macro"] == m["test_blend_f1_macro"]
