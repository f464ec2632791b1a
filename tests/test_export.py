"""`archlab export`: the ONNX graphs equal torch on each run kind's test split, the text graph
equals the packed LSTM, and ten predictions come back from the exported files with onnxruntime
and numpy alone (no torch, no archlab)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from archlab.cli import main
from archlab.export import TextGraph
from archlab.models.lstm import LSTMClassifier
from tests.helpers import tiny_runs

pytest.importorskip("onnxruntime", reason="pip install -e '.[serve]'")
pytestmark = pytest.mark.xdist_group("export-runs")  # one worker builds the module's runs

QUIET = ["--set", "train.threads=1", "--set", "train.progress=off"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tiny_runs(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def exported(
    runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Path, list[str]]]:
    """Each run exported and verified once per module: (folder, the command's stdout lines)."""
    done: dict[str, tuple[Path, list[str]]] = {}

    def get(kind: str) -> tuple[Path, list[str]]:
        if kind not in done:
            out = tmp_path_factory.mktemp(f"exp-{kind}") / "exp"
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert main(["export", str(runs[kind]), "--format", "onnx", "--out", str(out)]) == 0
            done[kind] = (out, buf.getvalue().strip().splitlines())
        return done[kind]

    return get


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("pooling", ["last", "max", "meanmax"])
def test_text_graph_equals_the_packed_lstm(bidirectional: bool, pooling: str) -> None:
    torch.manual_seed(0)
    m = LSTMClassifier(50, 3, embed_dim=8, hidden_size=6, num_layers=2,
                       bidirectional=bidirectional, pooling=pooling).eval()  # fmt: skip
    lengths = torch.tensor([7, 1, 4, 7, 2])
    tokens = torch.randint(2, 50, (5, 7)) * (torch.arange(7) < lengths[:, None])
    with torch.no_grad():
        want, got = m(tokens, lengths), TextGraph(m).eval()(tokens, lengths)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    # More right padding changes nothing.
    wide = torch.cat([tokens, torch.zeros((5, 3), dtype=torch.long)], 1)
    with torch.no_grad():
        torch.testing.assert_close(TextGraph(m).eval()(wide, lengths), want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["images", "text", "sales", "horizon"])
def test_export_matches_torch_on_the_test_split(
    runs: dict[str, Path], exported: Callable[[str], tuple[Path, list[str]]], kind: str
) -> None:
    out, lines = exported(kind)
    files = ["model.onnx", "contract.json", "examples.json"]
    assert lines[-4:] == [*(str(out / f) for f in files), str(out)]
    assert "test_split" in lines[1] and "max |diff|" in lines[1]
    c = json.loads((out / "contract.json").read_text())
    test = c["verification"]["test_split"]
    n_test = len(json.loads((runs[kind] / "split.json").read_text())["test"])
    assert test["ok"] and test["max_abs_diff"] <= 1e-4
    assert test["rows"] == (n_test if kind != "horizon" else test["rows"]) and test["rows"] > 0
    assert c["onnx"]["opset"] == 18 and "batch" in c["onnx"]["dynamic_axes"]
    assert c["verification"]["example"]["rows"] == 5  # traced with 2 rows, checked with 2 and 3
    # The examples file alone (no torch, no archlab) gives the outputs it records.
    got = standalone(out, "examples", None)
    assert got["rows"] == min(10, test["rows"]) and got["max_abs_diff"] <= 1e-4
    for item in (*c["inputs"], *c["outputs"]):
        assert item["name"] and item["dtype"] and item["shape"][0] == "N" and item["meaning"]
    if kind in ("images", "text"):
        assert test["argmax_equal"] is True
        assert c["class_names"] and c["outputs"][0]["name"] == "logits"
    if kind == "images":
        p = c["preprocessing"]
        assert p["size"] == 32 and p["channels"] == 1 and p["normalization"]["std"] == 0.5
        assert set(p["pixel_stats"]) == {"mean_mean", "mean_sd", "std_mean", "std_sd"}
        steps = " ".join(p["steps"])  # every step decode_image takes, so ONNX users take it too
        for said in ("EXIF orientation", "exif_transpose", "65535", "RGBA", "alpha channel"):
            assert said in steps, said
    if kind == "text":
        p = c["preprocessing"]
        assert p["pad_id"] == 0 and p["tokenizer"]["model"]["vocab"]["[UNK]"] == p["unk_id"]
        # examples.json names each row's raw text: tokenized, it gives the row's ids.
        from archlab import runner
        from archlab.tasks.text_cls import encode

        ex = json.loads((out / "examples.json").read_text())
        _, task, _ = runner.restore_task(runs["text"])
        ids, lengths = encode(task.fitted.tokenizer, ex["texts"], task.data_cfg.max_length)
        assert lengths.tolist() == ex["inputs"]["lengths"]
        for row, n, want in zip(ids.tolist(), lengths.tolist(), ex["inputs"]["tokens"],
                                strict=True):  # fmt: skip
            assert row[:n] == want[:n]
    if kind in ("sales", "horizon"):
        p = c["preprocessing"]
        f = p["featurizer"]
        assert len(f["scale"]) == len(f["offset"]) == len(f["series"]) == 6
        assert c["inputs"][0]["shape"][2] == len(p["feature_names"])
        assert p["horizon"] == (8 if kind == "horizon" else 1)
        w = c["run"]["metrics"].get("blend_weight")
        assert ("blend" in c) == (w is not None and w < 1)


@pytest.mark.parametrize("kind", ["images", "text", "sales", "horizon"])
def test_examples_name_the_test_rows_they_hold(
    runs: dict[str, Path], exported: Callable[[str], tuple[Path, list[str]]], kind: str
) -> None:
    import pandas as pd

    from archlab import runner

    out, _ = exported(kind)
    ex = json.loads((out / "examples.json").read_text())
    c = json.loads((out / "contract.json").read_text())
    src = ex["sources"]
    n = min(10, c["verification"]["test_split"]["rows"])  # tiny runs: 9 images, 6 forecasts
    assert len(src) == len(next(iter(ex["outputs"].values()))) == n > 0
    root = runs[kind].parent.parent  # the data tiny_runs wrote beside the runs
    if kind == "images":
        # Each named file, decoded as the run decodes, gives the example's pixels; its class
        # folder is its label.
        _, task, _ = runner.restore_task(runs["images"])
        got = task.read_images([str(root / "imgs" / s["file"]) for s in src]).numpy()
        np.testing.assert_array_equal(got, np.array(ex["inputs"]["pixels"], dtype=np.uint8))
        assert [s["label"] for s in src] == [s["file"].split("/")[0] for s in src]
    if kind == "text":
        # The run's own test predictions (written in training) list the same texts and labels.
        table = pd.read_csv(runs["text"] / "test_predictions.csv").head(10)
        assert [s["text"] for s in src] == ex["texts"] == table["text"].tolist()
        assert [s["label"] for s in src] == table["true"].tolist()
    if kind in ("sales", "horizon"):
        # The series' actual sales on the named dates (read from the CSV) are the targets of the
        # test rows, and its sales on the origin date the window's last history step.
        from archlab.tasks.sales_common import SalesTargets

        fz = c["preprocessing"]["featurizer"]
        raw = pd.read_csv(root / "walmart" / "train.csv")
        sales = {(r.Store, r.Dept, r.Date): r.Weekly_Sales for r in raw.itertuples()}
        _, _, _, data = runner.load_run(runs[kind], action="export")
        t = SalesTargets.unpack(next(data.test.iterate(10))[-1].double().numpy(), horizon=True)
        actual, observed = t.sales(), t.observed > 0.5
        x, cats = np.array(ex["inputs"]["x"]), ex["inputs"]["cats"]
        assert observed.any(1).all() and len(src) == len(actual)
        series = [tuple(v) for v in fz["series"]]
        for i, s in enumerate(src):
            assert set(s["series"]) == set(c["series_keys"])  # every key column, by name
            key = (s["series"]["Store"], s["series"]["Dept"])
            assert cats[i] == [fz["key_vocab"][k].index(v) for k, v in enumerate(key)]
            assert len(s["dates"]) == fz["horizon"]
            steps = pd.to_datetime([s["origin"], *s["dates"]]).to_series().diff().dropna()
            assert (steps == pd.Timedelta(days=7)).all(), s  # weekly, the origin a step before
            for j, d in enumerate(s["dates"]):
                if observed[i, j]:
                    assert sales[(*key, d)] == pytest.approx(actual[i, j], rel=1e-5), (s, d)
            last = x[i, fz["window"] - 1]  # the origin step: its scaled sales and observed flag
            if last[1] > 0.5:
                k = series.index(key)
                want = sales[(*key, s["origin"])]
                assert last[0] * fz["scale"][k] + fz["offset"][k] == pytest.approx(want, rel=1e-5)
        if kind == "horizon":  # each sample a series at the test origin, its H dates the last
            assert len({s["origin"] for s in src[:6]}) == 1 and src[0]["dates"][-1] == max(raw.Date)


def test_image_sources_of_arrays_and_manifests(tmp_path: Path) -> None:
    """An .npz names each test image by its index in the arrays; a manifest by its path as
    the rows give it (relative to data.image_root), with its byte-identical copies."""
    import shutil

    from archlab.config import apply_overrides
    from archlab.presets import PRESETS
    from archlab.tasks.image_cls import ImageClassification, ImageData
    from tests.conftest import write_image_folder, write_npz

    def sources(path: Path, *sets: str) -> tuple[Any, Any, list[dict[str, Any]]]:
        cfg = apply_overrides(PRESETS["images-resnet18-smoke"],
                              [f"data.path={path}", *sets])  # fmt: skip
        data = ImageData(cfg).build(torch.device("cpu"))
        task = ImageClassification(cfg, data.fitted)
        return data, task, task.test_sources(data, 10)

    npz = write_npz(tmp_path / "set.npz", n_per_class=40)
    z = np.load(npz)
    # The arrays' own size and colour: the test pixels are the arrays' (a subset keeps indices).
    data, _, src = sources(npz, "data.subset=90", "data.size=16", "data.channels=3")
    test = data.context.test_images.numpy()
    assert len(src) == 10 and all(set(s) == {"index", "label"} for s in src)
    for s, img in zip(src, test, strict=False):
        np.testing.assert_array_equal(z["images"][s["index"]].transpose(2, 0, 1), img)
        assert s["label"] == str(z["class_names"][z["labels"][s["index"]]])
    # An .npz made from files (images3's source_path array) names each image's file too.
    made = np.array([f"raw/{i:03d}.jpg" for i in range(len(z["labels"]))])
    np.savez(tmp_path / "paths.npz", **dict(z), source_path=made)
    _, _, named = sources(tmp_path / "paths.npz", "data.subset=90", "data.size=16")
    assert [s["source_path"] for s in named] == [f"raw/{s['index']:03d}.jpg" for s in src]

    imgs = write_image_folder(tmp_path / "pics", {"cat": 12, "dog": 12})
    shutil.copy(imgs / "cat" / "003.png", imgs / "cat" / "copy.png")
    rows = [
        (f"{c}/{f.name}", c, "test" if i % 3 == 0 else "train")
        for c in ("cat", "dog")
        for i, f in enumerate(sorted((imgs / c).iterdir()))
    ]
    (tmp_path / "list.csv").write_text(
        "path,label,split\n" + "".join(f"{p},{c},{sp}\n" for p, c, sp in rows)
    )
    data, task, src = sources(tmp_path / "list.csv", f"data.image_root={imgs}", "data.size=8")
    test = data.context.test_images.numpy()
    tagged = [p for p, _, sp in rows if sp == "test"]
    assert len(test) == len(tagged) and len(src) == min(10, len(tagged))
    for s, img in zip(src, test, strict=False):
        assert s["file"] in tagged and s["label"] == s["file"].split("/")[0]
        got = task.read_images([str(imgs / s["file"])]).numpy()[0]
        np.testing.assert_array_equal(got, img)
    # A byte-identical copy is a row of its own: each names the file it was read from.
    assert len({s["file"] for s in src}) == len(src)
    both = [s["file"] for s in sources(imgs, "data.size=8")[2]]
    assert len(set(both)) == len(both)


def test_contract_of_a_blending_run_says_the_onnx_output_is_the_network_alone() -> None:
    from types import SimpleNamespace

    from archlab.export import _blend_note

    def task(chosen: dict[str, float]) -> Any:
        return SimpleNamespace(fitted=SimpleNamespace(chosen=chosen), correction_scale=1.0,
                               data_cfg=SimpleNamespace(peer="mstl_ets"))  # fmt: skip

    note = _blend_note(task({"blend_weight": 0.6, "blend_correction_scale": 0.5}))["blend"]
    assert note["weight"] == 0.6 and note["peer"] == "mstl_ets"
    assert "network's forecast alone" in note["note"] and "0.6 x the network" in note["note"]
    assert "0.4 x the mstl_ets forecast" in note["note"] and "graph uses 1" in note["note"]
    assert (
        "graph uses"
        not in _blend_note(task({"blend_weight": 0.6, "blend_correction_scale": 1.0}))["blend"][
            "note"
        ]
    )
    assert _blend_note(task({"blend_weight": 1.0})) == _blend_note(task({})) == {}


def test_export_refuses_bad_input(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert main(["export", str(runs["text"]), "--format", "tflite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--format tflite" in err[0] and "onnx" in err[0]
    assert main(["export", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    # An --out that cannot be made, or none at all (not the current folder): one line each.
    for out, words in (("/proc/archlab-none/out", "cannot create the folder"),
                       ("", "--out '': give a folder")):  # fmt: skip
        assert main(["export", str(runs["text"]), "--out", out, "--no-verify"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert not any(tmp_path.glob("*.onnx")) and not Path("model.onnx").exists()


def test_a_read_only_run_points_export_and_explain_to_out(
    runs: dict[str, Path], capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: not mode & os.W_OK
                        and real(p, mode, **kw))  # as on a read-only mount # fmt: skip
    for cmd in ("export", "explain"):
        assert main([cmd, str(runs["text"])]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(
            f"archlab: error: {runs['text'] / cmd} (the default output folder): not writable"
        )
        assert err[0].endswith("give --out DIR to write elsewhere"), err


def test_export_says_the_check_needs_the_data(
    runs: dict[str, Path], tmp_path: Path, capsys, monkeypatch
) -> None:
    from archlab import runner
    from archlab.errors import ArchlabError

    def moved(*args: Any, **kwargs: Any) -> None:
        raise ArchlabError("data/rgb.npz: no such file or directory")

    monkeypatch.setattr(runner, "load_run", moved)
    assert main(["export", str(runs["text"]), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "verification" in err[0] and "--no-verify" in err[0], err
    assert "data/rgb.npz: no such file" in err[0]
    # --format is read whatever its case; --no-verify needs no data.
    assert main(["export", str(runs["text"]), "--out", str(tmp_path / "y"), "--format", "ONNX",
                 "--no-verify"]) == 0  # fmt: skip
    assert (tmp_path / "y" / "model.onnx").exists()


# Runs in a fresh interpreter where importing torch, archlab, tokenizers or PIL fails: the
# contract and the ONNX file must be enough. It tokenizes by the contract's rules (Python's re
# and unicodedata) and prints the probabilities as JSON.
STANDALONE = r"""
import importlib.abc, json, re, sys, unicodedata

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "archlab", "tokenizers", "PIL"):
            raise ImportError(f"{name} is blocked here")

sys.meta_path.insert(0, Block())
import numpy as np
import onnxruntime as ort

folder, kind, inputs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = json.load(open(f"{folder}/contract.json"))
sess = ort.InferenceSession(f"{folder}/{c['onnx']['file']}", providers=["CPUExecutionProvider"])
PY = c["preprocessing"].get("python_regex", {})  # the tokenizer's regexes for Python's re

def normalize(text, n):
    if n["type"] == "Sequence":
        for m in n["normalizers"]:
            text = normalize(text, m)
        return text
    if n["type"] == "NFKC":
        return unicodedata.normalize("NFKC", text)
    if n["type"] == "Lowercase":  # each character on its own, as the contract says
        return "".join(ch.lower() for ch in text)
    if n["type"] == "Replace":
        p = n["pattern"]
        pat = PY[p["Regex"]] if "Regex" in p else re.escape(p["String"])
        return re.sub(pat, lambda m: n["content"], text)
    raise ValueError(n["type"])

if kind == "text":
    p = c["preprocessing"]
    tok = p["tokenizer"]
    vocab = tok["model"]["vocab"]
    pre = tok["pre_tokenizer"]
    assert pre["type"] == "Split" and pre["invert"], pre
    rows = []
    for t in inputs:
        clean = normalize(t, tok["normalizer"])
        words = [m.group(0) for m in re.finditer(PY[pre["pattern"]["Regex"]], clean)]
        ids = [vocab.get(w, p["unk_id"]) for w in words][: p["max_length"]] or [p["unk_id"]]
        rows.append(ids)
    tokens = np.full((len(rows), p["max_length"]), p["pad_id"], dtype=np.int64)
    for i, ids in enumerate(rows):
        tokens[i, : len(ids)] = ids
    feed = {"tokens": tokens, "lengths": np.array([len(r) for r in rows], dtype=np.int64)}
elif kind == "examples":  # prepared inputs and the outputs they must give
    ex = json.load(open(f"{folder}/examples.json"))
    types = {i["name"]: i["dtype"] for i in c["inputs"]}
    feed = {k: np.array(v, dtype=types[k]) for k, v in ex["inputs"].items() if k in types}
    got = sess.run(None, feed)[0]
    want = np.array(next(iter(ex["outputs"].values())))
    print(json.dumps({"rows": len(got), "max_abs_diff": float(np.abs(got - want).max())}))
    sys.exit(0)
else:
    feed = {"pixels": np.load(inputs).astype(np.uint8)}
logits = sess.run(None, feed)[0]
e = np.exp(logits - logits.max(1, keepdims=True))
probs = e / e.sum(1, keepdims=True)
names = c["class_names"]
assert not any(m.split(".")[0] in ("torch", "archlab") for m in sys.modules)
print(json.dumps([{"label": names[int(q.argmax())], "probs": q.tolist()} for q in probs]))
"""


def standalone(folder: Path, kind: str, inputs: object) -> Any:
    r = subprocess.run([sys.executable, "-c", STANDALONE, str(folder), kind, json.dumps(inputs)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def _predict(capsys, run: Path, items: list[str]) -> list[dict]:
    assert main(["predict", str(run), *items]) == 0
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_ten_predictions_from_the_exported_files_alone(
    runs: dict[str, Path], exported: Callable[[str], tuple[Path, list[str]]], tmp_path: Path, capsys
) -> None:
    from archlab import runner

    # Texts: tokenized by the contract's rules, outside Python's tokenizers library.
    texts = ["Great flight, thanks @united!!", "worst delay ever :(", "the crew was ok",
             "LOVE it http://t.co/x", "bags lost &amp; no help", "नमस्ते दुनिया, 12A",
             "on time :)", "ΟΔΟΣ never again...", "why?? cancelled",
             "สวัสดีครับ مَرْحَبًا fine"]  # fmt: skip  # marks: Python's re \w splits at them
    folder, _ = exported("text")
    contract = json.loads((folder / "contract.json").read_text())
    # The graph is the network alone; predict blends it with the run's TF-IDF model where
    # validation chose so, and the contract says it (its "blend").
    _, task, model = runner.restore_task(runs["text"])
    assert ("blend" in contract) == (task.fitted.blend_weight < 1)
    alone = type(task)(task.cfg, replace(task.fitted, tfidf=None))
    want = alone.predict(model, texts)
    got = standalone(folder, "text", texts)
    names = contract["class_names"]
    assert [g["label"] for g in got] == [w["label"] for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g["probs"], [w[n] for n in names], atol=1e-5)
    # Images: decoded and resized as the contract says (here by archlab, saved as uint8).
    folder, _ = exported("images")
    files = sorted(str(p) for p in (runs["images"].parent.parent / "imgs").rglob("*.png"))[::6]
    assert len(files) == 10
    _, task, _ = runner.restore_task(runs["images"])
    np.save(tmp_path / "pixels.npy", task.read_images(files).numpy())
    want = _predict(capsys, runs["images"], files)
    got = standalone(folder, "images", str(tmp_path / "pixels.npy"))
    names = json.loads((folder / "contract.json").read_text())["class_names"]
    assert [g["label"] for g in got] == [w["label"] for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g["probs"], [w[n] for n in names], atol=1e-5)


def test_no_verify_exports_without_the_runs_data(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "nv"
    # An examples.json left by an earlier export must not survive an unverified one.
    out.mkdir()
    (out / "examples.json").write_text("{}")
    assert main(["export", str(runs["images"]), "--out", str(out), "--no-verify"]) == 0
    c = json.loads((out / "contract.json").read_text())
    assert set(c["verification"]) == {"tolerance", "example"} and c["verification"]["example"]["ok"]
    assert not (out / "examples.json").exists()
