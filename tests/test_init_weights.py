"""model.init: starting weights from torchvision-format state dicts or an earlier image run."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from archlab import rundir, runner
from archlab.cli import main
from archlab.config import apply_overrides
from archlab.errors import ArchlabError
from archlab.models import MODELS
from archlab.presets import PRESETS
from archlab.tasks.init_weights import match, read_source
from archlab.train.callbacks import Callback
from tests.conftest import write_image_folder


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}  # fmt: skip


def torchvision_resnet18() -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision.models.resnet18().state_dict(), written out by hand from
    torchvision/models/resnet.py (BasicBlock, downsample = Sequential(conv1x1, BatchNorm2d))."""
    keys = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    c_in = 64
    for i, width in enumerate((64, 128, 256, 512), start=1):
        for b in (0, 1):
            p = f"layer{i}.{b}"
            keys[f"{p}.conv1.weight"] = (width, c_in if b == 0 else width, 3, 3)
            keys.update(_bn(f"{p}.bn1", width))
            keys[f"{p}.conv2.weight"] = (width, width, 3, 3)
            keys.update(_bn(f"{p}.bn2", width))
            if b == 0 and i > 1:
                keys[f"{p}.downsample.0.weight"] = (width, c_in, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", width))
        c_in = width
    keys.update({"fc.weight": (1000, 512), "fc.bias": (1000,)})
    return keys


def torchvision_vgg13() -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision.models.vgg13().state_dict() (cfg "B", no batch norm): convs
    at features.0, 2, 5, 7, 10, 12, 15, 17, 20, 22; classifier 25088-4096-4096-1000."""
    keys: dict[str, tuple[int, ...]] = {}
    idx, c_in = 0, 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            idx += 1
            continue
        keys[f"features.{idx}.weight"] = (v, c_in, 3, 3)
        keys[f"features.{idx}.bias"] = (v,)
        idx, c_in = idx + 2, v  # conv, ReLU
    for i, (n_out, n_in) in {0: (4096, 512 * 7 * 7), 3: (4096, 4096), 6: (1000, 4096)}.items():
        keys[f"classifier.{i}.weight"] = (n_out, n_in)
        keys[f"classifier.{i}.bias"] = (n_out,)
    return keys


def _state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g)
        for k, s in shapes.items()
    }


def test_torchvision_resnet18_loads_with_a_grey_stem_and_a_fresh_head() -> None:
    src = _state(torchvision_resnet18())
    model = MODELS["resnet18"].build(in_channels=1, num_classes=3)
    assert set(model.state_dict()) == set(src)  # the same names, one to one
    init = match(model, src, keep_head=False, where="r18.pth")
    assert init.info["model_tensors"] == len(src) == 122
    assert init.info["loaded"] == 120 and init.info["fresh"] == ["fc"]
    assert init.info["adapted"] == ["conv1.weight"] and init.info["ignored"] == 0
    before = model.fc.weight.detach().clone()
    model.load_state_dict(init.tensors, strict=False)
    assert torch.equal(model.conv1.weight, src["conv1.weight"].sum(1, keepdim=True))
    ds = model.layer3[0].downsample[1]
    assert torch.equal(ds.running_var, src["layer3.0.downsample.1.running_var"])
    assert torch.equal(model.layer4[1].conv2.weight, src["layer4.1.conv2.weight"])
    assert torch.equal(model.fc.weight, before)  # the head for 3 classes, as built
    rgb = match(MODELS["resnet18"].build(in_channels=3, num_classes=3), src, keep_head=False,
                where="r18.pth")  # fmt: skip
    assert rgb.info["adapted"] == [] and torch.equal(
        rgb.tensors["conv1.weight"], src["conv1.weight"]
    )


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_vgg13_file_loads_its_convolutions(tmp_path: Path, suffix: str) -> None:
    src = _state(torchvision_vgg13())
    path = tmp_path / f"vgg13{suffix}"
    if suffix == ".pth":
        torch.save(src, path)
    else:
        save_file(src, str(path))
    tensors, fmt, classes = read_source(str(path))
    assert classes is None and set(tensors) == set(src)
    with torch.device("meta"):
        model = MODELS["vgg13"].build(in_channels=1, num_classes=3)
    init = match(model, tensors, keep_head=False, where=str(path), fmt=fmt)
    # archlab pools to 2x2 before the classifier (torchvision: 7x7): its first linear layer
    # starts afresh; the 4096-4096 and 4096-1000 layers load; the head is new.
    assert init.info["fresh"] == ["classifier.0", "classifier.9"]
    assert init.info["adapted"] == ["features.0.weight"]
    assert torch.equal(init.tensors["classifier.6.weight"], src["classifier.6.weight"])
    assert init.info["loaded"] == 20 + 4 and "features.22.bias" in init.tensors


def test_files_that_are_no_state_dict_or_fit_no_network_are_refused(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ArchlabError, match=r"list\.pth: not a state dict"):
        read_source(str(tmp_path / "list.pth"))
    torch.save({"w": torch.zeros(1), "where": Path("x")}, tmp_path / "obj.pth")
    with pytest.raises(ArchlabError, match="refused to load"):
        read_source(str(tmp_path / "obj.pth"))
    for text in ("hello", "not a model\n"):  # bytes of no pickle: not "objects" refused
        (tmp_path / "notes.pth").write_text(text)
        with pytest.raises(ArchlabError, match=r"not a PyTorch file \(\w+: [^)]*\)$"):
            read_source(str(tmp_path / "notes.pth"))
    with pytest.raises(ArchlabError, match="no such file"):
        read_source(str(tmp_path / "missing.pth"))
    vgg = MODELS["vgg13"].build(in_channels=1, num_classes=3)
    with pytest.raises(ArchlabError, match=r"first bad key features\.0\.weight \(missing"):
        match(vgg, _state(torchvision_resnet18()), keep_head=False, where="r18.pth")
    src = _state(torchvision_resnet18())
    src["layer2.0.conv1.weight"] = torch.zeros(128, 32, 3, 3)
    with pytest.raises(ArchlabError, match=r"layer2\.0\.conv1\.weight \(file \[128, 32, 3, 3\]"):
        match(MODELS["resnet18"].build(1, 3), src, keep_head=False, where="bad.pth")


def test_an_earlier_run_starts_a_new_one_and_a_bad_init_is_one_line(
    tmp_path: Path, image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = [f"data.path={image_folder}", "data.size=32", "train.progress=plain"]
    first = runner.train(apply_overrides(PRESETS["images-resnet18-smoke"], sets), tmp_path / "a")
    weights = load_file(str(first / rundir.WEIGHTS))
    # Same classes: every tensor, the head included.
    cfg = apply_overrides(PRESETS["images-resnet18-smoke"], [*sets, f"model.init={first}"])
    p = runner.prepare(cfg, out=tmp_path / "b")
    start = p.task.build_model().state_dict()
    assert all(torch.equal(start[k], weights[k]) for k in weights)
    info = json.loads((p.run_dir / rundir.DATA).read_text())["init"]
    assert (info["format"], info["loaded"], info["fresh"]) == ("archlab run", len(weights), [])
    # Other classes: the head starts afresh; the note is among the run's first lines.
    other = write_image_folder(tmp_path / "other", {"ant": 12, "bee": 12, "cow": 12, "doe": 12})
    capsys.readouterr()
    run = runner.train(apply_overrides(PRESETS["images-resnet18-smoke"],
                                       [*sets, f"data.path={other}", f"model.init={first}"]),
                       tmp_path / "c")  # fmt: skip
    assert f"init: {first} (archlab run): 120 of 122 tensors loaded; fc initialized afresh" in (
        capsys.readouterr().err
    )
    assert rundir.is_finished(run)
    # Bad input: one line, exit 2, no run directory.
    text_run = tmp_path / "t"
    text_run.mkdir()
    (text_run / rundir.CONFIG).write_text(PRESETS["text-bilstm-smoke"].to_yaml())
    (text_run / rundir.WEIGHTS).write_bytes(b"")
    argv = ["train", "--preset", "images-resnet18-smoke", "--data", str(image_folder),
            "--out", str(tmp_path / "d"), "--set", f"model.init={text_run}"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"archlab: error: model.init={text_run}: a run of task text, not images; "
                   "give an images run"]  # fmt: skip
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_freeze_epochs_train_the_linear_layers_first_then_everything(
    tmp_path: Path, image_folder: Path
) -> None:
    sets = [f"data.path={image_folder}", "data.size=16", "train.progress=off",
            "reg.augment=none", "train.epochs=2"]  # fmt: skip
    first = runner.train(apply_overrides(PRESETS["images-resnet18-smoke"], sets), tmp_path / "a")
    start = load_file(str(first / rundir.WEIGHTS))
    cfg = apply_overrides(PRESETS["images-resnet18-smoke"],
                          [*sets, f"model.init={first}", "model.freeze_epochs=1"])  # fmt: skip
    seen: list[dict[str, torch.Tensor]] = []

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, row) -> None:
            seen.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    runner.fit(runner.prepare(cfg, out=tmp_path / "b"), [Snapshot()])
    after1, after2 = seen
    assert torch.equal(after1["conv1.weight"], start["conv1.weight"])  # body frozen in epoch 1
    assert torch.equal(after1["layer4.1.conv2.weight"], start["layer4.1.conv2.weight"])
    assert not torch.equal(after1["fc.weight"], start["fc.weight"])  # the head learns
    assert not torch.equal(after2["conv1.weight"], start["conv1.weight"])  # then everything
    with pytest.raises(ArchlabError, match=r"model.freeze_epochs=1 .* needs model.init=PATH"):
        apply_overrides(PRESETS["images-resnet18-smoke"], ["model.freeze_epochs=1"])


def test_body_lr_scale_gives_the_loaded_body_a_lower_rate_than_the_head(
    tmp_path: Path, image_folder: Path
) -> None:
    sets = [f"data.path={image_folder}", "data.size=16", "train.progress=off",
            "reg.augment=none", "train.epochs=1"]  # fmt: skip
    first = runner.train(apply_overrides(PRESETS["images-resnet18-smoke"], sets), tmp_path / "a")
    cfg = apply_overrides(PRESETS["images-resnet18-smoke"],
                          [*sets, f"model.init={first}", "model.body_lr_scale=0.1"])  # fmt: skip
    groups: list[list[tuple[float, set[str]]]] = []
    every: set[str] = set()

    class Groups(Callback):
        def on_fit_start(self, trainer) -> None:
            names = {id(p): n for n, p in trainer.model.named_parameters()}
            every.update(names.values())
            groups.append([(g["lr"], {names[id(p)] for p in g["params"]})
                           for g in trainer.optimizer.param_groups])  # fmt: skip

    runner.fit(runner.prepare(cfg, out=tmp_path / "b"), [Groups()])
    (found,) = groups
    rates = {n: lr for lr, ns in found for n in ns}
    # The schedule's current rates: the body's is a tenth of the head's at every step.
    assert rates["conv1.weight"] == pytest.approx(0.1 * rates["fc.weight"])
    assert rates["layer4.1.bn2.bias"] == pytest.approx(0.1 * rates["fc.bias"])
    assert set(rates) == every  # every parameter in exactly one group
    assert sum(len(ns) for _, ns in found) == len(every)
    with pytest.raises(ArchlabError, match=r"model.body_lr_scale=0.1 .* needs model.init=PATH"):
        apply_overrides(PRESETS["images-resnet18-smoke"], ["model.body_lr_scale=0.1"])
    with pytest.raises(ArchlabError, match=r"model.body_lr_scale=0.0: must be in \(0, 1\]"):
        apply_overrides(PRESETS["images-resnet18-smoke"], ["model.body_lr_scale=0"])


def test_a_file_without_batchnorm_counters_and_a_ddp_checkpoint_load(tmp_path: Path) -> None:
    # torchvision's ImageNet ResNet-18 file (resnet18-f37072fd.pth) predates BatchNorm's
    # num_batches_tracked: 102 tensors. load_state_dict leaves the network's own counters.
    src = {k: v for k, v in _state(torchvision_resnet18()).items() if "num_batches" not in k}
    assert len(src) == 102
    model = MODELS["resnet18"].build(in_channels=3, num_classes=3)
    init = match(model, src, keep_head=False, where="hub.pth")
    assert (init.info["loaded"], init.info["counters_kept"]) == (100, 20)
    assert init.note() == (
        "init: hub.pth (state dict): 100 of 122 tensors loaded; 20 BatchNorm "
        "num_batches_tracked counters not in the file, kept as built; fc initialized afresh"
    )
    model.load_state_dict(init.tensors, strict=False)
    assert torch.equal(model.bn1.running_mean, src["bn1.running_mean"])
    assert int(model.bn1.num_batches_tracked) == 0  # as built
    # A pytorch/examples ImageNet checkpoint of a DistributedDataParallel model: every key
    # carries 'module.', under 'state_dict'. The prefix is removed, and the format says so.
    full = _state(torchvision_resnet18())
    path = tmp_path / "ddp.pth.tar"
    torch.save({"epoch": 90, "state_dict": {f"module.{k}": v for k, v in full.items()}}, path)
    tensors, fmt, _ = read_source(str(path))
    assert set(tensors) == set(full)
    assert fmt == "state dict; 'module.' prefix removed from every key"
    ddp = match(model, tensors, keep_head=False, where=str(path), fmt=fmt)
    assert ddp.info["loaded"] == 120 and "counters_kept" not in ddp.info
    assert f"init: {path} (state dict; 'module.' prefix removed from every key): 120 of" in (
        ddp.note()
    )
    # Only some keys prefixed: nothing is removed (a state dict of another model).
    torch.save({"module.a": torch.zeros(1), "b": torch.zeros(1)}, tmp_path / "mixed.pth")
    assert set(read_source(str(tmp_path / "mixed.pth"))[0]) == {"module.a", "b"}


def test_errors_of_model_init_name_the_fix(tmp_path: Path) -> None:
    rgb = MODELS["resnet18"].build(in_channels=3, num_classes=3)
    grey = _state(torchvision_resnet18())
    grey["conv1.weight"] = torch.zeros(64, 1, 7, 7)  # a grayscale run's stem
    with pytest.raises(ArchlabError, match=r"\(file \[64, 1, 7, 7\], model \[64, 3, 7, 7\]\);.*"
                       r"the file's network reads grey images: set data.channels=1$"):  # fmt: skip
        match(rgb, grey, keep_head=False, where="grey.pth")
    with pytest.raises(ArchlabError, match=r"0 of 122 tensors match.*; the file's keys are a "
                       r"vgg13's: use --model vgg13$"):  # fmt: skip
        match(rgb, _state(torchvision_vgg13()), keep_head=False, where="vgg.pth")
    with pytest.raises(ArchlabError, match=r"; the file's keys are a resnet18's: use --model "
                       r"resnet18$"):  # fmt: skip
        match(MODELS["vgg13"].build(3, 3), _state(torchvision_resnet18()), keep_head=False,
              where="r18.pth")  # fmt: skip
    # A run of another network: its config.yaml says which.
    vgg_run = tmp_path / "vgg-run"
    vgg_run.mkdir()
    (vgg_run / rundir.CONFIG).write_text(PRESETS["images-vgg13-smoke"].to_yaml())
    (vgg_run / rundir.WEIGHTS).write_bytes(b"")
    want = f"model.init={vgg_run}: a vgg13 run, and this run builds resnet18; use --model vgg13"
    with pytest.raises(ArchlabError, match=f"^{re.escape(want)} \\(or give a resnet18 run\\)$"):
        read_source(str(vgg_run), model="resnet18")
    # A --budget search folder: its search.json names the chosen trial; the others have no
    # weights (the search drops them).
    search = tmp_path / "search"
    for trial, weights in (("trial-0", False), ("trial-1", True)):
        (search / trial).mkdir(parents=True)
        (search / trial / rundir.CONFIG).write_text(PRESETS["images-resnet18-smoke"].to_yaml())
        if weights:
            (search / trial / rundir.WEIGHTS).write_bytes(b"")
    chosen = {"chosen": {"trial": 1, "run_dir": "/elsewhere/search/trial-1"}}  # moved since
    (search / "search.json").write_text(json.dumps(chosen))
    want = f"model.init={search}: a --budget search folder, not a run; give its chosen run: "
    with pytest.raises(ArchlabError, match=f"^{re.escape(want)}model.init={re.escape(str(search))}"
                       "/trial-1$"):  # fmt: skip
        read_source(str(search), model="resnet18")
    want = f"; give model.init={search}/trial-1"
    with pytest.raises(ArchlabError, match=r"trial-0: a trial the --budget search did not choose "
                       f".*{re.escape(want)}$"):  # fmt: skip
        read_source(str(search / "trial-0"), model="resnet18")
    (search / "search.json").unlink()
    (search / "trials.csv").write_text("number,state\n")
    with pytest.raises(ArchlabError, match="a sweep folder, not a run; give one of its trial-N"):
        read_source(str(search), model="resnet18")
    with pytest.raises(ArchlabError, match=r"trial-0: not a finished run directory \(no model"):
        read_source(str(search / "trial-0"), model="resnet18")


class _CtrlCAt(Callback):
    """SIGINT after step ``i`` (0-based) of epoch ``epoch`` (0-based): a Ctrl-C."""

    def __init__(self, epoch: int, i: int) -> None:
        self.epoch, self.i = epoch, i

    def on_batch_end(self, trainer, step: int, loss: torch.Tensor) -> None:
        if (trainer.state.epoch, step) == (self.epoch, self.i):
            os.kill(os.getpid(), signal.SIGINT)


def test_resume_starts_from_the_checkpoint_without_the_init_file(
    tmp_path: Path, image_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    sets = [f"data.path={image_folder}", "data.size=16", "train.progress=plain",
            "train.threads=1", "train.checkpoint_every_s=0"]  # fmt: skip
    first = runner.train(apply_overrides(PRESETS["images-resnet18-smoke"], sets), tmp_path / "a")
    start = tmp_path / "start"
    start.mkdir()
    save_file(load_file(str(first / rundir.WEIGHTS)), str(start / "w.safetensors"))
    monkeypatch.chdir(start)  # model.init relative to the folder the run starts in
    cfg = apply_overrides(PRESETS["images-resnet18-smoke"], [*sets, "model.init=w.safetensors"])
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, tmp_path / "runs", callbacks=[_CtrlCAt(1, 0)])
    run_dir = next((tmp_path / "runs").iterdir())
    assert (run_dir / rundir.STATE).exists()
    kept = {f: (run_dir / f).read_bytes() for f in (rundir.CONFIG, rundir.DATA, rundir.FITTED)}
    assert json.loads(kept[rundir.DATA])["init"]["source"] == "w.safetensors"
    (start / "w.safetensors").rename(tmp_path / "moved.safetensors")
    monkeypatch.chdir(tmp_path)  # another folder, and the file is gone
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--set", "train.threads=1"]) == 0
    err = capsys.readouterr().err
    assert "init: w.safetensors not read again: the checkpoint holds the run's weights" in err
    assert rundir.is_finished(run_dir)
    assert {f: (run_dir / f).read_bytes() for f in kept} == kept  # its records as written
