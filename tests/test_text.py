"""Text task: reading and grouping, train-only tokenizer, packed padding, run, predict, EDA."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from archlab import fingerprint, runner
from archlab.ablate import run_ablation
from archlab.cli import main
from archlab.config import RunConfig, apply_overrides
from archlab.data.folders import split_tables
from archlab.data.text import (
    clean_tokens,
    entities_in,
    for_run,
    frequent_mentions,
    is_csv_name,
    load_text_table,
    normalization_counts,
    read_input_texts,
    tokenizer_words,
    train_tokenizer,
)
from archlab.errors import ArchlabError
from archlab.models import MODELS
from archlab.presets import PRESETS
from archlab.report.summary import model_summary
from archlab.task_configs import ImageDataConfig
from archlab.tasks.base import DataBundle
from archlab.tasks.text_cls import (
    TextClassification,
    TextContext,
    TextData,
    TextDataConfig,
    TextFitted,
    TextModelConfig,
    TrainTargets,
)
from archlab.tasks.tfidf import cross_fitted_probs, tfidf_model
from archlab.utils import sha256_file
from tests.conftest import DATA_DIR, as_older_run, needs_shared
from tests.helpers import UNSEEN, text_cfg, write_tweets, write_vectors

TWEETS = DATA_DIR / "twitter_airline" / "Tweets.csv"


def built(cfg: RunConfig) -> tuple[DataBundle, dict]:
    """The data as a training run builds it (fitting the tokenizer), and its data.json."""
    data = TextData(cfg).build(torch.device("cpu"))
    return data, data.info


@pytest.fixture
def tweets(tmp_path: Path) -> Path:
    return write_tweets(tmp_path / "tweets.csv")


def test_cleaning_keeps_sentiment_tokens() -> None:
    toks = clean_tokens("@United THANKS!!! :) :-( <3 http://t.co/abc won't... &lt;3 😡")
    assert toks == ["<user>", "thanks", "!!!", ":)", ":-(", "<3", "<url>", "won't", "...",
                    "<3", "😡"]  # fmt: skip


def test_normalization_unescapes_entities_and_folds_placeholders() -> None:
    texts = ["&quot;Great&quot; crew &amp; food {link}", "see http://t.co/a &#39;ok&#39; {USER}",
             "{sigh} late &eacute;t&eacute;"]  # fmt: skip
    ents = entities_in(texts)
    assert ents[-1] == "&amp;" and {"&#39;", "&eacute;", "&quot;", "&nbsp;"} <= set(ents)
    for style in ("tweet", "glove"):
        assert clean_tokens(texts[0], style, None, ents) == ['"', "great", '"', "crew", "&",
                                                            "food", "<url>"]  # fmt: skip
    assert clean_tokens(texts[1], "tweet", None, ents) == ["see", "<url>", "'", "ok", "'", "<user>"]
    # Kept mentions and a placeholder for a user: the placeholder is <user>, @delta stays.
    assert clean_tokens("{User} @Delta", "tweet", ("delta",), ents) == ["<user>", "@delta"]
    # A word in braces that is no placeholder stays; entities are unescaped once, as html does.
    assert clean_tokens(texts[2], "tweet", None, ents) == ["{", "sigh", "}", "late", "été"]
    assert clean_tokens("a &amp;quot; b", "tweet", None, ents) == ["a", "&", "quot", ";", "b"]
    # The original rules (grouping repeated texts; tokenizers saved before) are unchanged.
    assert clean_tokens(texts[0]) == ["&", "quot", ";", "great", "&", "quot", ";", "crew", "&",
                                      "food", "{", "link", "}"]  # fmt: skip
    counts = normalization_counts(texts, ents)
    assert (counts["html_entities"], counts["urls"], counts["placeholders"]) == (7, 1, 2)
    assert counts["html_entities_by_kind"] == {"&quot;": 2, "&#39;": 2, "&eacute;": 2, "&amp;": 1}
    assert counts["placeholders_by_kind"] == {"{link}": 1, "{user}": 1}


def test_run_reports_normalization_and_predict_and_explain_apply_it(
    tweets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = pd.read_csv(tweets)
    rows.loc[::3, "text"] = rows.loc[::3, "text"] + " &quot;{link}&quot;"
    rows.to_csv(tweets, index=False)
    n = len(rows.loc[::3])
    # data.tfidf_blend=1: predict is the network's, whose tokenizer the checks are about.
    cfg = text_cfg(tweets, "data.subset=0", "train.epochs=1", "train.threads=1",
                   "train.progress=plain", "data.tfidf_blend=1")  # fmt: skip
    run_dir = runner.train(cfg, tmp_path / "runs")
    err = capsys.readouterr().err
    assert "HTML entities unescaped (&quot;" in err and "placeholders folded into <url>" in err
    info = json.loads((run_dir / "data.json").read_text())["normalization"]
    # Repeated texts are grouped (the two tie-dropped conflicts, the merged repeats) first.
    assert 0 < info["placeholders_by_kind"]["{link}"] <= n
    assert info["html_entities_by_kind"]["&quot;"] == 2 * info["placeholders_by_kind"]["{link}"]
    _, task, model = runner.restore_task(run_dir)
    tok = task.fitted.tokenizer
    assert tokenizer_words(tok, "&quot;Late&quot; {LINK}") == ['"', "late", '"', "<url>"]
    a, b = task.predict(model, ["&quot;late&quot; {link}", '"late" http://t.co/zz'])
    assert a["label"] == b["label"] and a["negative"] == pytest.approx(b["negative"])


def test_a_tokenizer_saved_before_the_normalization_keeps_its_rules(tweets: Path) -> None:
    old = TextFitted(("a", "b"), train_tokenizer(load_text_table(tweets).texts))
    restored = TextFitted.from_dict(json.loads(json.dumps(old.to_dict())))
    assert tokenizer_words(restored.tokenizer, "&quot;hi&quot; {link}") == [
        "&", "quot", ";", "hi", "&", "quot", ";", "{", "link", "}"
    ]  # fmt: skip


def test_repeated_texts_are_merged_and_counted(tweets: Path) -> None:
    table = load_text_table(tweets)
    c = table.counts
    assert c["rows_read"] == 94
    assert c["rows_merged_into_repeated_texts"] == 3
    assert c["texts_with_conflicting_labels"] == 1
    assert c["texts_dropped_for_conflicting_labels"] == 1
    assert c["samples"] == len(table.texts) == 90
    drop = load_text_table(tweets, conflicts="drop")
    assert drop.counts["texts_dropped_for_conflicting_labels"] == 1


def test_reads_are_remembered_per_file_version_and_still_recorded(
    tweets: Path, tmp_path: Path
) -> None:
    """One process reads a table or a vectors file once (reproduce, ablate, a budget search),
    yet every run still records it in its fingerprint, and a changed file is read again."""
    from archlab import fingerprint
    from archlab.data.embeddings import load_vectors

    first = load_text_table(tweets)
    first.texts.append("mutated by a caller")  # a caller's copy: the remembered one is kept
    with fingerprint.recording() as reads:
        again = load_text_table(tweets)
    assert again.texts == first.texts[:-1] and reads == {str(tweets.resolve())}
    df = pd.read_csv(tweets)
    df.loc[0, "text"] = "an entirely new first text about the crew"
    df.to_csv(tweets, index=False)
    assert "an entirely new first text about the crew" in load_text_table(tweets).texts
    vec_path = tmp_path / "vec.txt"
    write_vectors(vec_path)
    v1 = load_vectors(vec_path, {"flight"})
    with fingerprint.recording() as reads:
        v2 = load_vectors(vec_path, {"flight"})
    assert reads == {str(vec_path.resolve())} and v2.words == v1.words
    np.testing.assert_array_equal(v2.matrix, v1.matrix)
    write_vectors(vec_path, seed=1)  # same words and size, other numbers: read again
    v3 = load_vectors(vec_path, {"flight"})
    assert not np.array_equal(v3.matrix, v1.matrix)


def _assert_disjoint(ctx: TextContext) -> None:
    keys = {k: {" ".join(clean_tokens(ctx.texts[i])) for i in v} for k, v in ctx.split.items()}
    assert not keys["train"] & keys["val"]
    assert not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    assert sum(len(v) for v in ctx.split.values()) == len(ctx.texts)


def test_no_text_in_two_splits(tweets: Path) -> None:
    data, info = built(text_cfg(tweets))
    _assert_disjoint(data.context)
    assert info["rows"]["rows_merged_into_repeated_texts"] == 3


@needs_shared(TWEETS)
def test_real_slice_split_is_grouped_and_tokenizer_fits_train_only(tmp_path: Path) -> None:
    # A slice of the real file (quoted newlines and repeated texts included), written here.
    df = pd.read_csv(TWEETS, nrows=1500)
    path = tmp_path / "slice.csv"
    df.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    data, info = built(text_cfg(path, "data.subset=0", "data.min_frequency=1"))
    ctx = data.context
    _assert_disjoint(ctx)
    assert info["rows"]["rows_read"] == 1500
    assert data.fitted.tokenizer is not None
    vocab = set(data.fitted.tokenizer.get_vocab())
    train_tokens = {t for i in ctx.split["train"] for t in clean_tokens(ctx.texts[i])}
    other = {t for p in ("val", "test") for i in ctx.split[p] for t in clean_tokens(ctx.texts[i])}
    assert vocab - {"[PAD]", "[UNK]"} <= train_tokens
    assert other - train_tokens and not (other - train_tokens) & vocab
    # Deterministic: a resumed run rebuilds exactly the same tokenizer.
    texts = [ctx.texts[i] for i in ctx.split["train"]]
    assert train_tokenizer(texts).to_str() == train_tokenizer(texts).to_str()


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.task == "text"])
@pytest.mark.parametrize("pooling", ["last", "max", "meanmax"])
def test_padding_does_not_change_logits(name: str, pooling: str) -> None:
    torch.manual_seed(0)
    model = MODELS[name].build(vocab_size=50, num_classes=3, pooling=pooling).eval()
    seq = torch.randint(2, 50, (7,))
    other = torch.randint(2, 50, (12,))
    alone = model(seq[None], torch.tensor([7]))
    for pad in (1, 9):
        padded = torch.cat([seq, torch.zeros(pad, dtype=torch.long)])[None]
        assert torch.allclose(model(padded, torch.tensor([7])), alone, atol=1e-6)
    batch = torch.zeros(2, 12, dtype=torch.long)
    batch[0], batch[1, :7] = other, seq
    assert torch.allclose(model(batch, torch.tensor([12, 7]))[1], alone[0], atol=1e-6)
    assert "Total params" in model_summary(name, "30", 3)


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("content", "sets", "needle"),
    [
        ("words,airline_sentiment\nhi,positive\n", (), "no column 'text' (columns found: 'words'"),
        ("text,mood\nhi,positive\n", (), "no column 'airline_sentiment' (columns found: 'text'"),
        (
            "text,airline_sentiment\nbon café,positive\n",
            ("data.encoding=ascii",),
            "--set data.encoding=",
        ),
        ("text,airline_sentiment\nhi,positive\n", ("data.encoding=klingon",), "unknown encoding"),
        (
            "text,airline_sentiment\n"
            + "".join(f"t{i} a,pos\nt{i} b,neg\n" for i in range(5))
            + "lonely,odd\n",
            (),
            "'odd' (1)",
        ),
        ("text,airline_sentiment\n" + "".join(f"t{i},pos\n" for i in range(9)), (), "one class"),
    ],
    ids=["no-text", "no-label", "bad-bytes", "unknown-encoding", "single-example", "one-class"],
)
def test_bad_inputs_give_one_line_errors(
    tmp_path: Path, content: str, sets: tuple[str, ...], needle: str
) -> None:
    path = _write(tmp_path / "bad.csv", content)
    with pytest.raises(ArchlabError) as e:
        built(text_cfg(path, *sets))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_encoding_auto_reads_utf8_and_falls_back_to_cp1252_with_a_note(tmp_path: Path) -> None:
    rows = "".join(
        f"bon café {lab} {i} – “ok”,{lab}\n" for i in range(12) for lab in ("pos", "neg")
    )
    for enc, expect in (("utf-8", "utf-8"), ("cp1252", "cp1252"), ("latin-1", "cp1252")):
        body = "text,airline_sentiment\n" + (rows if enc != "latin-1" else rows.replace("–", "-")
                                              .replace("“", '"').replace("”", '"'))  # fmt: skip
        path = _write(tmp_path / f"{enc}.csv", body, enc)
        table = load_text_table(path)  # data.encoding=auto, the default
        assert table.encoding == expect and all("café" in t for t in table.texts), enc
        assert len(table.notes) == (enc != "utf-8")
    assert "is not UTF-8 (byte 0xe9 at offset" in table.notes[0]
    # bytes cp1252 leaves undefined (0x81) are read as latin-1; a codec given is used as is
    path = tmp_path / "odd.csv"
    lines = [b"x\x81y %s %d,%s\n" % (lab, i, lab) for i in range(4) for lab in (b"pos", b"neg")]
    path.write_bytes(b"text,airline_sentiment\n" + b"".join(lines))
    assert load_text_table(path).encoding == "latin-1"
    with pytest.raises(ArchlabError, match="cannot decode as utf-8"):
        load_text_table(path, encoding="utf-8")
    data, _ = built(text_cfg(tmp_path / "cp1252.csv"))
    assert data.info["encoding"] == "cp1252" and data.notes[0].startswith("data: ")
    assert "read as cp1252" in data.notes[0]


def test_empty_and_numeric_texts_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = "".join(f"good {lab} {w},{lab}\n" for lab in ("p", "n") for w in "abcd")
    path = _write(tmp_path / "t.csv", 'text,airline_sentiment\n"",p\n   ,n\n12345,p\nok,\n' + rows)
    c = load_text_table(path).counts
    assert (c["dropped_empty_text"], c["dropped_non_text"], c["dropped_missing_label"]) == (2, 1, 1)
    assert c["samples"] == 8
    assert main(["eda", "--task", "text", "--data", str(path), "--set", "data.encoding=latin-9",
                 "--out", str(tmp_path / "e")]) == 2  # fmt: skip


def test_a_class_named_like_a_key_and_a_class_missing_from_test_are_said(tmp_path: Path) -> None:
    rows = [(f"great flight number {i} thanks", "probabilities") for i in range(20)]
    rows += [(f"late bag lost again {i}", "input") for i in range(20)]
    rows += [("long long lines here", "tiny"), ("long lines there", "tiny"), ("lines", "tiny")]
    path = tmp_path / "t.csv"
    pd.DataFrame(rows, columns=["text", "airline_sentiment"]).to_csv(path, index=False)
    cfg = text_cfg(path, "data.subset=0", "train.threads=1")
    data, info = built(cfg)
    missing = [k for k in ("val", "test") if info["class_counts"][k][2] == 0]
    assert missing  # 3 texts of 43: a 15% stratified share leaves it out of val or test
    assert (f"data: warning: class 'tiny' has no {'/'.join(missing)} texts: it is not scored "
            f"there (the {'/'.join(missing)} macro averages are over the other "
            "classes)") in data.notes  # fmt: skip
    assert not any("'input' has no" in n for n in data.notes)
    task = TextClassification(cfg, data.fitted)
    (r,) = task.predict(task.build_model(), ["late bag"])
    p = r["probabilities"]  # every class, nested as serve answers
    assert r["input"] == "late bag" and set(p) == {"input", "probabilities", "tiny"}
    assert r["label"] == max(p, key=p.__getitem__) and r["tiny"] == p["tiny"]


def test_smoke_run_predict_matches_in_run_evaluation(tweets: Path, tmp_path: Path) -> None:
    # The network alone (data.tfidf_blend=1): test_predictions.csv and test_* are its own.
    cfg = text_cfg(tweets, "data.subset=0", "train.max_steps_per_epoch=0", "train.epochs=2",
                   "data.tfidf_blend=1")  # fmt: skip
    run_dir = runner.train(cfg, tmp_path / "runs")
    m = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_accuracy", "test_balanced_accuracy", "test_f1_macro",
                "baseline_tfidf_accuracy", "baseline_tfidf_balanced_accuracy",
                "baseline_tfidf_f1_macro", "epochs_run"):  # fmt: skip
        assert key in m
    for f in ("tokenizer.json", "confident_mistakes.csv", "plots/confusion_matrix.png"):
        assert (run_dir / f).exists()
    saved = pd.read_csv(run_dir / "test_predictions.csv")
    _, task, model = runner.restore_task(run_dir)
    rows = task.predict(model, saved["text"].tolist())
    names = list(task.fitted.class_names)
    got = np.array([[r[n] for n in names] for r in rows])
    assert np.allclose(got, saved[[f"p_{n}" for n in names]].to_numpy(), atol=1e-5)
    assert m["test_accuracy"] == pytest.approx((saved["true"] == saved["pred"]).mean())
    # --file: every row of a CSV with the run's text column.
    assert len(task.predict(model, [str(tweets)])) == 94


def test_eval_all_scores_every_row_of_a_one_class_file(
    tweets: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # The network alone (data.tfidf_blend=1): test_accuracy is predict's.
    cfg = text_cfg(tweets, "train.epochs=1", "train.threads=1", "train.amp=off",
                   "data.tfidf_blend=1")  # fmt: skip
    run_dir = runner.train(cfg, tmp_path / "runs")
    # A held-out batch of one class: a repeated row (scored twice: no split to keep it out of)
    # and an empty text (dropped by the reader, and said).
    rows = pd.read_csv(write_tweets(tmp_path / "new.csv", n_per_class=8, seed=5),
                       keep_default_na=False)  # fmt: skip
    neg = rows[rows.airline_sentiment == "negative"]
    held = pd.concat([neg, neg.head(1), neg.head(1).assign(text="  ")], ignore_index=True)
    path = tmp_path / "held.csv"
    held.to_csv(path, index=False)
    n = len(held) - 1  # without the empty text
    assert main(["eval", str(run_dir), "--data", str(path)]) == 2  # a split needs 2+ classes
    assert "only one class in column" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--data", str(path), "--all"]) == 0
    out, err = capsys.readouterr()
    assert err == (f"archlab: {path}: scored all {n} rows (1 of the run's 3 classes present); "
                   "not scored: 1 empty text\n")  # fmt: skip
    got = json.loads(out)
    assert sum(map(sum, got["test_confusion_matrix"])) == got["test_support_class_negative"] == n
    _, task, model = runner.restore_task(run_dir)
    preds = [r["label"] for r in task.predict(model, held["text"].tolist()[:n])]
    assert got["test_accuracy"] == pytest.approx(np.mean([p == "negative" for p in preds]))
    # A blank text is refused, its spaces counted (an error line may show a run of them as one).
    with pytest.raises(ArchlabError, match=r"^an empty text \(3 space\(s\)\): nothing to predict"):
        task.predict(model, ["   "])
    # A label the run never learnt is one line naming it and the run's classes.
    held.assign(airline_sentiment="angry").to_csv(path, index=False)
    assert main(["eval", str(run_dir), "--data", str(path), "--all"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"archlab: error: {path}: class(es) 'angry' not among the run's classes "
                   "['negative', 'neutral', 'positive']; remove their samples to score the "
                   "rest"]  # fmt: skip
    # Another file's column names: the fix is the run's names (eval takes no --set).
    held.rename(columns={"text": "words"}).to_csv(path, index=False)
    assert main(["eval", str(run_dir), "--data", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    # The defaults' other names are read too (a run on them read 'review' or 'label'): said.
    assert err.endswith(for_run("text", "airline_sentiment"))
    assert "named 'text' (or review, sentence, " in err
    assert "--set" not in err


def test_a_held_out_sets_numbers_spelt_otherwise_are_the_runs_classes() -> None:
    # '0.0' and '1.00' for a run's '0' and '1' (training reads such spellings as one class).
    from archlab.data.splits import to_run_classes

    got = to_run_classes("x.csv", ["0.0", "1.00", "2"], np.array([0, 1, 2, 0]), ["0", "1", "2"])
    assert got.tolist() == [0, 1, 2, 0]
    with pytest.raises(ArchlabError, match=r"class\(es\) '3.0' not among the run's classes"):
        to_run_classes("x.csv", ["3.0"], np.array([0]), ["0", "1"])


def test_eda_cli_writes_plots(tweets: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "eda"
    assert main(["eda", "--task", "text", "--data", str(tweets), "--out", str(out)]) == 0
    names = {p.name for p in out.glob("*.png")}
    assert names == {"label_counts.png", "label_by_airline.png", "negative_reasons.png",
                     "text_lengths.png"}  # fmt: skip


def test_two_technique_ablation(tweets: Path, tmp_path: Path) -> None:
    base = text_cfg(tweets, "train.epochs=1")
    out = run_ablation(base, ["baseline", "class_weights"], 1, tmp_path / "abl")
    rows = json.loads((out / "ablation.json").read_text())
    assert [r["technique"] for r in rows] == ["baseline", "class_weights"]
    assert all(0 <= r["test_accuracy_mean"] <= 1 for r in rows)


def test_config_validation_names_the_value() -> None:
    with pytest.raises(ArchlabError, match="unknown text model 'gpt'"):
        TextModelConfig(name="gpt")
    with pytest.raises(ArchlabError, match=r"data\.max_length=0"):
        TextDataConfig(max_length=0)
    for bad in (0.0, 1.5):
        with pytest.raises(ArchlabError, match=rf"data\.class_weight_power={bad}: in \(0, 1\]"):
            TextDataConfig(class_weight_power=bad)
        with pytest.raises(ArchlabError, match=rf"data\.class_weight_power={bad}"):
            ImageDataConfig(class_weight_power=bad)


def test_distill_teacher_probabilities_are_cross_fitted() -> None:
    # Texts of unique random words with random labels: only memorizing a text predicts its label,
    # so a teacher that saw the text is confident and a held-out one is near chance.
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{rng.integers(10**9)}" for _ in range(4)) for _ in range(150)]
    labels = rng.integers(0, 3, 150)
    probs = cross_fitted_probs(texts, labels, 3, folds=5, seed=0)
    assert probs.shape == (150, 3) and np.allclose(probs.sum(1), 1)
    own = tfidf_model().fit(texts, labels).predict_proba(texts)
    rows = np.arange(150)
    assert own[rows, labels].mean() > 0.6
    assert probs[rows, labels].mean() < 0.45
    # A second run on the same texts (a budget trial) reuses the fit; its copy is its own.
    again = cross_fitted_probs(texts, labels, 3, folds=5, seed=0)
    assert np.array_equal(again, probs) and again is not probs
    again[:] = 0
    assert np.array_equal(cross_fitted_probs(texts, labels, 3, folds=5, seed=0), probs)
    assert not np.array_equal(cross_fitted_probs(texts, labels, 3, folds=5, seed=1), probs)


def _first_train_rows(
    cfg: RunConfig, n: int
) -> tuple[DataBundle, TextClassification, torch.Tensor, torch.Tensor]:
    """A training build's data and task, its first n training targets and their labels."""
    data = TextData(cfg).build(torch.device("cpu"))
    _, _, targets = data.train.fetch(torch.arange(n), None)
    ctx = data.context
    labels = torch.from_numpy(ctx.labels[ctx.split["train"][:n]])
    return data, TextClassification(cfg, data.fitted), targets, labels


def test_train_targets_pack_and_unpack_by_the_declared_layout() -> None:
    label = torch.tensor([2, 0, 1])
    soft = torch.eye(3)[label] * 0.8 + 0.2 / 3
    # A 3-class weighted layout is 5 wide, as wide as an unweighted 4-class one: the layout
    # comes from the config (data.weight_column), never from the width.
    for weight in (None, torch.tensor([0.5, 2.0, 1.0])):
        packed = TrainTargets(label, weight, soft).pack()
        back = TrainTargets.unpack(packed, weighted=weight is not None)
        assert torch.equal(back.label, label) and torch.allclose(back.soft, soft)
        assert (back.weight is None) == (weight is None)
        if weight is not None:
            assert torch.equal(back.weight, weight)


def test_distill_loss_is_soft_cross_entropy_and_metrics_use_labels(tweets: Path) -> None:
    cfg = text_cfg(tweets, "data.distill=0.6", "data.subset=0")
    data, task, targets, labels = _first_train_rows(cfg, 8)
    ctx = data.context
    assert targets.shape == (8, 4) and torch.equal(targets[:, 0].long(), labels)
    soft = targets[:, 1:]
    assert torch.allclose(soft.sum(1), torch.ones(8))
    assert (soft[torch.arange(8), labels] >= 0.4 - 1e-6).all()  # (1 - 0.6) of the label at least
    logits = torch.randn(8, 3)
    want = -(soft * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(task.loss(logits, targets), want)
    assert task.metrics(logits, targets)["accuracy"] == pytest.approx(
        (logits.argmax(1) == labels).float().mean().item()
    )
    assert 0 <= ctx.teacher["baseline_tfidf_crossfit_train_accuracy"] <= 1


def test_distill_run_reports_teacher(
    tweets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = text_cfg(tweets, "data.distill=0.5", "train.epochs=1", "train.max_steps_per_epoch=0")
    run_dir = runner.train(cfg, tmp_path / "runs")
    m = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= m["baseline_tfidf_crossfit_train_accuracy"] <= 1 and 0 <= m["test_accuracy"] <= 1

    # The teacher exists for training only: eval and predict of the run never fit it.
    def no_teacher(*args: object, **kwargs: object) -> None:
        raise AssertionError("the distillation teacher was fitted outside training")

    monkeypatch.setattr("archlab.tasks.text_cls.distill_targets", no_teacher)
    assert runner.evaluate(run_dir)["test_accuracy"] == pytest.approx(m["test_accuracy"])
    _, task, model = runner.restore_task(run_dir)
    assert len(task.predict(model, ["thanks, great flight"])) == 1
    data = TextData(cfg).build(torch.device("cpu"), TextData(cfg).restore(run_dir))
    assert data.context.teacher == {} and data.train.fetch(torch.arange(4), None)[2].dim() == 1


def test_distill_config_is_validated() -> None:
    with pytest.raises(ArchlabError, match=r"data\.distill=1\.5"):
        TextDataConfig(distill=1.5)
    with pytest.raises(ArchlabError, match=r"data\.distill_folds=1"):
        TextDataConfig(distill_folds=1)


# --- per-text training weights (data.weight_column) ---
def _weighted_tweets(tweets: Path) -> Path:
    """The tweets with a 'confidence' column: 0.5 for negatives, 1 elsewhere, and a repeat."""
    df = pd.read_csv(tweets, keep_default_na=False)
    df["confidence"] = np.where(df["airline_sentiment"] == "negative", 0.5, 1.0)
    df.loc[0, "confidence"] = 0.2  # rows 0 and 90 are one text (the exact duplicate)
    path = tweets.with_name("weighted.csv")
    df.to_csv(path, index=False)
    return path


def test_weight_column_gives_each_text_its_rows_mean(tweets: Path) -> None:
    path = _weighted_tweets(tweets)
    table = load_text_table(path, weight_column="confidence")
    plain = load_text_table(path)
    assert table.texts == plain.texts and np.array_equal(table.labels, plain.labels)
    assert table.weights is not None and plain.weights is None
    w = dict(zip(table.texts, table.weights, strict=True))
    df = pd.read_csv(path, keep_default_na=False)
    assert w[df.text[0]] == pytest.approx((0.2 + 0.5) / 2)  # the duplicate's two rows
    assert w[df.text[40]] == 1.0  # a neutral text


def test_weighted_loss_is_the_weighted_mean_and_baselines_use_the_weights(tweets: Path) -> None:
    path = _weighted_tweets(tweets)
    for distill in ("0", "0.5"):
        cfg = text_cfg(path, "data.weight_column=confidence", f"data.distill={distill}")
        data, task, y, labels = _first_train_rows(cfg, 12)
        ctx = data.context
        assert y.shape == (12, 5) and torch.equal(y[:, 0].long(), labels)
        w = torch.from_numpy(ctx.weights[ctx.split["train"][:12]]).float()
        assert torch.allclose(y[:, 1], w)
        logits = torch.randn(12, 3)
        per_text = -(y[:, 2:] * logits.log_softmax(1)).sum(1)
        assert torch.allclose(task.loss(logits, y), (w * per_text).sum() / w.sum())
        if distill == "0":  # hard labels: the plain cross-entropy's per-text terms
            assert torch.equal(y[:, 2:], F.one_hot(labels, 3).float())
        # A text at weight 0 does not move the loss, whatever the network says of it.
        y0 = y.clone()
        y0[0, 1] = 0
        other = logits.clone()
        other[0] = torch.tensor([9.0, -9.0, 0.0])
        assert torch.allclose(task.loss(logits, y0), task.loss(other, y0))
        assert task.metrics(logits, y)["accuracy"] == pytest.approx(
            (logits.argmax(1) == labels).float().mean().item()
        )
        assert data.info["weights"]["column"] == "confidence"
        assert any("training weights from column 'confidence'" in n for n in data.notes)
    base = task.baselines(data)
    assert {"baseline_tfidf_accuracy", "baseline_tfidf_weighted_accuracy"} <= set(base)


def test_weighted_run_evaluates_without_the_weight_column(tweets: Path, tmp_path: Path) -> None:
    path = _weighted_tweets(tweets)
    cfg = text_cfg(path, "data.weight_column=confidence", "train.epochs=1")
    run_dir = runner.train(cfg, tmp_path / "runs")
    m = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= m["baseline_tfidf_weighted_accuracy"] <= 1
    w = json.loads((run_dir / "data.json").read_text())["weights"]
    assert w["train_min"] in (0.35, 0.5) and w["train_max"] == 1.0  # 0.35: the repeat, if trained
    # eval reads the CSV again but never its weights: the column may be gone by then. The file
    # changed, so the run refuses it as its own data; named with --data it is scored.
    pd.read_csv(path, keep_default_na=False).drop(columns="confidence").to_csv(path, index=False)
    with pytest.raises(ArchlabError, match="the data differ"):
        runner.evaluate(run_dir)
    assert runner.evaluate(run_dir, str(path))["test_accuracy"] == pytest.approx(m["test_accuracy"])


def test_weight_column_is_a_text_option_only() -> None:
    # Images have no per-row weights: the key is refused, not silently ignored.
    with pytest.raises(ArchlabError, match=r"unknown key data\.weight_column"):
        apply_overrides(PRESETS["images-resnet18-smoke"], ["data.weight_column=conf"])


# --- pretrained word vectors (data.embeddings) ---
GLOVE = DATA_DIR / "glove" / "glove.6B.50d.top100k.txt.gz"


def test_glove_tokens_split_clitics_as_glove_does() -> None:
    toks = clean_tokens("@United I can’t believe it's 10:30, won't REBOOK :) i'm", "glove")
    assert toks == ["<user>", "i", "ca", "n't", "believe", "it", "'s", "10", ":", "30", ",",
                    "wo", "n't", "rebook", ":)", "i", "'m"]  # fmt: skip
    assert clean_tokens("won't 10:30") == ["won't", "10", ":3", "0"]  # the default is unchanged


@needs_shared(GLOVE)
def test_glove_tokens_are_in_the_real_glove_vocabulary() -> None:
    from archlab.data.embeddings import load_vectors

    toks = set(clean_tokens("I can't, it's late! Don't you're we'll she'd ... ?", "glove"))
    found = set(load_vectors(GLOVE, toks, first=0).words)
    assert found == toks


@pytest.mark.parametrize(
    "name,header,trailing", [("v.txt", False, ""), ("v.vec", True, " "), ("v.txt.gz", False, "")]
)
def test_load_vectors_formats(tmp_path: Path, name: str, header: bool, trailing: str) -> None:
    from archlab.data.embeddings import load_vectors, peek_dim

    vecs = write_vectors(tmp_path / name, dim=5, header=header, trailing=trailing)
    assert peek_dim(tmp_path / name) == 5
    v = load_vectors(tmp_path / name, {"zebra", "nowhere"}, first=3)
    assert v.words == [*list(vecs)[:3], "zebra"] and v.matrix.dtype == np.float32
    assert np.array_equal(v.matrix[3], vecs["zebra"]) and v.lines == len(vecs)
    assert v.info["sha256"] == sha256_file(tmp_path / name)


def test_duplicate_vector_words_keep_the_first_and_are_counted(tmp_path: Path) -> None:
    from archlab.data.embeddings import load_vectors

    (tmp_path / "d.txt").write_text("a 1 2\nb 3 4\na 5 6\nb 7 8\n")
    v = load_vectors(tmp_path / "d.txt", set(), first=-1)
    assert v.words == ["a", "b"] and v.matrix.tolist() == [[1, 2], [3, 4]]
    assert (v.duplicates, v.first_duplicate_line) == (2, 3)


def _glove_run(tweets: Path, vec: Path, out: Path, *sets: str) -> Path:
    argv = ["train", "--preset", "text-bilstm-glove-smoke", "--data", str(tweets), "--out",
            str(out), "--set", f"data.embeddings={vec}", "--set", "data.subset=0",
            "--set", "train.threads=1"]  # fmt: skip
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def _embedding(run_dir: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model.safetensors"))["embedding.weight"]


def test_glove_run_is_self_contained_and_keeps_unseen_words(
    tweets: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    vec = tmp_path / "vecs.txt.gz"
    vecs = write_vectors(vec)
    run_dir = _glove_run(tweets, vec, tmp_path / "runs", "train.progress=plain")
    err = capsys.readouterr().err
    assert f"vectors {vec}: 6-d" in err and "of training tokens" in err
    info = json.loads((run_dir / "data.json").read_text())
    e = info["embeddings"]
    assert e["path"] == str(vec.resolve()) and e["bytes"] == vec.stat().st_size
    assert e["sha256"] == sha256_file(vec) and e["dim"] == 6
    assert 0 < e["train_token_coverage"] < 1 and 0 < e["train_word_coverage"] < 1
    assert e["vocab_added_from_vectors"] >= 1  # at least the unseen word
    tok = Tokenizer.from_file(str(run_dir / "tokenizer.json"))
    uid = tok.token_to_id(UNSEEN)
    assert uid is not None and uid >= e["vocab_from_training"]
    weight = _embedding(run_dir)
    assert weight.shape == (info["vocab_size"], 6)
    # Fine-tuned with Adam and no weight decay: a row that never gets a gradient keeps its vector,
    # while rows of training words moved.
    assert torch.equal(weight[uid], torch.from_numpy(vecs[UNSEEN]))
    assert not torch.equal(weight[tok.token_to_id("flight")], torch.from_numpy(vecs["flight"]))
    vec.unlink()  # eval, predict and ensemble never need the vectors file
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert main(["eval", str(run_dir)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["test_accuracy"] == pytest.approx(saved["test_accuracy"])
    assert main(["predict", str(run_dir), f"so {UNSEEN}", "so qqqqq"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert rows[0]["positive"] != pytest.approx(rows[1]["positive"])  # its own vector, not [UNK]
    twin = run_dir.parent / "twin"  # a second member (the same run twice is refused)
    shutil.copytree(run_dir, twin)
    assert main(["ensemble", str(run_dir), str(twin)]) == 0


@pytest.mark.parametrize("freeze_epochs,moved", [(0, False), (1, True)])
def test_freeze_embeddings_keeps_the_vectors(
    tweets: Path, tmp_path: Path, freeze_epochs: int, moved: bool
) -> None:
    vec = tmp_path / "vecs.txt"
    vecs = write_vectors(vec)
    # The last epoch's weights (reg.select=last): with freeze_epochs=1, the one after the thaw.
    run_dir = _glove_run(tweets, vec, tmp_path / "runs", "model.freeze_embeddings=true",
                         f"model.freeze_epochs={freeze_epochs}", "reg.select=last")  # fmt: skip
    tok = Tokenizer.from_file(str(run_dir / "tokenizer.json"))
    row = _embedding(run_dir)[tok.token_to_id("flight")]
    assert torch.equal(row, torch.from_numpy(vecs["flight"])) is not moved


def test_a_run_without_vectors_records_none(tweets: Path, tmp_path: Path) -> None:
    # A plain run records no vectors and builds the tweet tokenizer as before.
    _, info = built(text_cfg(tweets, "data.subset=0"))
    assert "embeddings" not in info


def test_vector_options_are_validated() -> None:
    with pytest.raises(ArchlabError, match=r"model\.freeze_epochs=-1"):
        TextModelConfig(freeze_epochs=-1)
    with pytest.raises(ArchlabError, match=r"data\.embeddings_words=-2"):
        TextDataConfig(embeddings_words=-2)


def test_a_run_without_fitted_json_is_refused(tweets: Path, tmp_path: Path) -> None:
    # Runs from before fitted.json (their classes in data.json, their tokenizer in
    # tokenizer.json) are no longer read: CHANGELOG.md.
    cfg = text_cfg(tweets, "data.subset=0", "train.epochs=1", "train.max_steps_per_epoch=2",
                   "train.threads=1")  # fmt: skip
    run_dir = runner.train(cfg, tmp_path / "runs")
    (run_dir / "fitted.json").unlink()
    assert (run_dir / "tokenizer.json").exists()
    with pytest.raises(ArchlabError, match=r"no fitted.json: .* before archlab 0.1.0"):
        TextData(cfg).restore(run_dir)


def test_kept_mentions_are_tokens_and_rare_ones_are_user() -> None:
    texts = ["@United late again", "@united @Delta thanks", "@UNITED hi @bob", "@delta ok"]
    kept = frequent_mentions(texts, 2)
    assert kept == ("united", "delta")  # most frequent first; @bob is seen once
    assert frequent_mentions(texts, 3) == ("united",)
    for style in ("tweet", "glove"):
        toks = clean_tokens("@United, @unitedairlines @Bob hi@delta! #fail", style, kept)
        assert toks == ["@united", ",", "<user>", "<user>", "hi", "@delta", "!", "#", "fail"]
        # None (data.mentions=drop) is the old cleaning; an empty tuple keeps no mention.
        assert clean_tokens("@United @bob", style) == ["<user>", "<user>"]
        assert clean_tokens("@United @bob", style, ()) == ["<user>", "<user>"]
    tok = train_tokenizer(texts, min_frequency=1, mentions=kept)
    assert {"@united", "@delta", "<user>"} <= set(tok.get_vocab()) and "@bob" not in tok.get_vocab()
    restored = Tokenizer.from_str(tok.to_str())  # the kept list travels in tokenizer.json
    assert tokenizer_words(restored, "@UNITED @bob") == ["@united", "<user>"]
    assert restored.encode("@Delta @zed").ids == [
        tok.token_to_id("@delta"),
        tok.token_to_id("<user>"),
    ]


def test_drop_keeps_the_old_tokenizer(tweets: Path) -> None:
    # data.mentions=drop (the default) must write the tokenizer older runs have: its cleaning
    # rules are saved with it, and a run restores from them (never from the current code).
    texts = load_text_table(tweets).texts
    rules = json.loads(train_tokenizer(texts).to_str())
    steps = [n["type"] for n in rules["normalizer"]["normalizers"]]
    assert steps == ["NFKC", "Replace", "Replace", "Replace", "Replace", "Replace", "Lowercase"]
    assert "@" not in rules["pre_tokenizer"]["pattern"]["Regex"].split("|")[0]


def test_mentions_keep_run_restores_and_the_split_is_unchanged(
    tweets: Path, tmp_path: Path
) -> None:
    rows = pd.read_csv(tweets)
    # The airline tweets' first mention names the airline: half of the texts mention @delta.
    rows.loc[::2, "text"] = rows.loc[::2, "text"].str.replace("@united", "@Delta", regex=False)
    rows.to_csv(tweets, index=False)
    # The network alone (data.tfidf_blend=1): predict's, as test_predictions.csv.
    base = text_cfg(tweets, "data.subset=0", "train.epochs=1", "train.threads=1",
                    "data.tfidf_blend=1")  # fmt: skip
    keep = apply_overrides(base, ["data.mentions=keep", "data.mention_min_count=5"])
    _, info = built(keep)
    assert sorted(info["mentions_kept"]) == ["delta", "united"]
    assert info["split_sha256"] == built(base)[1]["split_sha256"]  # grouping ignores mentions
    assert "mentions_kept" not in built(base)[1]
    run_dir = runner.train(keep, tmp_path / "runs")
    _, task, model = runner.restore_task(run_dir)
    assert tokenizer_words(task.fitted.tokenizer, "@Delta @x late") == ["@delta", "<user>", "late"]
    saved = pd.read_csv(run_dir / "test_predictions.csv")
    got = np.array([[r[n] for n in task.fitted.class_names]
                    for r in task.predict(model, saved["text"].tolist())])  # fmt: skip
    assert np.allclose(
        got, saved[[f"p_{n}" for n in task.fitted.class_names]].to_numpy(), atol=1e-5
    )


def test_a_config_yaml_without_the_mention_keys_loads_as_drop(tweets: Path, tmp_path: Path) -> None:
    # Runs from before data.mentions have no such keys in config.yaml: they were 'drop' runs.
    cfg = text_cfg(tweets, "data.subset=0", "train.epochs=1", "train.max_steps_per_epoch=2",
                   "train.threads=1")  # fmt: skip
    run_dir = runner.train(cfg, tmp_path / "runs")
    path = run_dir / "config.yaml"
    as_older_run(run_dir, "config.yaml")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(ln for ln in lines if "mention" not in ln))
    assert "mention" not in path.read_text()
    assert runner.load_config(run_dir).data.mentions == "drop"
    m = json.loads((run_dir / "metrics.json").read_text())
    assert runner.evaluate(run_dir)["test_loss"] == pytest.approx(m["test_loss"], rel=1e-6)


def test_mention_options_are_validated() -> None:
    with pytest.raises(ArchlabError, match=r"data\.mention_min_count=0"):
        TextDataConfig(mention_min_count=0)
    with pytest.raises(ArchlabError, match="mentions"):
        apply_overrides(PRESETS["text-bilstm"], ["data.mentions=maybe"])
    with pytest.raises(ArchlabError, match="pooling"):
        apply_overrides(PRESETS["text-bilstm"], ["model.pooling=mean"])


def test_tfidf_baseline_is_reused_for_the_same_inputs_only(monkeypatch) -> None:
    from archlab.tasks import tfidf

    rng = np.random.default_rng(0)
    texts = [f"{w} flight {i}" for i, w in enumerate(rng.choice(["good", "bad", "late"], 60))]
    labels = np.array([["good", "bad", "late"].index(t.split()[0]) for t in texts])
    split = {"train": np.arange(40), "val": np.arange(40, 50), "test": np.arange(50, 60)}
    names = ["good", "bad", "late"]
    fits = []
    real = tfidf.tfidf_model
    monkeypatch.setattr(tfidf, "tfidf_model", lambda *a: fits.append(1) or real(*a))
    first = tfidf.tfidf_baseline(texts, labels, split, names)[0]
    assert tfidf.tfidf_baseline(texts, labels, split, names)[0] == first and len(fits) == 1
    texts[55] = "good flight changed"  # a test text differs: fitted again
    tfidf.tfidf_baseline(texts, labels, split, names)
    assert len(fits) == 2
    tfidf.tfidf_baseline(texts, labels, split, names, np.ones(60))  # weights: a weighted fit too
    assert len(fits) == 4


def test_tab_and_semicolon_separated_text_files_read_like_commas(tmp_path: Path) -> None:
    rows = [(f"good {i}, fine; ok", "pos") for i in range(6)] + [
        (f"bad {i}", "neg") for i in range(6)
    ]
    tables = []
    for name, sep in (("c.csv", ","), ("t.tsv", "\t"), ("s.csv", ";")):
        pd.DataFrame(rows, columns=["text", "airline_sentiment"]).to_csv(
            tmp_path / name, sep=sep, index=False
        )
        tables.append(load_text_table(tmp_path / name))
    assert all(t.texts == tables[0].texts for t in tables) and len(tables[0].texts) == 12
    assert all(t.labels.tolist() == tables[0].labels.tolist() for t in tables)


def test_labels_that_differ_only_in_case_are_said_on_a_first_line(tmp_path: Path) -> None:
    labs = ("pos", "Pos", "neg")
    rows = "".join(f"text {k} {i},{lab}\n" for k, lab in enumerate(labs) for i in range(12))
    path = _write(tmp_path / "t.csv", "text,airline_sentiment\n" + rows)
    table = load_text_table(path)
    assert table.class_names == ["Pos", "neg", "pos"]
    assert table.notes == [f"data: {path}: labels 'Pos' / 'pos' differ only in letter case and "
                           "are classes of their own; write each label one way in the file to "
                           "merge them"]  # fmt: skip
    data, _ = built(text_cfg(path))
    assert any("differ only in letter case" in n for n in data.notes)
    # data.labels keeps one spelling: the other's rows are dropped, and said.
    kept = load_text_table(path, labels=("pos", "neg"))
    assert kept.class_names == ["pos", "neg"] and kept.counts["dropped_label_not_in_set"] == 12
    assert kept.notes == [
        f"data: {path}: labels 'Pos' / 'pos' differ only in letter case and only the spellings "
        "data.labels names are kept, the others' rows are dropped; write each label one way in "
        "the file to merge them"
    ]


def test_a_label_in_decomposed_unicode_is_its_composed_class(tmp_path: Path) -> None:
    labs = ("gru\u0308n", "gr\u00fcn", "rot")  # macOS writes text decomposed: one class
    rows = "".join(f"text {k} {i},{lab}\n" for k, lab in enumerate(labs) for i in range(12))
    table = load_text_table(_write(tmp_path / "t.csv", "text,airline_sentiment\n" + rows))
    assert table.class_names == ["gr\u00fcn", "rot"] and np.bincount(table.labels).tolist() == [
        24, 12]  # fmt: skip
    assert "labels in decomposed Unicode (as macOS writes text) read composed" in table.notes[0]


def test_a_file_without_the_studys_label_column_reads_a_label_column(tmp_path: Path) -> None:
    # text,Label: no flag needed, said; a column set by the user is never replaced.
    labs = enumerate(("pos", "neg"))
    rows = "".join(f"text {k} {i},{lab}\n" for k, lab in labs for i in range(12))
    path = _write(tmp_path / "t.csv", "text,Label\n" + rows)
    table = load_text_table(path)
    assert table.class_names == ["neg", "pos"] and len(table.texts) == 24
    assert table.notes == [f"data: {path}: no column 'airline_sentiment' (data.label_column's "
                           "default): labels read from column 'Label'; set data.label_column to "
                           "choose"]  # fmt: skip
    with pytest.raises(ArchlabError, match="no column 'mood'"):
        load_text_table(path, label_column="mood")
    # IMDB's layout (review,sentiment): both found, each said; predict --file reads 'review'.
    imdb = _write(tmp_path / "imdb.csv", "review,sentiment\n" + rows)
    table = load_text_table(imdb)
    assert table.class_names == ["neg", "pos"] and len(table.texts) == 24
    assert table.columns == ("review", "sentiment")  # data.json records the columns read
    assert [n.split(": ", 2)[2][:40] for n in table.notes] == [
        "no column 'text' (data.text_column's def",
        "no column 'airline_sentiment' (data.labe",
    ]
    from archlab.data.text import read_input_texts

    assert read_input_texts(imdb, "text", "auto")[:2] == ["text 0 0", "text 0 1"]
    # Two candidates: the one spelt exactly first, the other named.
    both = _write(tmp_path / "both.csv", "text,Label,label\n" + rows.replace(",", ",x,"))
    table = load_text_table(both)
    assert table.class_names == ["neg", "pos"]
    assert "labels read from column 'label' (also found: 'Label')" in table.notes[0]


def test_the_separator_is_told_from_the_header_outside_quotes(tmp_path: Path) -> None:
    from archlab.data.csv_format import read_text_csv

    def sep_of(path: Path) -> str:
        return read_text_csv(path, "auto", lambda src, codec, sep: sep)[0]

    cases = {'text,"a; b; c",label': ",", "text\tlabel": "\t", "a;b": ";", "a|b|c": "|",
             "one": ",", "a,b;c": ",", "": ","}  # fmt: skip
    for i, (header, sep) in enumerate(cases.items()):
        path = tmp_path / f"{i}.csv"
        path.write_text(header + "\nx\n")
        assert sep_of(path) == sep, header
    gz = tmp_path / "t.tsv.gz"
    gz.write_bytes(gzip.compress(b"text\tlabel\nx\ty\n"))
    assert sep_of(gz) == "\t"


def test_encoding_detection_reads_in_chunks_and_names_the_right_offset(tmp_path: Path) -> None:
    from archlab.data.csv_format import read_text_csv

    path = tmp_path / "big.csv"
    reads: list[str] = []

    def read(src: Path, codec: str, sep: str) -> str:  # what a reader does: decode it whole
        reads.append(codec)
        return src.read_bytes().decode(codec)

    # A two-byte UTF-8 character split by the 1 MiB chunk boundary, then a latin-1 byte.
    data = b"a" * ((1 << 20) - 1) + "é".encode() + b"xx" + b"\xe9" + b"yy"
    path.write_bytes(data)
    _, codec, note = read_text_csv(path, "auto", read)
    at = data.index(b"\xe9")
    assert codec == "cp1252" and f"(byte 0xe9 at offset {at})" in note
    assert reads == ["utf-8", "cp1252"]  # UTF-8 first; the file is scanned only when it fails
    path.write_bytes(b"a" * ((1 << 20) - 1) + "é".encode())  # valid across the boundary
    assert read_text_csv(path, "auto", read)[1:] == ("utf-8", "")
    path.write_bytes(b"abc\xc3")  # a character cut off at the end
    assert "byte 0xc3 at offset 3" in read_text_csv(path, "auto", read)[2]
    assert read_text_csv(path, "latin-1", read)[1:] == ("latin-1", "")  # a codec given: as is


def test_workbooks_and_binary_files_are_one_line_and_utf16_exports_read(tmp_path: Path) -> None:
    import zipfile

    book = tmp_path / "data.xlsx"
    with zipfile.ZipFile(book, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(ArchlabError, match=r"data.xlsx: a zip archive, not a CSV file \(an Excel"):
        load_text_table(book)
    png = _write(tmp_path / "fake.csv", "")
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    # Where the first NUL byte is, for a text file holding a stray one.
    with pytest.raises(ArchlabError, match=r"fake.csv: not a CSV file \(binary content: a NUL "
                       r"byte at line 3, offset 8\); if it is text, remove the NUL "):  # fmt: skip
        load_text_table(png)
    lines = _write(tmp_path / "data.jsonl", '{"text": "late", "airline_sentiment": "neg"\n')
    with pytest.raises(ArchlabError, match=r"data.jsonl: cannot be read as JSON \("):
        load_text_table(lines)
    # Excel's "Unicode text": UTF-16 with a byte-order mark, tab-separated
    rows = [(f"good {i} café", "pos") for i in range(6)] + [(f"bad {i}", "neg") for i in range(6)]
    u16 = tmp_path / "u16.txt"
    pd.DataFrame(rows, columns=["text", "airline_sentiment"]).to_csv(
        u16, sep="\t", index=False, encoding="utf-16"
    )
    table = load_text_table(u16)
    assert table.encoding == "utf-16" and table.notes == [] and len(table.texts) == 12
    assert "good 0 café" in table.texts


def test_texts_with_other_classes_than_the_run_are_refused(tweets: Path, tmp_path: Path) -> None:
    data, _ = built(text_cfg(tweets))
    other = tmp_path / "other.csv"
    df = pd.read_csv(tweets)
    df.loc[df.airline_sentiment == "neutral", "airline_sentiment"] = "mixed"
    df.to_csv(other, index=False)
    with pytest.raises(ArchlabError, match=r"other.csv: classes \['mixed', 'negative', 'posi"):
        TextData(text_cfg(other)).build(torch.device("cpu"), data.fitted)


# --- what new users' files hold: probe report of the text task ---


def _rows_csv(path: Path, rows: list[tuple[str, str]], encoding: str = "utf-8") -> Path:
    """``rows`` under a text,airline_sentiment header, quoted as a CSV writer quotes."""
    with open(path, "w", newline="", encoding=encoding) as f:
        csv.writer(f).writerows([("text", "airline_sentiment"), *rows])
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert all(n in err for n in needles), err


def test_predict_and_explain_read_file_always_as_a_file(
    tweets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = text_cfg(tweets, "data.subset=0", "train.max_steps_per_epoch=1", "train.epochs=1")
    run = str(runner.train(cfg, tmp_path / "runs"))
    capsys.readouterr()
    lines = _write(tmp_path / "texts.txt", "great crew café\n\n   \nlate again\n")
    assert main(["predict", run, "--file", str(lines)]) == 0
    out = capsys.readouterr().out
    assert [json.loads(r)["input"] for r in out.splitlines()] == ["great crew café", "late again"]
    assert "café" in out  # non-ASCII printed as itself, not as \u escapes
    tsv = _write(tmp_path / "texts.tsv", "id\ttext\n1\tgreat crew\n")
    assert main(["predict", run, "--file", str(tsv)]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == "great crew"
    # A text typed on the command line stays a text, even one that names a file.
    assert main(["predict", run, str(lines)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["input"] == str(lines)
    assert f"note: input 1 ('{lines}') is a file or folder here: read as a text; --file" in err
    assert main(["predict", run, "-"]) == 0  # no stdin: said
    assert "note: input 1 ('-') is not stdin: read as a text" in capsys.readouterr().err
    _one_line_error(capsys, ["predict", run, "--file", str(tmp_path / "no.txt")], "no.txt: no such")
    _one_line_error(capsys, ["predict", run, "--file", str(tmp_path / "no.csv")], "no.csv: no such")
    _one_line_error(capsys, ["predict", run, "  "], "an empty text")
    # A mistyped CSV name is not a text to classify, nor a header alone nothing to say.
    _one_line_error(capsys, ["predict", run, str(tmp_path / "typo.csv")], "typo.csv: no such file")
    header = _write(tmp_path / "h.csv", "text\n")
    _one_line_error(capsys, ["predict", run, "--file", str(header)], "h.csv: no texts to predict")
    empty = _write(tmp_path / "e.csv", 'text\nfine\n""\n')
    _one_line_error(capsys, ["predict", run, "--file", str(empty)], "e.csv", "data row 2", "empty")
    out_dir = tmp_path / "ex"
    assert main(["explain", run, "--file", str(lines), "--out", str(out_dir), "--steps", "4"]) == 0
    texts = [t["text"] for t in json.loads((out_dir / "explain.json").read_text())["texts"]]
    assert texts == ["great crew café", "late again"]
    capsys.readouterr()  # the explanation's own lines
    _one_line_error(capsys, ["explain", run, "--file", str(tmp_path / "no.txt")], "no such file")


def test_tfidf_baseline_fits_texts_without_words() -> None:
    from archlab.tasks.tfidf import tfidf_baseline

    emoji = ["😀😀👍", "😡😡👎", "😐", "🥰✈️", "💩😤"]
    texts = [emoji[i % 5] * (1 + i % 4) for i in range(60)]
    labels = np.array([[0, 1, 2, 0, 1][i % 5] for i in range(60)])
    split = {"train": np.arange(40), "val": np.arange(40, 50), "test": np.arange(50, 60)}
    metrics, _ = tfidf_baseline(texts, labels, split, ["a", "b", "c"])
    assert metrics["baseline_tfidf_accuracy"] == 1.0
    assert cross_fitted_probs(texts[:40], labels[:40], 3, 3, 0).shape == (40, 3)


def test_utf16_without_a_byte_order_mark(tmp_path: Path) -> None:
    rows = [(f"good {i} café", "pos") for i in range(6)] + [(f"bad {i}", "neg") for i in range(6)]
    body = "text,airline_sentiment\n" + "".join(f"{t},{lab}\n" for t, lab in rows)
    plain = _write(tmp_path / "plain.csv", body)
    with pytest.raises(ArchlabError, match=r"cannot decode as utf-16.*data.encoding=utf-16-le"):
        load_text_table(plain, encoding="utf-16")
    le = _write(tmp_path / "le.csv", body, "utf-16-le")
    table = load_text_table(le, encoding="utf-16-le")
    assert "good 0 café" in table.texts and len(table.texts) == 12
    # auto: no byte-order mark, but a NUL beside every ASCII character: UTF-16, said so.
    auto = load_text_table(le)
    assert auto.texts == table.texts and auto.encoding == "utf-16-le"
    assert any("has no byte-order mark but reads as UTF-16 (utf-16-le" in n for n in auto.notes)
    be = load_text_table(_write(tmp_path / "be.csv", body, "utf-16-be"))
    assert be.texts == table.texts and be.encoding == "utf-16-be"
    # Its header is read so too: a text,label file finds its label column.
    other = _write(tmp_path / "tl.csv", body.replace("airline_sentiment", "label", 1), "utf-16-le")
    assert load_text_table(other).texts == table.texts


def test_label_spellings_of_one_number_are_one_class_and_nan_is_missing(tmp_path: Path) -> None:
    rows = [(f"text {k} number {i}", f"{k}.0" if i % 2 else str(k)) for k in range(3)
            for i in range(8)]  # fmt: skip
    path = _rows_csv(tmp_path / "n.csv", rows)
    table = load_text_table(path)
    assert table.class_names == ["0", "1", "2"]
    assert any("'0' / '0.0' -> '0'" in n for n in table.notes)
    named = load_text_table(path, labels=("0.0", "1.0", "2.0"))  # data.labels' spelling wins
    assert named.class_names == ["0.0", "1.0", "2.0"] and len(named.texts) == 24
    missing = [(f"lost {i}", v) for i, v in enumerate(("NaN", "nan", "NA", "null"))]
    words = [(f"word {k} {i}", k) for k in ("pos", "neg") for i in range(4)]
    path = _rows_csv(tmp_path / "m.csv", words + missing)
    table = load_text_table(path)
    assert table.class_names == ["neg", "pos"] and table.counts["dropped_missing_label"] == 4
    kept = [*missing, *((f"other {i}", "NA") for i in range(4))]
    table = load_text_table(
        _rows_csv(tmp_path / "k.csv", words + kept), labels=("neg", "pos", "NA")
    )
    assert table.class_names == ["neg", "pos", "NA"] and table.counts["dropped_missing_label"] == 3


def test_the_first_lines_count_what_was_dropped_merged_and_cut(tmp_path: Path) -> None:
    rows = [(f"word {k} {i}", k) for k in ("pos", "neg", "neu") for i in range(5)]
    rows += [("", "pos"), ("   ", "neg"), ("no label", ""), ("word pos 0", "pos")]
    rows += [("word neg 0", "neg"), ("word neg 0", "pos")]  # 3 rows, 2 of them neg: neg
    rows += [(" ".join(["long"] * 12) + f" {i}", "neu") for i in range(2)]
    path = _rows_csv(tmp_path / "c.csv", rows)
    data, info = built(text_cfg(path, "data.labels=pos,neg", "data.max_length=8"))
    assert data.notes[0] == (f"data: {path}: 23 rows read: dropped 2 empty texts, 1 without a "
                             "label, 7 with a label outside data.labels; 3 repeats merged; 1 text "
                             "with conflicting labels took the majority label (data.conflicts=drop"
                             " drops them) -> 10 texts")  # fmt: skip
    # ... and the splits: their sizes and the training texts of each class
    n = {k: sum(v) for k, v in info["class_counts"].items()}
    pos, neg = info["class_counts"]["train"]
    sizes = f"{n['train']} / {n['val']} / {n['test']}"
    want = (
        f"data: {sizes} texts for train / val / test; training texts by class: pos {pos}, neg {neg}"
    )
    assert data.notes[1] == want
    data, info = built(text_cfg(path, "data.max_length=12"))
    assert data.notes[0].endswith("-> 17 texts; 2 texts cut at data.max_length=12 tokens")
    assert info["truncated_texts"] == 2  # 13 tokens each; texts of exactly 12 are not cut
    clean = _rows_csv(tmp_path / "ok.csv", [(f"w {k} {i}", k) for k in "ab" for i in range(10)])
    assert not any(n.startswith(f"data: {clean}") for n in built(text_cfg(clean))[0].notes)


def test_rows_with_more_fields_than_the_header_are_refused(tmp_path: Path) -> None:
    good = "".join(f"text {k} {i},{k}\n" for k in ("pos", "neg") for i in range(5))
    path = _write(tmp_path / "naive.csv", "text,airline_sentiment\n" + good
                  + "late, again,neg\nfine,pos\nbad, bad, bad,neg\n")  # fmt: skip
    with pytest.raises(ArchlabError) as e:
        load_text_table(path)
    msg = str(e.value)
    assert "naive.csv: line 12 has 3 fields but the header has 2 (2 row(s) with more)" in msg
    assert "must be quoted" in msg and "\n" not in msg
    # A separator closing each row (an empty last field) loses nothing and reads.
    trailing = _write(tmp_path / "t.csv", "text,airline_sentiment\n" + good.replace("\n", ",\n"))
    assert len(load_text_table(trailing).texts) == 10
    # A message listing values stays short, however many the file has.
    many = "".join(f"text {i},label{i}\n" for i in range(40)) + good
    with pytest.raises(ArchlabError) as e:
        load_text_table(_write(tmp_path / "many.csv", "text,airline_sentiment\n" + many))
    assert "... and 35 more" in str(e.value) and len(str(e.value)) < 500


def test_a_raw_text_opening_a_quote_mark_is_refused_not_glued_to_the_rows_after(
    tmp_path: Path,
) -> None:
    # A raw TSV (paste, a shell script): a text starting with " glued the rows up to the next
    # quote mark into one field, and half the rows went missing with exit 0.
    rows = [f"text {k} {i}\t{k}" for k in ("pos", "neg") for i in range(6)]
    rows[2], rows[8] = '"great flight\tpos', '"awful\tneg'
    path = _write(tmp_path / "raw.tsv", "text\tairline_sentiment\n" + "\n".join(rows) + "\n")
    with pytest.raises(ArchlabError, match=r"raw.tsv: line 4: a quote mark .* lines 4-10 would "
                       "read as one row"):  # fmt: skip
        load_text_table(path)
    # Quoted texts over several lines, and a quoted word at a text's start, still read.
    ok = ['"late,\nagain",neg', '"fine" flight,pos'] + [f"w {k} {i},{k}" for k in ("pos", "neg")
                                                         for i in range(5)]  # fmt: skip
    table = load_text_table(_write(tmp_path / "ok.csv", "text,airline_sentiment\n"
                                   + "\n".join(ok) + "\n"))  # fmt: skip
    assert "late,\nagain" in table.texts and "fine flight" in table.texts


def test_text_without_spaces_warns_that_it_does_not_split_into_words(tmp_path: Path) -> None:
    zh = ["航班延误了三个小时", "服务非常好谢谢", "座位还可以吧"]
    rows = [(f"{zh[i % 3]}{i}号", ("neg", "pos", "neu")[i % 3]) for i in range(60)]
    data, _ = built(text_cfg(_rows_csv(tmp_path / "zh.csv", rows)))
    assert any(
        n.startswith("warning: the training texts do not split into words") for n in data.notes
    )
    spaced = [(f"word{i % 7} other{i % 5} {k}", k) for i in range(20) for k in ("neg", "pos")]
    data, _ = built(text_cfg(_rows_csv(tmp_path / "en.csv", spaced)))
    assert not any("do not split into words" in n for n in data.notes)


def test_gzip_csv_reads_and_misnamed_gzip_is_one_line(tmp_path: Path) -> None:
    rows = [(f"text {k} {i}", k) for k in ("pos", "neg") for i in range(5)]
    plain = _rows_csv(tmp_path / "t.csv", rows)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_text_table(gz).texts == load_text_table(plain).texts
    misnamed = tmp_path / "z.csv"
    misnamed.write_bytes(gz.read_bytes())
    with pytest.raises(ArchlabError, match=r"z.csv: gzip-compressed data under a name that does"):
        load_text_table(misnamed)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gz.read_bytes()[:40])
    with pytest.raises(ArchlabError, match=r"cut.csv.gz: cannot be read"):
        load_text_table(cut)


def test_column_and_label_messages_quote_and_suggest(tmp_path: Path) -> None:
    rows = [(f"text {k} {i}", k) for k in ("pos", "neg") for i in range(5)]
    path = _rows_csv(tmp_path / "t.csv", rows)
    path.write_text(path.read_text().replace("text,", " Text ,", 1))
    # The default text column in another case, with spaces: read, and said (the name quoted).
    assert "texts read from column ' Text '" in load_text_table(path).notes[0]
    path.write_text(path.read_text().replace(" Text ,", " Words ,", 1))
    with pytest.raises(ArchlabError, match=r"columns found: ' Words ', 'airline_sentiment'"):
        load_text_table(path)
    with pytest.raises(ArchlabError, match=r"columns found: ' Words ', 'airline_sentiment'; "
                       r"did you mean ' Words '\?"):  # fmt: skip
        load_text_table(path, text_column="words")
    path = _rows_csv(tmp_path / "l.csv", rows)
    with pytest.raises(ArchlabError, match=r"data.labels 'Pos' not in column 'airline_sentiment' "
                       r"\(its labels: 'pos' \(5\), 'neg' \(5\)\)"):  # fmt: skip
        load_text_table(path, labels=("Pos", "neg"))
    with pytest.raises(ArchlabError, match=r"h.csv: a header line but no rows"):
        load_text_table(_write(tmp_path / "h.csv", "text,airline_sentiment\n"))


def test_many_small_classes_carve_one_text_per_class_and_say_so(tmp_path: Path) -> None:
    # 12 labels of 3 texts: 15% of 36 is 5, fewer than the classes; stratifying needs 12.
    rows = [f"topic{k} words number {i} here,t{k:02d}" for k in range(12) for i in range(3)]
    path = tmp_path / "many.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    data, info = built(text_cfg(path))
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 12, "val": 12, "test": 12}
    assert info["class_counts"]["test"] == [1] * 12
    want = (f"data: {path}: 36 texts in 12 classes: a 15% test split (5 texts) and a 15% val "
            "split (5 texts) would hold fewer than one per class, which stratifying needs: "
            "carved one per class at least instead (test 12, val 12 texts)")  # fmt: skip
    assert want in data.notes


def test_labels_ending_in_invisible_characters_are_one_class_said(tmp_path: Path) -> None:
    # A zero-width space (web copies) and a byte-order mark print as nothing: no class of their own.
    labels = ["pos", "neg", "pos\u200b", "neg\ufeff", "\u200bneg "]
    rows = [f"text number {i} {'good' if i % 2 else 'bad'},{labels[i % 5]}" for i in range(30)]
    path = tmp_path / "zwsp.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    t = load_text_table(path, "text", "label")
    assert t.class_names == ["neg", "pos"]
    want = (f"data: {path}: 18 label(s) held invisible format characters (U+200B 12, U+FEFF 6), "
            r"removed as spaces are: 'neg\ufeff' -> 'neg', '\u200bneg' -> 'neg', 'pos\u200b' "
            "-> 'pos'")  # fmt: skip
    assert want in t.notes


def test_an_empty_class_folder_is_no_class_as_for_images(tmp_path: Path) -> None:
    root = tmp_path / "texts"
    for label, words in (("pos", "good great"), ("neg", "bad awful")):
        (root / label).mkdir(parents=True)
        for i in range(6):
            (root / label / f"{i}.txt").write_text(f"{words} number {i}")
    (root / "empty_label").mkdir()
    want = f"data: {root}: 1 class folder(s) hold no files (empty_label): not classes, left out"
    for held_out in (False, True):  # training, and eval --all
        t = load_text_table(root, "text", "label", held_out=held_out)
        assert t.class_names == ["neg", "pos"] and want in t.notes


def test_a_class_named_train_reads_with_data_layout_classes(tmp_path: Path) -> None:
    root = tmp_path / "vehicles"
    for label in ("bus", "car", "train"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            (root / label / f"{i}.txt").write_text(f"a {label} ride number {i}")
    with pytest.raises(ArchlabError, match=r"vehicles: split folders \(train\) beside other "
                       r"folders \['bus', 'car'\]; move those out, or set data.layout=classes to "
                       r"read every folder as a class$"):  # fmt: skip
        load_text_table(root, "text", "label")
    cfg = text_cfg(root, "data.layout=classes")
    assert cfg.data.layout == "classes"
    data, info = built(cfg)
    assert info["class_names"] == ["bus", "car", "train"] and len(data.context.labels) == 15
    with pytest.raises(ArchlabError, match=r"data.layout"):
        text_cfg(root, "data.layout=flat")
    from archlab.cli import main  # eda reads the folder as training does

    assert main(["eda", "--task", "text", "--data", str(root), "--set", "data.layout=classes",
                 "--out", str(tmp_path / "eda")]) == 0  # fmt: skip


def test_column_hints_name_the_columns_read_not_the_defaults(tmp_path: Path) -> None:
    # The label column read is 'label' (the default airline_sentiment is absent): errors say so.
    ids = tmp_path / "dupcol.csv"  # an id column and the texts both named 'text'
    ids.write_text(
        "text,text,label\n" + "".join(f"{i},nice text {i},{'ab'[i % 2]}\n" for i in range(9))
    )
    with pytest.raises(ArchlabError, match=r"dupcol.csv: no usable rows in columns 'text'/"
                       r"'label' \(0 empty texts, 9 numbers, 0 missing labels\); the header names "
                       r"'text' twice: the first was read, set data.text_column=text.1 to read "
                       r"the second$"):  # fmt: skip
        load_text_table(ids)
    assert len(load_text_table(ids, "text.1", "label").texts) == 9
    # A run on the defaults reads other names too: the hint lists them.
    bare = tmp_path / "bare.csv"
    bare.write_text("great love\nawful\n")
    with pytest.raises(ArchlabError, match=r"reads its texts from a column named 'text' \(or "
                       r"review, sentence, .*: the first the file has\) and its labels from one "
                       r"named 'airline_sentiment' \(or label, labels, sentiment, "):  # fmt: skip
        load_text_table(bare, fix=for_run("text", "airline_sentiment"))
    with pytest.raises(ArchlabError, match=r"named 'text' \(or review, .*\): name it so$"):
        read_input_texts(bare, "text", "auto")
    # A run that named its columns is told those alone.
    assert for_run("tweet", "mood").endswith("named 'tweet' and its labels from one named "
                                             "'mood': name them so in the file")  # fmt: skip


def test_labels_holding_a_comma_are_said_to_be_classes_of_their_own(tmp_path: Path) -> None:
    labels = ["pos", "neg", "neg,pos"]
    rows = [f'text number {i},"{labels[i % 3]}"' for i in range(12)]
    path = tmp_path / "multi.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    t = load_text_table(path, "text", "label")
    assert t.class_names == ["neg", "neg,pos", "pos"]
    assert (f"data: {path}: 1 label(s) hold a comma ('neg,pos'): each is read as a class of its "
            "own, not as several labels (multi-label data is not read)") in t.notes  # fmt: skip


# --- Parquet and JSON tables: the Hugging Face Hub's and pandas' exports ---


def _hub_parquet(path: Path, rows: list[tuple[str, int]], names: list[str]) -> Path:
    """A Parquet file as the Hub writes one: integer labels, their names in its metadata."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    info = {"info": {"features": {"text": {"dtype": "string", "_type": "Value"},
                                  "label": {"names": names, "_type": "ClassLabel"}}}}  # fmt: skip
    meta = {**(table.schema.metadata or {}), b"huggingface": json.dumps(info).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def test_parquet_and_json_tables_read_as_their_csv_would(tmp_path: Path) -> None:
    rows = [(f"good flight {i}", 2) for i in range(8)] + [(f"late again {i}", 0) for i in range(8)]
    rows += [("meh 007", 1), ("ok I guess", 1)] * 2 + [("NA", 1)] * 3  # 'NA' is a text
    hub = _hub_parquet(tmp_path / "train-00000-of-00001.parquet", rows, ["neg", "neu", "pos"])
    table = load_text_table(hub, "text", "label")
    assert table.class_names == ["neg", "neu", "pos"] and "NA" in table.texts
    assert table.counts["rows_read"] == len(rows) and table.encoding == "utf-8"
    assert any("class ids read as the names its Hugging Face metadata gives them: 'label' "
               "(neg, neu, pos)" in n for n in table.notes)  # fmt: skip
    df = pd.DataFrame(rows, columns=["text", "label"]).astype({"label": str})
    as_csv = tmp_path / "same.csv"
    df.to_csv(as_csv, index=False)
    want = load_text_table(as_csv, "text", "label")
    # JSON lines (gzipped too) and a JSON array of records: the same table as the CSV's.
    for name, kw in (("t.jsonl", {"lines": True}), ("t.ndjson.gz", {"lines": True}),
                     ("t.json", {})):  # fmt: skip
        df.to_json(tmp_path / name, orient="records", **kw)
        got = load_text_table(tmp_path / name, "text", "label")
        assert (got.texts, got.labels.tolist()) == (want.texts, want.labels.tolist()), name
    # The study's default columns are found in a table as in a CSV; a missing one names them.
    df.rename(columns={"label": "sentiment"}).to_json(tmp_path / "s.jsonl", orient="records",
                                                      lines=True)  # fmt: skip
    assert load_text_table(tmp_path / "s.jsonl").class_names == ["0", "1", "2"]
    with pytest.raises(ArchlabError, match=r"s\.jsonl: no column 'stars' \(columns found: "
                       r"'text', 'sentiment'\)"):  # fmt: skip
        load_text_table(tmp_path / "s.jsonl", "text", "stars")
    bad = _write(tmp_path / "bad.parquet", "text,label\n")
    with pytest.raises(ArchlabError, match=r"bad\.parquet: cannot be read as Parquet \("):
        load_text_table(bad, "text", "label")


def test_a_folder_of_split_tables_gives_the_datas_split(tmp_path: Path) -> None:
    # A Hub repository: README.md beside data/, the train split in two shards.
    names = ["neg", "pos"]
    rows = [(f"awful trip {i}", 0) for i in range(12)]
    rows += [(f"lovely crew {i}", 1) for i in range(12)]
    hub = tmp_path / "hub"
    (hub / "data").mkdir(parents=True)
    (hub / "README.md").write_text("# a data set card\n")
    _hub_parquet(hub / "data" / "train-00000-of-00002.parquet", rows[:6] + rows[12:18], names)
    _hub_parquet(hub / "data" / "train-00001-of-00002.parquet", rows[6:10] + rows[18:22], names)
    _hub_parquet(hub / "data" / "test-00000-of-00001.parquet", rows[10:12] + rows[22:], names)
    assert set(split_tables(hub, is_csv_name)) == {"train", "test"}
    table = load_text_table(hub, "text", "label")
    assert table.class_names == names and len(table.texts) == 24 and not table.text_files
    assert table.split_origin == {"train": "train-00000-of-00002.parquet (+1)",
                                  "test": "test-00000-of-00001.parquet"}  # fmt: skip
    assert sorted(table.provided_split[table.labels == 0]).count("test") == 2
    assert sum("Hugging Face metadata" in n for n in table.notes) == 1  # said once
    with fingerprint.recording() as reads:
        load_text_table(hub, "text", "label")
    assert {Path(p).name for p in reads} == {p.name for p in (hub / "data").iterdir()}
    # A Hub test split with its labels hidden (-1): no labelled text, so no test from it.
    _hub_parquet(hub / "data" / "test-00000-of-00001.parquet", [("who knows", -1)] * 3, names)
    table = load_text_table(hub, "text", "label")
    assert "test" not in table.split_origin and table.counts["dropped_missing_label"] == 3
    # Kaggle's layout: a test.csv to predict (no labels) and a sample submission, both said.
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    df = pd.DataFrame(rows, columns=["review", "sentiment"])
    df.iloc[::2].to_csv(kaggle / "train.csv", index=False)
    df.iloc[1::2].to_csv(kaggle / "valid.csv", index=False)
    df[["review"]].to_csv(kaggle / "test.csv", index=False)
    df[["sentiment"]].to_csv(kaggle / "sample_submission.csv", index=False)
    table = load_text_table(kaggle)  # the columns found as in one CSV
    assert table.split_origin == {"train": "train.csv", "val": "valid.csv"}
    assert table.columns == ("review", "sentiment") and len(table.texts) == 24
    text = "\n".join(table.notes)
    assert "test.csv left out: no column 'sentiment' (no labels to score" in text
    assert "sample_submission.csv left out: no split in the name" in text
    # data.layout=classes reads every folder as a class, as for class folders.
    with pytest.raises(ArchlabError, match="a folder without class sub-folders"):
        load_text_table(kaggle, layout="classes")
