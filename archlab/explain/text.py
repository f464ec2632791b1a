"""Text explanations: integrated gradients on the embedding layer against an all-padding
baseline, per-token highlighted HTML, the completeness gap of every explained text, and over
the test split the tokens that push hardest toward each class."""

from __future__ import annotations

import html
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from archlab.data.text import UNK
from archlab.errors import ArchlabError
from archlab.explain import ExplainRequest, frozen, subset
from archlab.tasks.text_blend import explain_note
from archlab.utils import count

PAD = 0  # the tokenizer's [PAD] id; its embedding row is zero (padding_idx), so is the baseline
CELLS_PER_PASS = 4096  # (text x IG step) sequences per forward/backward pass
TOLERANCE = 0.01  # completeness: |sum(attr) - (f(x) - f(baseline))| <= 1% of |f(x) - f(b)|
MAX_STEPS = 1024  # refinement stops here (the gap is then reported as it is)
# ig_class_tokens.png: panels a row, and past this many classes only those with tokens are
# drawn (at 100 classes one row of every class was 30,000 px wide, most panels empty).
PANEL_COLS = 4
MAX_PANELS = 24


class Attribution(NamedTuple):
    """Integrated gradients of each text toward its target class."""

    tokens: torch.Tensor  # (N, T) token ids, right-padded
    attr: torch.Tensor  # (N, T) attribution per token (0 on padding)
    delta: torch.Tensor  # (N,) sum(attr) - (f(x) - f(baseline)): the completeness gap, signed
    change: torch.Tensor  # (N,) f(x) - f(baseline), the logit change being explained
    steps: torch.Tensor  # (N,) IG steps each text needed to meet the tolerance


def integrated_gradients(
    model: nn.Module,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    target: torch.Tensor,
    steps: int = 50,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_STEPS,
) -> Attribution:
    """IG of the ``target`` logit w.r.t. the embedding output, per token summed over its
    dimensions. The baseline is every token replaced by padding, at the same lengths.

    A trained LSTM's gates saturate along the path from the zero embedding, so a fixed step
    count can leave some texts far from completeness (tens of percent at 50 steps on a tiny
    trained model). Texts whose gap exceeds ``tolerance`` of their logit change are redone
    with twice the steps, up to ``max_steps``; ``steps`` records what each text needed.
    """
    n = len(tokens)
    attr = torch.zeros(tokens.shape, dtype=torch.float32)
    delta = torch.zeros(n, dtype=torch.float64)
    used = torch.zeros(n, dtype=torch.long)
    change = _logit_change(model, tokens, lengths, target)
    todo = torch.arange(n)
    while len(todo):
        a, d = _ig_pass(model, tokens[todo], lengths[todo], target[todo], steps)
        attr[todo], delta[todo], used[todo] = a, d, steps
        # An absolute floor: a text whose logit does not move has nothing to complete.
        bad = d.abs() > tolerance * change[todo].abs() + 1e-6
        if steps >= max_steps:
            break
        todo, steps = todo[bad], min(2 * steps, max_steps)
    return Attribution(tokens, attr, delta, change, used)


def _ig_pass(
    model: nn.Module, tokens: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One IG evaluation at ``steps`` Gauss-Legendre nodes: (N, T) attributions, (N,) deltas.

    All IG steps of a chunk of equal-length texts run as one batch (no padding at all), never
    a Python step per token.
    """
    model.eval()
    device = next(model.parameters()).device
    lig = LayerIntegratedGradients(model, model.embedding)
    n = len(tokens)
    attr = torch.zeros(tokens.shape, dtype=torch.float32)
    delta = torch.zeros(n, dtype=torch.float64)
    chunk = max(1, CELLS_PER_PASS // steps)
    # One pass per run of equal lengths: a packed batch whose sequences all have one length
    # runs PyTorch's CPU LSTM about 3x faster (backward) than a ragged one.
    passes = [j[k : k + chunk] for j in _equal_lengths(lengths) for k in range(0, len(j), chunk)]
    # cuDNN's RNN backward refuses eval mode; the native kernels compute the same thing.
    with torch.backends.cudnn.flags(enabled=False), frozen(model):
        for j in passes:
            width = int(lengths[j].max())
            x = tokens[j, :width].to(device)
            a, d = lig.attribute(
                x,
                baselines=torch.full_like(x, PAD),
                target=target[j].to(device),
                additional_forward_args=(lengths[j],),
                n_steps=steps,
                return_convergence_delta=True,
            )
            attr[j, :width] = a.sum(-1).detach().float().cpu()
            delta[j] = d.detach().double().cpu()
    return attr, delta


def _equal_lengths(lengths: torch.Tensor) -> list[torch.Tensor]:
    """Indices grouped by length, longest first."""
    values, inverse = torch.unique(lengths, return_inverse=True)
    return [torch.nonzero(inverse == k).flatten() for k in range(len(values) - 1, -1, -1)]


def _logit_change(
    model: nn.Module, tokens: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """(N,) f(x) - f(baseline) of the target logit."""
    model.eval()
    device = next(model.parameters()).device
    change = torch.zeros(len(tokens), dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(tokens), 256):
            j = torch.arange(i, min(i + 256, len(tokens)))
            width = int(lengths[j].max())
            x = tokens[j, :width].to(device)
            t = target[j].to(device)[:, None]
            fx = model(x, lengths[j]).gather(1, t)[:, 0]
            fb = model(torch.full_like(x, PAD), lengths[j]).gather(1, t)[:, 0]
            change[j] = (fx - fb).double().cpu()
    return change


def class_tokens(
    a: Attribution,
    lengths: torch.Tensor,
    target: torch.Tensor,
    n_classes: int,
    id_to_token: Any,
    k: int = 15,
) -> list[list[dict[str, Any]]]:
    """Per class: the tokens with the largest total attribution toward it over the texts
    explained toward it, with how many of those texts they pushed toward it (a text counts
    once per token, when that token's attributions in it sum above 0)."""
    total: list[dict[int, float]] = [defaultdict(float) for _ in range(n_classes)]
    pushes: list[dict[int, int]] = [defaultdict(int) for _ in range(n_classes)]
    for row, ln, c, at in zip(
        a.tokens.tolist(), lengths.tolist(), target.tolist(), a.attr.tolist(), strict=True
    ):
        in_text: dict[int, float] = defaultdict(float)  # a token repeated in a text is one text
        for tok, v in zip(row[:ln], at[:ln], strict=True):
            in_text[tok] += v
        for tok, v in in_text.items():
            total[c][tok] += v
            pushes[c][tok] += v > 0
    out = []
    for c in range(n_classes):
        best = sorted(total[c].items(), key=lambda kv: -kv[1])[:k]
        out.append(
            [
                {"token": id_to_token(t), "attribution": round(v, 4), "texts": pushes[c][t]}
                for t, v in best
                if v > 0
            ]
        )
    return out


# --- run level ---
def explain_run(req: ExplainRequest) -> dict[str, Any]:
    from archlab.data.text import encode, tokenizer_words
    from archlab.runner import load_run, restore_task

    if req.inputs:
        cfg, task, model = restore_task(req.run_dir)
        texts = _read_texts(task, list(req.inputs))
        y = None
    else:
        cfg, task, model, data = load_run(req.run_dir, action="explain")
        ctx = data.context
        test = ctx.split["test"]
        texts = [ctx.texts[i] for i in test]
        y = torch.from_numpy(ctx.labels[test])
    if (w := task.fitted.blend_weight) < 1:  # predict's labels are the blend's, not these
        print(f"archlab: note: {explain_note(w)}", file=sys.stderr)
    model.eval()
    tokens, lengths = encode(task.fitted.tokenizer, texts, task.data_cfg.max_length)
    probs = _probabilities(model, tokens, lengths)
    pred = probs.argmax(1)
    names = list(task.fitted.class_names)
    itos = task.fitted.tokenizer.id_to_token
    out: dict[str, Any] = {"model": cfg.model.name, "steps": req.steps, "files": [],
                           "of": "the network alone", "blend_weight": w}  # fmt: skip
    if y is None:
        chosen = list(range(len(texts)))
        labels = [f"pred {names[int(pred[i])]} {float(probs[i].max()):.2f}" for i in chosen]
    else:
        from archlab.explain.images import top_losses

        rows = top_losses(probs, y, req.top)
        chosen = [r["index"] for r in rows]
        labels = [
            f"{r['kind']}: true {names[r['class']]}, pred {names[r['pred']]} {r['p_pred']:.2f}"
            for r in rows
        ]
    idx = torch.tensor(chosen, dtype=torch.long)
    a = integrated_gradients(model, tokens[idx], lengths[idx], pred[idx], req.steps)
    items = [
        # The run's own cleaning (GloVe clitics, kept @mentions), so words align with ids.
        _item(a, n, texts[i], label, names[int(pred[i])], int(lengths[i]), itos,
              tokenizer_words(task.fitted.tokenizer, texts[i]))
        for n, (i, label) in enumerate(zip(chosen, labels, strict=True))
    ]  # fmt: skip
    out["texts"] = items
    out["completeness_gap_relative_max"] = max(
        (t["completeness_gap_relative"] for t in items), default=0.0
    )
    tops = None
    predicted: dict[str, int] | None = None  # aggregated texts per class, for the HTML
    if y is not None:  # aggregate: which tokens push toward each class over the test split
        sel = subset(len(texts), req.limit)
        agg = integrated_gradients(model, tokens[sel], lengths[sel], pred[sel], req.steps)
        tops = class_tokens(agg, lengths[sel], pred[sel], len(names), itos)
        out["class_tokens"] = dict(zip(names, tops, strict=True))
        out["n_aggregate"] = len(sel)
        rel = agg.delta.abs() / agg.change.abs().clamp(min=1e-12)
        out["aggregate_completeness_gap_relative_median"] = float(rel.median())
        out["aggregate_completeness_gap_relative_max"] = float(rel.max())
        out["aggregate_steps_max"] = int(agg.steps.max())
        # How many of the aggregated texts each class got: says why a class has no tokens.
        counts = torch.bincount(pred[sel], minlength=len(names)).tolist()
        predicted = dict(zip(names, counts, strict=True))
        path = req.out / "ig_class_tokens.png"
        class_tokens_plot(tops, names, path, predicted=counts)
        out["files"].append(path.name)
    path = req.out / "ig_texts.html"
    from archlab.utils import write_text_atomic

    write_text_atomic(path, render_html(items, out.get("class_tokens"), req.steps, predicted))
    out["files"].insert(0, path.name)
    return out


def _probabilities(model: nn.Module, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The model's class probabilities for every text, in batches of 256 (on the CPU)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat(
            [
                model(tokens[i : i + 256].to(device), lengths[i : i + 256]).softmax(1)
                for i in range(0, len(tokens), 256)
            ]
        ).cpu()


def _item(
    a: Attribution, n: int, text: str, label: str, pred: str, ln: int, itos: Any, words: list[str]
) -> dict[str, Any]:
    """One explained text: its tokens, words and attributions (``a``'s ``n``-th row)."""
    change = float(a.change[n])
    words = words[:ln]
    toks = [itos(t) for t in a.tokens[n, :ln].tolist()]
    return {
        "text": text,
        "label": label,
        "pred": pred,
        "tokens": toks,
        # The cleaned words (out-of-vocabulary ones reach the model as [UNK]).
        "words": words if len(words) == ln else toks,
        "attributions": [round(v, 5) for v in a.attr[n, :ln].tolist()],
        "logit_change": change,
        "completeness_gap": abs(float(a.delta[n])),
        "completeness_gap_relative": abs(float(a.delta[n])) / max(abs(change), 1e-12),
        "steps": int(a.steps[n]),
    }


def _read_texts(task: Any, inputs: list[str]) -> list[str]:
    """Texts given on the command line, or every text of a file (--file: a CSV's text
    column, else one text per line), as predict reads them."""
    texts = task.read_inputs(inputs)
    if not texts:
        raise ArchlabError(f"{inputs[0]}: holds no texts to explain")
    return texts


# --- drawing ---
def _span(word: str, tok: str, v: float, top: float) -> str:
    alpha = min(1.0, abs(v) / top) if top > 0 else 0.0
    rgb = "220,40,40" if v > 0 else "40,90,220"
    unk = ' class="unk"' if tok == UNK and word != UNK else ""
    return (
        f'<span{unk} style="background:rgba({rgb},{alpha:.2f})" '
        f'title="{v:+.4f} {html.escape(tok)}">{html.escape(word)}</span>'
    )


def render_html(
    items: list[dict[str, Any]],
    tops: dict[str, list[dict[str, Any]]] | None,
    steps: int,
    predicted: dict[str, int] | None = None,
) -> str:
    """Each text's tokens shaded by attribution (red: toward the predicted class, blue: away),
    then one table row per class with its tokens; the classes without tokens are listed once,
    with why (``predicted``: how many aggregated texts each class got)."""
    parts = [
        "<!doctype html><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Integrated gradients</title>",
        # Long tokens and labels (an 80-character class name) break rather than run off a phone.
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;"
        "overflow-wrap:anywhere}"
        ".t{margin:.8em 0;line-height:1.9}span{padding:1px 3px;border-radius:3px}"
        "small{color:#555}td,th{padding:2px 8px;text-align:left;vertical-align:top}"
        "table{border-collapse:collapse;width:100%}tr{border-top:1px solid #ddd}"
        "th{width:25%;font-weight:600}td small{white-space:nowrap}"
        # On a phone the class goes above its tokens: a quarter of 390 px holds 6 letters.
        "@media (max-width:480px){th,td{display:block;width:auto}}"
        ".unk{text-decoration:underline dotted}</style>",
        "<h1>Which words moved the prediction</h1>",
        f"<p>Integrated gradients (from {steps} steps, doubled per text until the gap is under "
        f"{100 * TOLERANCE:g}%) of the predicted class's logit on the "
        "embedding layer, against an all-padding text. <span style='background:rgba(220,40,40,"
        ".6)'>red</span> pushes toward the predicted class, <span style='background:rgba(40,90,"
        "220,.6)'>blue</span> away; <span class='unk'>dotted</span> words are outside the "
        "vocabulary (the model reads [UNK]). The gap is |sum of attributions - (f(x) - "
        "f(baseline))|.</p>",
    ]
    for it in items:
        top = max((abs(v) for v in it["attributions"]), default=0.0)
        cells = zip(it["words"], it["tokens"], it["attributions"], strict=True)
        spans = " ".join(_span(w, t, v, top) for w, t, v in cells)
        parts.append(
            f"<div class='t'><small>{html.escape(it['label'])} · logit change "
            f"{it['logit_change']:+.3f} · gap {it['completeness_gap']:.2e} "
            f"({100 * it['completeness_gap_relative']:.3f}%, {it['steps']} steps)</small><br>"
            f"{spans}</div>"
        )
    if tops:
        parts += _class_table(tops, predicted)
    return "\n".join(parts) + "\n"


def _class_table(
    tops: dict[str, list[dict[str, Any]]], predicted: dict[str, int] | None
) -> list[str]:
    """One row per class with tokens (class | its tokens); the empty classes in one list each
    by reason, since most of 40 classes can be empty and a row each says nothing."""
    parts = ["<h2>Tokens that push toward each class (test split)</h2>",
             "<table><tr><th>class</th><td><small>token, total attribution (texts it pushed "
             "toward the class)</small></td></tr>"]  # fmt: skip
    for c, rows in tops.items():
        if rows:
            cell = " · ".join(
                f"{html.escape(r['token'])}&nbsp;<small>{r['attribution']:.2f} "
                f"({count(r['texts'], 'text')})</small>"
                for r in rows
            )
            parts.append(f"<tr><th>{html.escape(c)}</th><td>{cell}</td></tr>")
    parts.append("</table>")
    empty = [c for c, rows in tops.items() if not rows]
    if predicted is None:
        groups = {"No token pushes toward {any}": empty}
    else:
        groups = {
            "No explained test text was predicted as {any}": [c for c in empty if not predicted[c]],
            "Texts were predicted as {each}, but no token's total attribution toward it is "
            "above 0": [c for c in empty if predicted[c]],
        }
    for say, cs in groups.items():
        if cs:
            n = (
                {"any": "this class", "each": "this class"}
                if len(cs) == 1
                else {q: f"{q} of these {len(cs)} classes" for q in ("any", "each")}
            )
            listed = ", ".join(f"<b>{html.escape(c)}</b>" for c in cs)
            parts.append(f"<p>{say.format(**n)}: {listed}</p>")
    return parts


def class_tokens_plot(
    tops: list[list[dict[str, Any]]],
    names: list[str],
    path: Path,
    predicted: list[int] | None = None,
) -> None:
    """Each class's top tokens as bars labelled "token (texts it pushed toward the class)", in
    rows of PANEL_COLS panels; an empty panel says why (``predicted``: aggregated texts per
    class). Past MAX_PANELS classes the empty ones are left out, with a note; names are cut
    to fit (explain.json and ig_texts.html keep them whole)."""
    from matplotlib.ticker import MaxNLocator

    from archlab.plots import _save, grid_shape, plt, short_label

    shown = list(range(len(names)))
    if len(names) > MAX_PANELS:
        shown = [c for c in shown if tops[c]]
    nrows, cols = grid_shape(len(shown), PANEL_COLS)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.0 * cols, 0.8 + 3.3 * nrows),
                             squeeze=False, layout="constrained")  # fmt: skip
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, c in zip(axes.flat, shown, strict=False):
        ax.set_title(short_label(names[c], 22), fontsize=9)  # suptitle: "toward each"
        rows = tops[c][:12][::-1]
        if not rows:
            ax.axis("off")
            ax.text(0.5, 0.5, _why_empty(None if predicted is None else predicted[c]),
                    ha="center", va="center", fontsize=9, color="#555",
                    transform=ax.transAxes)  # fmt: skip
            continue
        # Positions, not the token strings: two tokens cut to one label stay two bars.
        ax.barh(range(len(rows)), [r["attribution"] for r in rows], color="C3")
        ax.set_yticks(
            range(len(rows)), [f"{short_label(r['token'], 14)} ({r['texts']})" for r in rows]
        )
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # 0.0000 0.0025 ... ran into each other
        ax.set_xlabel("total IG attribution", fontsize=9)
    if left := len(names) - len(shown):
        fig.supxlabel(
            f"{left} of {len(names)} classes have no token toward them and are not drawn "
            "(ig_texts.html lists them)",
            fontsize=9,
        )
    fig.suptitle(
        "Tokens that push hardest toward each predicted class (test split); "
        "(n): texts the token pushed toward the class",
        fontsize=11,
    )
    _save(fig, path)


def _why_empty(predicted: int | None) -> str:
    """An empty panel's text: no explained text got the class, or none of its tokens' totals
    is above 0 (class_tokens keeps only those)."""
    if predicted is None:
        return "no token pushes\ntoward this class"
    if predicted == 0:
        return "no explained test text\nwas predicted as this class"
    return (
        f"predicted for {count(predicted, 'text')},\nbut no token's total\nattribution is above 0"
    )
