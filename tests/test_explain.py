"""`archlab explain`: Grad-CAM against a hand-made reference, the Adebayo randomization check,
IG completeness on a trained text model, permutation importance of an ignored feature and of a
planted one per horizon step, wording that follows the data's step, the CLI end to end on tiny
runs of every task and sales framing, and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archlab import runner
from archlab.cli import main
from archlab.explain import ExplainRequest, images, sales_common, sales_horizon, text
from archlab.explain.sales_common import SalesTensors, step_words
from archlab.models import MODELS
from archlab.task_configs import models_for
from archlab.tasks.sales_common import SalesTargets

QUIET = ["--set", "train.threads=1", "--set", "train.progress=off"]


# --- images ---
class TinyCNN(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def stripes(n_per_class: int = 24, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Noise images where class k has a bright band of rows at 5k..5k+3: the only evidence."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((3 * n_per_class, 1, size, size), generator=g) * 0.4
    y = torch.arange(3).repeat_interleave(n_per_class)
    for k in range(3):
        x[y == k, :, 5 * k : 5 * k + 3] = 1.0
    return x, y


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 150) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def reference_gradcam(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM by hand (Selvaraju et al. 2017): hooks catch the layer's activations A and the
    gradient of the class score; weights = spatial mean of the gradient; ReLU(sum_k w_k A_k)."""
    acts: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        output.retain_grad()
        acts.append(output)

    h = layer.register_forward_hook(keep)
    model.zero_grad()
    model(x).gather(1, t[:, None]).sum().backward()
    h.remove()
    a = acts[0]
    w = a.grad.mean((2, 3), keepdim=True)
    cam = F.relu((w * a).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear")[:, 0].detach()


def test_gradcam_equals_a_hand_computed_reference() -> None:
    torch.manual_seed(1)
    model = TinyCNN().eval()
    x = torch.randn(5, 1, 12, 12)
    t = torch.tensor([0, 1, 2, 1, 0])
    layer = model.features[4]
    got = images.gradcam(model, layer, x, t)
    want = reference_gradcam(model, layer, x, t)
    assert got.shape == (5, 12, 12)
    assert want.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_sanity_check_maps_of_a_randomized_model_differ() -> None:
    """Adebayo et al. (2018): re-initializing the weights must change the maps a lot."""
    x, y = stripes()
    torch.manual_seed(0)
    model = fit(TinyCNN(), x, y)
    assert (model(x).argmax(1) == y).float().mean() > 0.95
    layer = model.features[4]
    trained = images.gradcam(model, layer, x, y)
    # Five re-initializations of every weight: their maps share no ranking with the trained
    # model's (single draws scatter between about -0.2 and 0.3 on 72 images).
    rhos = []
    for seed in range(5):
        torch.manual_seed(100 + seed)
        random = TinyCNN().eval()
        rhos.append(images.spearman(trained, images.gradcam(random, random.features[4], x, y)))
    assert abs(np.mean(rhos)) < 0.15, [r.mean() for r in rhos]
    # And the check can fail: the trained model's maps agree with themselves under noise.
    noisy = images.gradcam(model, layer, x + 0.01 * torch.randn_like(x), y)
    assert images.spearman(trained, noisy).mean() > 0.9


@pytest.mark.parametrize("name", models_for("images"))
def test_every_image_model_has_grad_cam_layers(name: str) -> None:
    model = MODELS[name].build(in_channels=1, num_classes=3)
    layers = images.TARGET_LAYERS[name](model)
    mods = list(model.modules())
    for layer in layers:  # each a block output: ResNet stages, or VGG's ReLU before a max-pool
        if name.startswith("vgg"):
            i = next(k for k, m in enumerate(model.features) if m is layer)
            assert isinstance(layer, nn.ReLU) and isinstance(model.features[i + 1], nn.MaxPool2d)
        assert any(m is layer for m in mods)
    # The deepest block whose map is at least MIN_SIDE a side.
    chosen = images.target_layer(name, model, (1, 64, 64))
    assert chosen is layers[0 if name.startswith("vgg") else 1]
    assert images.target_layer(name, model, (1, 128, 128)) is layers[0]


def test_top_losses_pick_most_confident_right_and_wrong() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.3, 0.7]])
    y = torch.tensor([0, 0, 0, 1, 1])
    rows = images.top_losses(probs, y)
    got = [(r["class"], r["kind"], r["index"]) for r in rows]
    assert got == [(0, "right", 0), (0, "wrong", 2), (1, "right", 4)]


@pytest.mark.parametrize("name", models_for("images"))
def test_gradcam_cells_are_drawn_where_they_look(name: str) -> None:
    """A cell of the Grad-CAM layer is drawn at the centre of its receptive field, measured as
    the centroid of |d cell / d input| over noise (a 192 px input, so that the middle cell's
    field is not cut by the border): ResNet's cells look at pixel 16k, VGG's at 16k + 7.5."""
    torch.manual_seed(0)
    model = MODELS[name].build(in_channels=1, num_classes=3).eval()
    layer = images.target_layer(name, model, (1, 64, 64))
    acts: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    x = torch.randn(2, 1, 192, 192, requires_grad=True)
    model(x)
    hook.remove()
    side = acts[0].shape[-1]
    k = side // 2
    (g,) = torch.autograd.grad(acts[0][:, :, k, k].abs().sum(), x)
    one = torch.zeros(1, 1, side, side)
    one[0, 0, k, k] = 1.0
    drawn = images.upsample(one, (192, 192), images.CELL_CENTRE[name])[0, 0]
    at = torch.arange(192.0)
    for dim in (0, 1):  # rows, then columns
        looks, shown = g.abs().sum((0, 1)).sum(1 - dim), drawn.sum(1 - dim)
        centre = float((looks * at).sum() / looks.sum())
        assert abs(float((shown * at).sum() / shown.sum()) - centre) < 1.0, (dim, centre)


def centred_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark noise (0..24 of 255) with a bright shape near the centre: a disk (class 0) or a
    cross (class 1), shifted by up to 2 px; normalized as training does (mean 0.5, std 0.5)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    x = rng.integers(0, 25, size=(n, 1, size, size)).astype(np.float32)
    y = np.arange(n) % 2
    for i in range(n):
        cy, cx = size / 2 - 0.5 + rng.integers(-2, 3, size=2)
        dy, dx = np.abs(yy - cy), np.abs(xx - cx)
        disk = np.hypot(dy, dx) < 5
        cross = ((dy < 1.5) & (dx < 7)) | ((dx < 1.5) & (dy < 7))
        x[i, 0][disk if y[i] == 0 else cross] = 230
    return torch.from_numpy(x / 255 - 0.5) / 0.5, torch.from_numpy(y)


def test_occlusion_of_centred_objects_points_at_the_centre() -> None:
    """A ResNet-18 trained on centred shapes on a dark background: occluding with mid-gray
    made a corner the hottest place of every other map; the blurred patch must not."""
    torch.manual_seed(0)
    x, y = centred_shapes(128)
    model = MODELS["resnet18"].build(in_channels=1, num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(25):
        i = torch.randint(0, len(x), (32,))
        opt.zero_grad()
        F.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    for m in model.modules():  # exact batch-norm statistics of the training images
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(x)
    model.eval()
    xt, yt = centred_shapes(6, seed=1)
    assert (model(xt).argmax(1) == yt).all()
    maps = images.occlusion(model, xt, yt)
    top = maps.flatten(1).argmax(1)
    r, c = top // 32, top % 32
    assert ((r >= 4) & (r < 28) & (c >= 4) & (c < 28)).all(), (r, c)
    pos = maps.clamp(min=0)
    assert pos[:, 8:24, 8:24].sum() > 0.8 * pos.sum()  # the central quarter holds the evidence


# --- text ---
def keyword_texts(n: int = 90, length: int = 9, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Token sequences (ids 3..29, 0 = padding) of varied length; class k holds token 3 + k."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, length + 1, (n,), generator=g)
    x = torch.randint(6, 30, (n, length), generator=g)
    y = torch.arange(n) % 3
    x[torch.arange(n), torch.randint(0, 4, (n,), generator=g)] = 3 + y
    x[torch.arange(length)[None, :] >= lengths[:, None]] = text.PAD
    return x, lengths, y


def trained_text_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x, lengths, y = keyword_texts()
    model = MODELS["bilstm"].build(vocab_size=30, num_classes=3, embed_dim=16, hidden_size=16,
                                   num_layers=1, dropout=0.0)  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x, lengths), y).backward()
        opt.step()
    return model.eval(), x, lengths, y


def test_integrated_gradients_completeness_on_a_trained_text_model() -> None:
    model, x, lengths, y = trained_text_model()
    with torch.no_grad():
        assert (model(x, lengths).argmax(1) == y).float().mean() > 0.9
    a = text.integrated_gradients(model, x, lengths, y)  # the default step count
    assert a.change.abs().min() > 0.5  # the logits really move: the check is not vacuous
    gap = a.delta.abs() / a.change.abs()
    assert gap.max() < 0.01, gap.max()
    # Captum's delta is what we say it is: sum of attributions minus the logit change.
    torch.testing.assert_close(a.attr.sum(1).double() - a.change, a.delta, atol=1e-4, rtol=0)
    assert (a.attr[x == text.PAD] == 0).all()
    # The keyword carries the decision: it gets the largest attribution in most texts.
    key = (x == (3 + y)[:, None]).float()
    assert ((a.attr * key).sum(1) >= a.attr.max(1).values - 1e-9).float().mean() > 0.8
    # Without the refinement 50 steps leave some texts far off; it redoes only those.
    fixed = text.integrated_gradients(model, x, lengths, y, max_steps=50)
    assert (fixed.delta.abs() / fixed.change.abs()).max() > 0.05
    assert (a.steps == 50).sum() > len(x) / 2 and a.steps.max() > 50


def test_class_tokens_rank_by_total_attribution() -> None:
    a = text.Attribution(
        tokens=torch.tensor([[5, 6, 0], [5, 7, 8]]),
        attr=torch.tensor([[0.5, -0.1, 0.0], [0.2, 0.9, -0.3]]),
        delta=torch.zeros(2, dtype=torch.float64),
        change=torch.ones(2, dtype=torch.float64),
        steps=torch.full((2,), 50),
    )
    tops = text.class_tokens(a, torch.tensor([2, 3]), torch.tensor([1, 1]), 2, lambda t: f"w{t}")
    assert tops[0] == []
    assert [(r["token"], r["attribution"], r["texts"]) for r in tops[1]] == [
        ("w7", 0.9, 1), ("w5", 0.7, 2),
    ]  # fmt: skip


def test_class_tokens_count_a_text_once_however_often_it_repeats_a_token() -> None:
    a = text.Attribution(
        tokens=torch.tensor([[5, 5, 5, 6], [5, 6, 0, 0]]),
        attr=torch.tensor([[0.3, 0.2, 0.1, 0.4], [-0.05, 0.0, 0.0, 0.0]]),
        delta=torch.zeros(2, dtype=torch.float64),
        change=torch.ones(2, dtype=torch.float64),
        steps=torch.full((2,), 50),
    )
    tops = text.class_tokens(a, torch.tensor([4, 2]), torch.tensor([0, 0]), 1, lambda t: f"w{t}")
    # w5 pushes three times in the first text and away in the second: one text, not three.
    assert [(r["token"], r["attribution"], r["texts"]) for r in tops[0]] == [
        ("w5", 0.55, 1), ("w6", 0.4, 1),
    ]  # fmt: skip
    page = text.render_html([], {"c": tops[0]}, 50)
    assert page.count("(1 text)") == 2 and "texts)" not in page


# --- sales ---
@pytest.mark.parametrize(
    ("step_days", "season", "horizon", "season_ago", "target"),
    [
        (7, 52, 1, "same week last year", "the week being forecast"),
        (7, 52, 39, "same week last year", "the week being forecast"),
        (1, 7, 1, "same day last week", "the day being forecast"),
        (1, 7, 28, "same day last week or earlier", "the day being forecast"),
        (1, 365, 1, "same day last year", "the day being forecast"),
        (30, 12, 1, "same month last year", "the month being forecast"),
        (28, 13, 1, "same 4-week period last year", "the 4-week period being forecast"),
        (1, 5, 1, "5 steps earlier", "the day being forecast"),
        (3, 122, 1, "122 steps earlier", "the 3-day step being forecast"),
    ],
)
def test_wording_follows_the_step_and_season(
    step_days: int, season: int, horizon: int, season_ago: str, target: str
) -> None:
    w = step_words(step_days, season, horizon)
    assert (w.season_ago, w.target) == (season_ago, target)


def test_feature_groups_cover_every_input_by_meaning() -> None:
    from archlab.data.sales_horizon import HorizonFeaturizer

    covs = ("Temperature", "MarkDown1", "MarkDown1_missing", "CPI")
    fz = HorizonFeaturizer(
        series_keys=("Store", "Dept"), series=((1, 1),), offset=(0.0,), scale=(1.0,),
        key_vocab=((1,), (1,)), covariates=covs, known_covariates=(), cov_mean=(0.0,) * 4,
        cov_std=(1.0,) * 4, step_days=7, season=52, window=8, horizon=1, events=("2010-04-04",),
        min_scale=1.0,
    )  # fmt: skip
    names = fz.feature_names
    groups = sales_common.feature_groups(names, covs, ("MarkDown1",), step_words(7, 52))
    assert sorted(i for c in groups.values() for i in c) == list(range(len(names)))
    assert [names[i] for i in groups["markdowns"]] == ["MarkDown1", "MarkDown1_missing"]
    assert [names[i] for i in groups["event flags"]] == ["event", "ref_event"]
    assert [names[i] for i in groups["covariates"]] == ["Temperature", "CPI"]
    assert "sales" in [names[i] for i in groups["recent sales"]]
    assert "ref_sales" in [names[i] for i in groups["same week last year"]]
    assert "holiday flag" in groups  # data without a holiday column: its zero flag is no group
    words = step_words(7, 52)
    assert "holiday flag" not in sales_common.feature_groups(names, covs, (), words, holiday=False)


def test_horizon_feature_groups_by_role_and_daily_wording() -> None:
    from archlab.data.sales_horizon import HorizonFeaturizer

    fz = HorizonFeaturizer(
        series_keys=("store_nbr",), series=((1,),), offset=(0.0,), scale=(1.0,),
        key_vocab=((1,),), covariates=("onpromotion", "oil"), known_covariates=("onpromotion",),
        cov_mean=(0.0, 0.0), cov_std=(1.0, 1.0), step_days=1, season=7, window=7, horizon=14,
        events=(), min_scale=1.0, level_steps=7, level_weight=0.5,
    )  # fmt: skip
    names = fz.feature_names
    words = step_words(fz.step_days, fz.season, fz.horizon)
    groups = sales_common.feature_groups(names, fz.covariates, (), words, fz.known_covariates)
    assert sorted(i for c in groups.values() for i in c) == list(range(len(names)))
    named = {g: [names[i] for i in c] for g, c in groups.items()}
    assert named["known covariates"] == ["onpromotion"]
    assert named["past-only covariates"] == ["oil"]
    assert named["same day last week or earlier"] == [
        "ref_sales", "ref_observed", "ref_smoothed", "ref_group_smoothed"
    ]  # fmt: skip
    assert named["level shift"] == ["level_shift"]
    assert "last year" not in " ".join(groups)


def test_permutation_of_an_ignored_feature_leaves_wmae_unchanged() -> None:
    """Columns 3-4 reach the network through zeroed input weights: shuffling them is a no-op,
    while shuffling the column the target is made of costs a lot."""
    from archlab.metrics import wmae

    g = torch.Generator().manual_seed(0)
    n, steps, feats = 400, 6, 5
    x = torch.randn((n, steps, feats), generator=g)
    y = 2 * x[:, -1, 0] + x[:, -2, 1]
    torch.manual_seed(0)
    model = MODELS["gru"].build(input_size=feats, hidden_size=8, num_layers=1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(60):
        opt.zero_grad()
        F.l1_loss(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        model.rnn.weight_ih_l0[:, 3:] = 0.0
    targets = torch.stack([y, torch.ones(n), torch.zeros(n), torch.zeros(n)], 1)
    data = SalesTensors(x, torch.zeros((n, 0), dtype=torch.long), torch.zeros(n), targets)
    hol = np.zeros(n, bool)

    def score(out: torch.Tensor) -> float:
        return wmae(y.double().numpy(), out.double().numpy(), hol)

    imp = sales_common.permutation_importance(
        lambda x, cats, base: base + model.eval()(x, cats),
        data,
        {"used": [0], "ignored": [3, 4]},
        score,
    )
    ref = imp["_reference"]["wmae"]
    assert abs(imp["ignored"]["wmae_rise"]) < 1e-6 * ref
    assert imp["used"]["wmae_rise"] > 0.5 * ref
    attr, _ = sales_common.integrated_gradients(model, x[:50], (data.cats[:50],))
    assert attr.shape == (50, steps, feats) and (attr[:, :, 3:] == 0).all()
    assert attr[:, :, 0].abs().sum() > 0


class _ResidualTask:
    """A task's step as the sales tasks define it: the base plus the network's correction."""

    @staticmethod
    def step(model: nn.Module, batch: tuple) -> tuple[torch.Tensor, object]:
        x, cats, base, y = batch
        return base + model(x, cats), y


def test_horizon_explanations_rank_a_planted_signal_first(tmp_path: Path) -> None:
    """An H-step network trained on targets made of column 2 at the future steps (and a little
    of column 0 at the origin): shuffling column 2 raises the horizon WMAE most, at every
    step, and IG gives it the largest attribution at every step; columns 1 and 3 are noise."""
    from archlab.metrics import wmae

    g = torch.Generator().manual_seed(0)
    n, W, H, feats = 300, 4, 3, 4
    x = torch.randn((n, W + H, feats), generator=g)
    y = 2 * x[:, W:, 2] + 0.5 * x[:, W - 1 : W, 0]  # (n, H)
    torch.manual_seed(0)
    model = MODELS["gru"].build(input_size=feats, hidden_size=16, num_layers=1, horizon=H)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(150):
        opt.zero_grad()
        F.l1_loss(model(x), y).backward()
        opt.step()
    model.eval()
    one, zero = torch.ones(n, H), torch.zeros(n, H)
    targets = SalesTargets(y, one, zero, zero, observed=one, origin=zero).pack()
    data = SalesTensors(x, torch.zeros((n, 0), dtype=torch.long), torch.zeros(n, H), targets)
    hol = np.zeros(n, bool)

    def score(out: torch.Tensor) -> list[float]:
        a, p = y.double().numpy(), out.double().numpy()
        return [wmae(a.ravel(), p.ravel(), np.zeros(n * H, bool)),
                *(wmae(a[:, h], p[:, h], hol) for h in range(H))]  # fmt: skip

    groups = {"origin": [0], "noise": [1, 3], "planted": [2]}
    task = _ResidualTask()
    imp = sales_common.permutation_importance(
        sales_common.Forecast(model, task), data, groups, score
    )
    ref = imp.pop("_reference")
    assert len(ref["wmae_by_step"]) == H
    assert max(imp, key=lambda k: imp[k]["wmae_rise"]) == "planted"
    for h in range(H):
        assert max(imp, key=lambda k: imp[k]["wmae_rise_by_step"][h]) == "planted"
    req = ExplainRequest(run_dir=tmp_path, out=tmp_path, steps=16)
    part = SalesTensors(*(t[:40] for t in data))
    grid, gaps = sales_horizon._ig_by_step(req, model, task, part, groups, signed=False)
    assert grid.shape == (3, H) and gaps.shape == (40 * H,)
    assert (grid[2] > grid[0]).all() and (grid[2] > grid[1]).all()
    assert float(gaps.max()) < 0.01


# --- end to end: the CLI on tiny runs ---
def _train(capsys: pytest.CaptureFixture, *args: str) -> Path:
    assert main(["train", *args, *QUIET]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def _explain(capsys: pytest.CaptureFixture, *args: str) -> tuple[Path, dict]:
    assert main(["explain", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    out = Path(lines[-1])
    summary = json.loads((out / "explain.json").read_text())
    assert [out / f for f in summary["files"]] == [Path(x) for x in lines[:-1]]
    for f in summary["files"]:
        assert (out / f).stat().st_size > 0, f
    return out, summary


def _fails(capsys: pytest.CaptureFixture, args: list[str], *words: str) -> None:
    assert main(["explain", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("archlab: error:"), err
    for w in words:
        assert w in err[0], err[0]


def test_explain_image_run(tmp_path: Path, image_folder: Path, capsys) -> None:
    run = _train(capsys, "--preset", "images-resnet18-smoke", "--data", str(image_folder),
                 "--out", str(tmp_path / "runs"))  # fmt: skip
    out, s = _explain(capsys, str(run), "--method", "gradcam,occlusion")
    assert out == run / "explain"
    assert s["layer"] == "layer2"  # 32 px: layer4 is 1x1, layer3 2x2
    assert {"gradcam_top_losses.png", "occlusion_top_losses.png", "gradcam_class_means.png"} <= set(
        s["files"]
    )
    assert -1 <= s["gradcam_occlusion_spearman_mean"] <= 1
    assert {r["kind"] for r in s["top_losses"]} <= {"right", "wrong"}
    img = next((image_folder / "dog").iterdir())
    out2, s2 = _explain(capsys, str(run), str(img), "--out", str(tmp_path / "mine"))
    assert out2 == tmp_path / "mine" and s2["files"] == ["gradcam_inputs.png"]
    assert s2["inputs"][0]["input"] == str(img)
    # A folder: each image under it, as predict reads it.
    _, s3 = _explain(capsys, str(run), str(image_folder / "dog"), "--out", str(tmp_path / "d"))
    assert [r["input"] for r in s3["inputs"]] == sorted(
        str(p) for p in (image_folder / "dog").iterdir()
    )
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    _fails(capsys, [str(run), str(bad)], "notes.txt", "cannot read image")
    _fails(capsys, [str(run), "--method", "ig"], "--method ig", "images", "gradcam")


def test_explain_text_run(tmp_path: Path, capsys) -> None:
    from tests.helpers import write_tweets

    tweets = write_tweets(tmp_path / "tweets.csv")
    run = _train(capsys, "--preset", "text-bilstm-smoke", "--data", str(tweets),
                 "--out", str(tmp_path / "runs"))  # fmt: skip
    out, s = _explain(capsys, str(run), "--steps", "16", "--top", "1")
    assert s["steps"] == 16 and s["files"] == ["ig_texts.html", "ig_class_tokens.png"]
    assert s["texts"] and all(t["completeness_gap_relative"] < 0.01 for t in s["texts"])
    assert all(t["steps"] >= 16 for t in s["texts"])
    assert set(s["class_tokens"]) == {"negative", "neutral", "positive"}
    page = (out / "ig_texts.html").read_text()
    assert "<span style=" in page and "Tokens that push toward each class" in page
    _, s2 = _explain(capsys, str(run), "great flight thanks", "--out", str(tmp_path / "mine"))
    assert s2["texts"][0]["tokens"][:2] == ["great", "flight"]
    other = tmp_path / "other.csv"
    other.write_text("words,label\nhello,positive\n")
    _fails(capsys, [str(run), "--file", str(other)], "other.csv", "text")
    _fails(capsys, [str(run), "--method", "gradcam"], "--method gradcam", "text", "valid: ig")
    _fails(capsys, [str(run), "--steps", "1"], "--steps 1")


def test_explain_sales_run(tmp_path: Path, capsys) -> None:
    from tests.helpers import write_panel

    panel = write_panel(tmp_path / "walmart")
    run = _train(capsys, "--preset", "sales-gru-smoke", "--data", str(panel),
                 "--set", "data.test_steps=8", "--set", "data.val_steps=4",
                 "--out", str(tmp_path / "runs"))  # fmt: skip
    _, s = _explain(capsys, str(run), "--series", "Store=2,Dept=3", "--steps", "16")
    assert s["files"] == ["ig_feature_groups.png", "ig_series_steps.png",
                          "permutation_importance.png"]  # fmt: skip
    assert s["framing"] == "forecast" and s["horizon"] == 1
    assert s["series"]["label"] == "Store=2,Dept=3" and s["series"]["samples"] == 8
    assert s["test_wmae"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["test_wmae"]
    )
    assert set(s["permutation"]) == {*s["groups"], "series identity"}
    assert "same week last year" in s["groups"] and s["words"]["step"] == "week"
    assert s["ig_completeness_gap_relative_max"] < 0.01
    _, s2 = _explain(capsys, str(run), "--method", "permutation", "--out", str(tmp_path / "p"))
    assert s2["files"] == ["permutation_importance.png"]
    # A history CSV, as predict takes it: one explained next-week forecast per series.
    import pandas as pd

    hist = pd.read_csv(panel / "train.csv")
    hist[hist.Store == 2].to_csv(tmp_path / "history.csv", index=False)
    _, s3 = _explain(capsys, str(run), str(tmp_path / "history.csv"), "--out", str(tmp_path / "h"))
    assert [r["Dept"] for r in s3["inputs"]] == [1, 2, 3] and len(s3["files"]) == 3
    _, task, model = runner.restore_task(run)
    want = [r["forecast"] for r in task.predict(model, [str(tmp_path / "history.csv")])]
    assert [r["forecast"] for r in s3["inputs"]] == pytest.approx(want)
    assert "no column(s) Temperature" in capsys.readouterr().err  # read as training means
    hist.drop(columns="Weekly_Sales").to_csv(tmp_path / "bad.csv", index=False)
    _fails(capsys, [str(run), str(tmp_path / "bad.csv")], "bad.csv", "Weekly_Sales")
    _fails(capsys, [str(run), str(tmp_path / "history.csv"), "--method", "permutation"],
           "--method permutation")  # fmt: skip
    bad = [str(run), "--series", "Store=9,Dept=1", "--out", str(tmp_path / "bad")]
    _fails(capsys, bad, "Store=9", "no such series")
    assert not (tmp_path / "bad").exists()  # no empty folder left behind
    shop = [str(run), "--series", "Shop=1"]
    _fails(capsys, shop, "Shop=1", "Store, Dept", "e.g. --series Store=")
    _fails(capsys, [str(run), "--method", "gradcam"], "--method gradcam", "sales")


def test_series_values_may_hold_commas() -> None:
    # "Main St, Springfield", the largest series, crashed explain with a traceback (its label
    # was joined with commas and split again), and --series could not name it.
    import pandas as pd

    from archlab.explain.sales_common import series_rows

    shops = ["Main St, Springfield", "Main St, Springfield", "North", "x"]
    rows = pd.DataFrame({"shop": shops, "region": ["a, b", "a, b", "c", "c"],
                         "actual": [9.0, 9.0, 5.0, 1.0]})  # fmt: skip
    one = rows.drop(columns="region")
    label, idx = series_rows(one, ("shop",), "")
    assert label == "shop=Main St, Springfield" and idx.tolist() == [0, 1]
    assert series_rows(one, ("shop",), "shop=Main St, Springfield")[1].tolist() == [0, 1]
    keys = ("shop", "region")
    assert series_rows(rows, keys, "")[1].tolist() == [0, 1]
    got = series_rows(rows, keys, "shop=Main St, Springfield,region=a, b")
    assert got == ("shop=Main St, Springfield,region=a, b", got[1]) and got[1].tolist() == [0, 1]
    assert series_rows(rows, keys, "region=c, shop=North")[1].tolist() == [2]


def test_explain_needs_a_finished_run(tmp_path: Path, image_folder: Path, capsys) -> None:
    _fails(capsys, [str(tmp_path)], "not a run directory")
    # A run stopped before its test: config, weights and checkpoint, no metrics.json.
    run = _train(capsys, "--preset", "images-resnet18-smoke", "--data", str(image_folder),
                 "--out", str(tmp_path / "runs"))  # fmt: skip
    (run / "metrics.json").unlink()
    _fails(capsys, [str(run)], str(run), "the run has not finished (no complete metrics.json)")
    assert not (run / "explain").exists()


def _daily_run(tmp_path: Path, capsys: pytest.CaptureFixture, *sets: str) -> tuple[Path, Path]:
    from tests.helpers import write_daily_panel

    path = write_daily_panel(tmp_path / "transactions.csv")  # 3 stores x 120 days
    goal = ["data.target=transactions", "data.date_column=date", "data.series_keys=store_nbr"]
    tiny = ["train.max_steps_per_epoch=2", *sets]
    argv = ["--task", "sales", "--model", "gru", "--data", str(path), "--epochs", "1"]
    run = _train(capsys, *argv, "--out", str(tmp_path / "runs"),
                 *(f"--set={kv}" for kv in goal + tiny))  # fmt: skip
    return path, run


def test_explain_horizon_run_per_step_and_group_in_days(tmp_path: Path, capsys) -> None:
    # The network's whole correction (validation could choose 0, leaving nothing to attribute).
    path, run = _daily_run(tmp_path, capsys, "data.horizon=14", "data.val_steps=7",
                           "data.window=7", "data.correction_scale=1")  # fmt: skip
    _, s = _explain(capsys, str(run), "--steps", "8", "--series", "store_nbr=2")
    assert s["framing"] == "horizon" and s["horizon"] == 14 and s["n_test"] == 3
    assert s["files"] == ["ig_horizon_steps.png", "ig_feature_groups.png",
                          "ig_series_horizon.png", "permutation_importance.png",
                          "permutation_by_step.png"]  # fmt: skip
    assert s["words"]["target"] == "the day being forecast"
    assert "same day last week or earlier" in s["groups"]
    assert "last year" not in json.dumps(s) and "week being" not in json.dumps(s)
    assert set(s["ig_by_step"]) == set(s["groups"])
    assert all(len(v) == 14 for v in s["ig_by_step"].values())
    assert s["ig_completeness_gap_relative_max"] < 0.01
    assert "correction scale is 0" not in s.get("note", "")  # the network moves its forecast
    if (w := json.loads((run / "fitted.json").read_text())["chosen"].get("blend_weight", 1)) < 1:
        assert f"predict and serve answer its blend with the mstl_ets peer ({w:g} x" in s["note"]
    assert any(x > 0 for v in s["ig_by_step"].values() for x in v)
    assert s["series"]["label"] == "store_nbr=2"
    assert all(len(v) == 14 for v in s["series"]["by_group_and_step"].values())
    m = json.loads((run / "metrics.json").read_text())
    assert s["test_wmae"] == pytest.approx(m["test_wmae"])
    assert s["test_wmae_by_step"] == pytest.approx(m["test_wmae_by_step"])
    assert set(s["groups"]) <= set(s["permutation"])
    assert all(len(v["wmae_rise_by_step"]) == 14 for v in s["permutation"].values())
    _fails(capsys, [str(run), str(path)], "covers next-step runs", "horizon")
    _fails(capsys, [str(run), "--series", "store_nbr=9"], "store_nbr=9", "no such series")


def test_explain_says_why_a_base_only_horizon_forecast_has_no_attributions(
    tmp_path: Path, capsys
) -> None:
    _, run = _daily_run(tmp_path, capsys, "data.horizon=14", "data.val_steps=7",
                        "data.window=7", "data.correction_scale=0")  # fmt: skip
    assert main(["explain", str(run), "--steps", "8", "--method", "ig"]) == 0
    captured = capsys.readouterr()
    s = json.loads((Path(captured.out.strip().splitlines()[-1]) / "explain.json").read_text())
    assert s["note"].startswith("the run's correction scale is 0")
    assert f"archlab: note: {s['note']}" in captured.err
    assert all(x == 0 for v in s["ig_by_step"].values() for x in v)


def test_explain_next_step_run_on_daily_data_says_days(tmp_path: Path, capsys) -> None:
    _, run = _daily_run(tmp_path, capsys)
    _, s = _explain(capsys, str(run), "--method", "ig", "--steps", "8", "--limit", "16")
    assert s["words"] == {"step": "day", "season_ago": "same day last week",
                          "target": "the day being forecast"}  # fmt: skip
    assert "same day last week" in s["groups"] and "last year" not in json.dumps(s)


def test_explain_parity_run_per_feature(tmp_path: Path, capsys) -> None:
    from tests.helpers import write_panel

    panel = write_panel(tmp_path / "walmart")
    run = _train(capsys, "--preset", "sales-rnn-parity-smoke", "--data", str(panel),
                 "--out", str(tmp_path / "runs"))  # fmt: skip
    _, s = _explain(capsys, str(run), "--steps", "8")
    assert s["framing"] == "parity"
    assert s["files"] == ["ig_features.png", "permutation_importance.png"]
    fitted = json.loads((run / "fitted.json").read_text())
    features = [*fitted["numeric_features"], *fitted["onehot_features"]]
    assert sorted(s["permutation"]) == sorted(s["ig_mean_abs_sales"]) == sorted(features)
    assert s["groups"]["Store"] == ["Store=1", "Store=2"]
    m = json.loads((run / "metrics.json").read_text())
    assert s["test_wmae"] == pytest.approx(m["test_wmae"])
    assert s["ig_completeness_gap_relative_max"] < 0.01


def test_report_names_the_horizon_and_each_framing(tmp_path: Path) -> None:
    from archlab.report.explanations import explanation_blocks

    exps = []
    for key, extra in (("h39", {"framing": "horizon", "horizon": 39}), ("parity", {})):
        where = tmp_path / "sales" / key / "s0" / "explain"
        where.mkdir(parents=True)
        s = {"task": "sales", "methods": ["permutation"], "files": [], "test_wmae": 1500.0,
             "permutation": {"recent sales": {"wmae_rise": 80.0, "std": 1.0},
                             "holiday flag": {"wmae_rise": 2.0, "std": 0.5}}, **extra}  # fmt: skip
        (where / "explain.json").write_text(json.dumps(s))
        exps.append({"kind": "run", "part": "sales", "key": key, "title": key,
                     "runs": {"": ["s0"]}})  # fmt: skip
    text = [b.content for b in explanation_blocks(tmp_path, tmp_path, exps) if b.kind == "p"]
    assert "raises the 39-step test WMAE most: by 80.0 from 1,500.0" in text[0]
    assert "Shuffling `recent sales` raises test WMAE most" in text[1]


# --- figure and page layout with many or long class names ---
LONG = ["M" * 80, "class_014_eeeeeeeeeeeeeeeeeee", "cancelled_flight_rebooking", "猫ちゃん中文标签"]


def _captured(monkeypatch: pytest.MonkeyPatch) -> list:
    """Figures the explain modules would save (they import archlab.plots._save when drawing),
    kept open for inspection."""
    from archlab import plots

    figs: list = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig))
    return figs


def _collisions(fig) -> list[tuple[str, str]]:
    """Titles of drawn panels whose boxes (title, tick labels, axes) overlap another panel's."""
    import itertools

    _draw(fig)
    r = fig.canvas.get_renderer()
    boxes = [(ax.get_title(), ax.get_tightbbox(r).padded(-1)) for ax in fig.axes if ax.axison]
    return [(a, b) for (a, x), (b, y) in itertools.combinations(boxes, 2) if x.overlaps(y)]


def _draw(fig) -> None:
    """Lay ``fig`` out as saving would; the CJK names' missing glyphs are _save's to report."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.canvas.draw()


def _rows_and_cols(fig) -> tuple[int, int]:
    """How many rows and columns of drawn or captioned panels the figure has."""
    used = [ax for ax in fig.axes if ax.axison or ax.texts]
    return len({round(ax.get_position().y0, 3) for ax in used}), len(
        {round(ax.get_position().x0, 3) for ax in used}
    )


def _short(name: str, width: int) -> str:
    from archlab.plots import short_label

    return short_label(name, width)


def _class_tops(n: int, with_tokens: set[int]) -> list[list[dict]]:
    """class_tokens' output for ``n`` classes: 12 long tokens toward each of ``with_tokens``."""
    word = "superlongwordwithoutspaces" * 3
    return [
        [{"token": f"{word}{k}", "attribution": 1.0 / (k + 1), "texts": k + 2} for k in range(12)]
        if c in with_tokens
        else []
        for c in range(n)
    ]


def test_class_tokens_plot_wraps_counts_and_says_why_a_panel_is_empty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figs = _captured(monkeypatch)
    names = [*LONG, *(f"class_{i:03d}_{'x' * i}" for i in range(8))]
    tops = _class_tops(12, {0, 1, 2, 5, 9})
    predicted = [4 if tops[c] else (2 if c == 3 else 0) for c in range(12)]
    text.class_tokens_plot(tops, names, tmp_path / "t.png", predicted=predicted)
    fig = figs[0]
    # Was one row of 12 panels, 3.6 in each, with the long names over their neighbours.
    assert _rows_and_cols(fig) == (3, text.PANEL_COLS)
    assert fig.get_size_inches()[0] < 17
    assert _collisions(fig) == []
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(drawn) == 5 and all(len(ax.get_title()) <= 22 for ax in drawn)
    labels = [t.get_text() for t in drawn[0].get_yticklabels()]
    assert labels[-1] == "superlongword… (2)"  # the token cut, with its texts
    empty = {ax.get_title(): ax.texts[0].get_text() for ax in fig.axes if ax.texts}
    assert "predicted for 2 texts" in empty["猫ちゃん中文标签"]
    assert "no explained test text" in empty["class_000_"]


def test_class_tokens_plot_leaves_out_empty_classes_past_max_panels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figs = _captured(monkeypatch)
    names = [f"{LONG[i % 4]}{i}" for i in range(100)]
    text.class_tokens_plot(_class_tops(100, {3, 40, 41, 77, 99}), names, tmp_path / "t.png")
    fig = figs[0]
    assert [ax.get_title() for ax in fig.axes if ax.axison] == [
        _short(names[c], 22) for c in (3, 40, 41, 77, 99)
    ]
    assert fig.get_size_inches()[0] < 17 and _collisions(fig) == []
    assert "95 of 100 classes have no token" in fig.get_supxlabel()


def test_class_table_is_a_row_per_class_and_breaks_words_on_a_phone() -> None:
    names = [f"{LONG[i % 4]}_{i}" for i in range(40)]
    tops = dict(zip(names, _class_tops(40, {1, 7, 30}), strict=True))
    predicted = {n: (3 if tops[n] else int(i == 2)) for i, n in enumerate(names)}
    page = text.render_html([], tops, 50, predicted)
    assert "<meta name='viewport' content='width=device-width" in page
    assert "overflow-wrap:anywhere" in page
    # One row per class with tokens (was one row, one column per class: 12,250 px at 40).
    assert page.count("<tr>") == 1 + 3 and page.count("</tr>") == 4
    assert f"<tr><th>{names[7]}</th><td>" in page
    assert "predicted as any of these 36 classes:" in page
    assert "Texts were predicted as this class, but no token" in page
    for n in names:  # every class named once: in its row or in a list of empty ones
        assert page.count(f"<b>{n}</b>") + page.count(f"<th>{n}</th>") == 1


def _top_loss_rows(classes: list[int]) -> list[dict]:
    """top_losses' rows for ``classes``: a right and a wrong one each, less every fourth."""
    return [
        {
            "class": c,
            "kind": kind,
            "index": 2 * i + j,
            "pred": (c + j) % 100,
            "p_pred": 0.9,
            "p_true": 0.9 - j / 2,
        }
        for i, c in enumerate(classes)
        for j, kind in enumerate(("right", "wrong"))
        if (c + j) % 4  # some classes have no right one, some no wrong one
    ]


def test_top_losses_grid_wraps_and_leaves_out_classes_without_images(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figs = _captured(monkeypatch)  # drawn through archlab.plots._save (its missing-glyph note)
    names = [f"{LONG[i % 4]}{i}" for i in range(100)]
    rows = _top_loss_rows(list(range(0, 100, 3)))
    pictures = np.random.default_rng(0).random((2 * 34, 1, 8, 8))
    images.top_losses_grid(pictures, pictures[:, 0], rows, names, tmp_path / "g.png", "x")
    fig = figs[0]
    # Was one row per class: 100 rows of 2.3 in (25,000 px), most of them "no right" blanks.
    assert _rows_and_cols(fig) == (-(-len(rows) // images.PAIRS_PER_ROW),
                                   2 * images.PAIRS_PER_ROW)  # fmt: skip
    assert sum(ax.axison for ax in fig.axes) == 2 * len(rows)
    assert not any(ax.texts for ax in fig.axes)  # no "no right prediction" blanks
    assert "66 of 100 classes have no test image" in fig.get_supxlabel()
    assert _collisions(fig) == []
    assert fig.axes[0].get_title() == f"true {'M' * 15}…\npred class_014_eeeee… 0.90"


def test_class_means_are_a_grid_with_cut_titles(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figs = _captured(monkeypatch)
    names = [f"{LONG[i % 4]}{i}" for i in range(40)]
    y = np.arange(40).repeat(2)
    y[y == 5] = 6  # class 5 has no test image
    pictures = np.random.default_rng(0).random((80, 1, 8, 8))
    images.class_means(pictures, pictures[:, 0], y, names, tmp_path / "m.png")
    fig = figs[0]
    # Was one row of 40 panels (8,283 px wide) with long titles over their neighbours.
    assert _rows_and_cols(fig) == (5, images.MEANS_PER_ROW)
    assert _collisions(fig) == []
    assert fig.axes[5].get_title() == f"{_short(names[6], images.NAME_WIDTH)} (n=4)"
    assert "1 of 40 classes have no explained test image" in fig.get_supxlabel()


def test_sample_grid_titles_cut_long_names_clear_of_their_neighbours(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from archlab import plots

    figs = _captured(monkeypatch)
    names = [*LONG, "WWWWWWWWWWWWWWWWWWWW", "a"]
    k, t = 16, np.arange(16) % 6
    plots.image_grid(np.zeros((k, 1, 32, 32), np.uint8), t, (t + 1) % 6, np.full(k, 0.99),
                     names, tmp_path / "s.png")  # fmt: skip
    fig = figs[0]
    _draw(fig)
    r = fig.canvas.get_renderer()
    titles = [ax.title.get_window_extent(r) for ax in fig.axes if ax.get_title()]
    assert len(titles) == k
    assert not any(a.overlaps(b) for i, a in enumerate(titles) for b in titles[i + 1 :])
    assert fig.axes[0].get_title() == f"true {'M' * 10}…\npred class_014_… (0.99)"
