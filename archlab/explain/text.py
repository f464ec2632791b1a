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
        path = req.out / "ig_class_tokens.png"
        class_tokens_plot(tops, names, path)
        out["files"].append(path.name)
    path = req.out / "ig_texts.html"
    from archlab.utils import write_text_atomic

    write_text_atomic(path, render_html(items, out.get("class_tokens"), req.steps))
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
    items: list[dict[str, Any]], tops: dict[str, list[dict[str, Any]]] | None, steps: int
) -> str:
    """Each text's tokens shaded by attribution (red: toward the predicted class, blue: away)."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Integrated gradients</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        ".t{margin:.8em 0;line-height:1.9}span{padding:1px 3px;border-radius:3px}"
        "small{color:#555}td,th{padding:2px 8px;text-align:left}"
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
        parts.append("<h2>Tokens that push toward each class (test split)</h2><table><tr>")
        parts += [f"<th>{html.escape(c)}</th>" for c in tops]
        parts.append("</tr><tr>")
        for rows in tops.values():
            cell = "<br>".join(
                f"{html.escape(r['token'])} <small>{r['attribution']:.2f} "
                f"({count(r['texts'], 'text')})</small>"
                for r in rows
            )
            parts.append(f"<td valign='top'>{cell}</td>")
        parts.append("</tr></table>")
    return "\n".join(parts) + "\n"


def class_tokens_plot(tops: list[list[dict[str, Any]]], names: list[str], path: Path) -> None:
    from archlab.plots import _save, plt

    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 4.2), squeeze=False)
    for ax, cname, rows in zip(axes[0], names, tops, strict=True):
        rows = rows[:12][::-1]
        ax.barh([r["token"] for r in rows], [r["attribution"] for r in rows], color="C3")
        ax.set_title(f"toward {cname}", fontsize=10)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("total IG attribution")
    fig.suptitle("Tokens that push hardest toward each predicted class (test split)")
    _save(fig, path)
