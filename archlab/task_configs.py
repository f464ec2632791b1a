"""What each task's config may hold: its data and model sections (frozen dataclasses, validated
when built), the regularization knobs it reads and its augmentation names (TASK_CONFIGS).

This module imports neither torch nor pandas, so the CLI can list presets, build and check
configs without loading either (``archlab train --list-presets``), and ``archlab.config`` checks
a run's ``reg`` section against TASK_CONFIGS without importing the tasks. The task modules
(``archlab.tasks.*``) use and re-export the config classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from archlab.errors import ArchlabError

# Model name -> the task whose data it consumes: the one list of model names. The MODELS
# registry (archlab.models, which imports torch) takes each network's task from here and
# refuses to import when the two name different models.
MODEL_TASKS: dict[str, str] = {
    "vgg13": "images",
    "vgg13_bn": "images",
    "resnet18": "images",
    "rnn": "sales",
    "lstm": "sales",
    "gru": "sales",
    "lstm-basic": "text",
    "bilstm": "text",
}
MARKDOWNS = ("MarkDown1", "MarkDown2", "MarkDown3", "MarkDown4", "MarkDown5")


def models_for(task: str) -> list[str]:
    """The model names a task can train, in registry order."""
    return [name for name, t in MODEL_TASKS.items() if t == task]


# The largest side images are resized to: a 4096 x 4096 RGB batch of 64 is already 3 GB.
MAX_IMAGE_SIZE = 4096


def _check_class_weight_power(power: float) -> None:
    """data.class_weight_power of images and text: the weights' exponent, in (0, 1]."""
    if not 0 < power <= 1:
        raise ArchlabError(f"invalid config value data.class_weight_power={power}: in (0, 1]")


@dataclass(frozen=True)
class ImageDataConfig:
    """Where the images come from and how they are prepared."""

    # class folders, split folders, a .csv manifest, a Parquet file (or split files) of
    # encoded images, an .npz, "" = sklearn digits
    path: str = ""
    format: Literal["auto", "folder", "manifest", "table", "npz", "digits"] = "auto"  # auto: path
    # Folders: auto = root/train (+ val|valid|validation, test)/<class>/... when root holds a
    # train/ folder, else root/<class>/...; split = require the former, classes = the latter.
    layout: Literal["auto", "split", "classes"] = "auto"
    # CSV manifest (--data labels.csv): columns '' = detected (path/filename/file/image/id...,
    # label/class/category/target..., split/subset/set); paths are relative to image_root
    # ('' = the CSV's folder). A split column's train/val/test tags are honoured (split_column=
    # none: no split column; archlab splits).
    path_column: str = ""
    label_column: str = ""  # manifest: the label column ("" = detected)
    split_column: str = ""  # manifest: the split column ("" = detected, none = ignore one)
    image_root: str = ""  # manifest: the folder its paths are relative to
    # Images are resized to size x size pixels; 0 = auto: their median shorter side, held to
    # 32..64 (image_set.AUTO_SIZE; an .npz of 32 px images stays 32); the run records it.
    size: int = 0
    # 1 = grayscale (the study's presets), 3 = RGB, 0 = auto: RGB when any image has colour
    # (images.COLOUR_SPREAD), else grayscale; the run records what it chose (data.json).
    channels: int = 0
    val_fraction: float = 0.15  # share of all images carved as validation (stratified)
    test_fraction: float = 0.15  # share of all images carved as test (stratified)
    # Honour an npz 'split' array (val carved from its train). Split folders and a manifest's
    # split column are always honoured: missing val/test splits are carved from train.
    use_provided_split: bool = False
    subset: int = 0  # stratified random subset of this many images before splitting (0 = all)
    skip_corrupt: bool = False  # skip (and count) unreadable files instead of failing
    class_weights: bool = False  # weight cross-entropy by inverse training-class frequency
    # The weights are (inverse frequency) ** class_weight_power: 1 balances the classes fully,
    # 0.5 (square root) weights rare classes up by less, so accuracy gives up less for them.
    class_weight_power: float = 1.0
    mean: float = 0.5  # normalization: (x/255 - mean) / std, as the study
    std: float = 0.5  # normalization divisor (see mean)

    def __post_init__(self) -> None:
        if self.size < 0 or self.size == 1 or self.size > MAX_IMAGE_SIZE:
            raise ArchlabError(
                f"invalid config value data.size={self.size}: must be 2..{MAX_IMAGE_SIZE} "
                "(or 0 = auto: the images' median shorter side, held to 32..64)"
            )
        if self.channels not in (0, 1, 3):
            raise ArchlabError(
                f"invalid config value data.channels={self.channels}: 1, 3 or 0 (auto)"
            )
        if self.std <= 0:
            raise ArchlabError(f"invalid config value data.std={self.std}: must be > 0")
        if self.subset < 0:
            raise ArchlabError(f"invalid config value data.subset={self.subset}: must be >= 0")
        _check_class_weight_power(self.class_weight_power)


@dataclass(frozen=True)
class ImageModelConfig:
    name: str = "resnet18"  # the network: vgg13, vgg13_bn, resnet18
    # Test-time augmentation: "flip" averages the logits of each image and its mirror image in
    # evaluation and prediction (training is unchanged).
    tta: Literal["none", "flip"] = "none"
    # Starting weights: an archlab image run directory, or a torchvision-format state dict of
    # the same network (.safetensors, or .pth/.pt read with torch.load(weights_only=True)).
    # "" = a random initialization. See archlab/tasks/init_weights.py.
    init: str = ""
    # Fine-tuning from model.init: train only the layers that start afresh (the head, and any
    # linear layer the source could not fill) for the first freeze_epochs epochs, so random
    # head gradients do not wreck the loaded features; then train everything. 0 = no freezing.
    freeze_epochs: int = 0
    # Fine-tuning from model.init: the loaded convolutional body learns at this fraction of
    # optim.lr (discriminative rates: features that already work move less than a new head).
    # 1 = one rate for every layer.
    body_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        valid = models_for("images")
        if self.name not in valid:
            raise ArchlabError(f"unknown image model {self.name!r}; valid: {', '.join(valid)}")
        if self.freeze_epochs < 0:
            raise ArchlabError(
                f"invalid config value model.freeze_epochs={self.freeze_epochs}: must be >= 0"
            )
        if self.freeze_epochs and not self.init:
            raise ArchlabError(
                f"model.freeze_epochs={self.freeze_epochs} freezes loaded layers: it needs "
                "model.init=PATH (starting weights)"
            )
        if not 0 < self.body_lr_scale <= 1:
            raise ArchlabError(
                f"invalid config value model.body_lr_scale={self.body_lr_scale}: must be in (0, 1]"
            )
        if self.body_lr_scale != 1 and not self.init:
            raise ArchlabError(
                f"model.body_lr_scale={self.body_lr_scale} slows loaded layers: it needs "
                "model.init=PATH (starting weights)"
            )


@dataclass(frozen=True)
class TextDataConfig:
    """Which CSV columns hold text and label, and how texts become token ids."""

    path: str = ""  # a CSV file, or a folder of class folders of text files (docs/text.md)
    text_column: str = "text"  # the column holding the texts
    label_column: str = "airline_sentiment"  # the column holding the labels
    # The CSV's text encoding (a Python codec name, e.g. latin-1). auto: UTF-8 when the whole
    # file decodes as UTF-8, else Windows' western cp1252 (then latin-1), said in a first line.
    encoding: str = "auto"
    labels: tuple[str, ...] = ()  # class order; rows with other labels are dropped (empty = all)
    group_column: str = ""  # EDA breakdown column ("" = 'airline' if the file has it)
    conflicts: Literal["majority", "drop"] = "majority"  # repeated texts with differing labels
    val_fraction: float = 0.15  # share of distinct texts in validation (stratified)
    test_fraction: float = 0.15  # share of distinct texts in test (stratified)
    subset: int = 0  # stratified random subset of this many distinct texts (0 = all)
    vocab_size: int = 20_000  # most frequent training-split words kept, incl. [PAD] and [UNK]
    min_frequency: int = 2  # rarer training words map to [UNK]
    max_length: int = 64  # tokens per text (tweets have at most ~50)
    # @mentions: "drop" maps every one to <user>; "keep" keeps those seen at least
    # mention_min_count times in the training split as their own tokens (@united: on the
    # airline tweets the first mention names the airline) and maps the rarer ones to <user>.
    # Grouping repeated texts (and so the split) ignores mentions either way.
    mentions: Literal["drop", "keep"] = "drop"
    mention_min_count: int = 10  # mentions=keep: training occurrences a mention needs
    class_weights: bool = False  # weight cross-entropy by inverse training-class frequency
    # The weights are (inverse frequency) ** class_weight_power: 1 balances the classes fully,
    # 0.5 (square root) weights rare classes up by less, so accuracy gives up less for them.
    class_weight_power: float = 1.0
    # A numeric column of per-row training weights (e.g. the annotators' agreement; repeated
    # texts take the mean of their majority-label rows). It weights each training text's loss,
    # the distillation teacher's and the TF-IDF baseline's fits; validation and test are scored
    # unweighted, so early stopping and the metrics stay comparable. "" = every text counts 1.
    weight_column: str = ""
    # A column tagging each row's split: train, val or test (also the other names split folders
    # take, any case); a split no row names is carved from train. "" = the run draws the split.
    split_column: str = ""
    # Folders: auto = root/train (+ val|valid|validation, test)/<class>/... when root holds a
    # train/ folder, else root/<class>/...; split = require the former, classes = the latter
    # (a class named train beside bus/ and car/). As images' data.layout; a CSV ignores it.
    layout: Literal["auto", "split", "classes"] = "auto"
    # After training, the predicted probabilities are w x the network's + (1 - w) x those of the
    # TF-IDF baseline (fitted on the same training texts), reported as test_blend_* and used
    # by predict and serve. auto: w of text_blend.BLEND_WEIGHTS with the best validation
    # macro-F1; a number forces it; 1 = the network alone.
    tfidf_blend: float | Literal["auto"] = "auto"
    # Knowledge distillation: training targets become (1 - distill) * one-hot label + distill *
    # the TF-IDF teacher's probabilities, each cross-fitted (from a teacher that never saw that
    # text) over distill_folds folds of the training split. 0 = hard labels only.
    distill: float = 0.0
    distill_folds: int = 5  # folds of the cross-fitted distillation teacher
    # Pretrained word vectors (GloVe text, or word2vec/fastText text with a 'count dim' header;
    # plain or .gz). Sets the embedding size, splits tokens as GloVe does (can't -> ca n't) and
    # initializes the rows of words that have a vector. "" = a randomly initialized embedding.
    embeddings: str = ""
    # Besides every training word that has a vector, the file's first N words (its most frequent)
    # join the vocabulary, so words never seen in training keep their vector (-1 = all, 0 = none).
    embeddings_words: int = 100_000

    def __post_init__(self) -> None:
        if self.vocab_size < 3:
            raise ArchlabError(f"invalid config value data.vocab_size={self.vocab_size}: >= 3")
        if self.min_frequency < 1:
            raise ArchlabError(
                f"invalid config value data.min_frequency={self.min_frequency}: must be >= 1"
            )
        if self.max_length < 1:
            raise ArchlabError(f"invalid config value data.max_length={self.max_length}: >= 1")
        if self.subset < 0:
            raise ArchlabError(f"invalid config value data.subset={self.subset}: must be >= 0")
        _check_class_weight_power(self.class_weight_power)
        if not self.text_column or not self.label_column:
            raise ArchlabError("data.text_column and data.label_column must not be empty")
        if self.weight_column in (self.text_column, self.label_column):
            raise ArchlabError(
                f"invalid config value data.weight_column={self.weight_column}: it is the "
                "text or the label column; name a numeric column of weights"
            )
        if self.split_column and self.split_column in (self.text_column, self.label_column):
            raise ArchlabError(
                f"invalid config value data.split_column={self.split_column}: it is the text or "
                "the label column; name the column that tags rows train, val or test"
            )
        if not 0 <= self.distill <= 1:
            raise ArchlabError(f"invalid config value data.distill={self.distill}: in [0, 1]")
        if self.tfidf_blend != "auto" and not 0 <= self.tfidf_blend <= 1:
            raise ArchlabError(
                f"invalid config value data.tfidf_blend={self.tfidf_blend}: auto, or in [0, 1]"
            )
        if self.distill_folds < 2:
            raise ArchlabError(
                f"invalid config value data.distill_folds={self.distill_folds}: must be >= 2"
            )
        if self.mention_min_count < 1:
            raise ArchlabError(
                f"invalid config value data.mention_min_count={self.mention_min_count}: "
                "must be >= 1"
            )
        if self.embeddings_words < -1:
            raise ArchlabError(
                f"invalid config value data.embeddings_words={self.embeddings_words}: "
                "-1 (all), 0 (none) or a number of words"
            )


@dataclass(frozen=True)
class TextModelConfig:
    """Which network; None keeps the model's own default for that size."""

    name: str = "bilstm"  # the network: lstm-basic, bilstm
    embed_dim: int | None = None  # embedding size (set by data.embeddings when given)
    hidden_size: int | None = None  # LSTM units per layer (and direction)
    num_layers: int | None = None  # stacked LSTM layers
    pooling: Literal["last", "max", "meanmax"] = "last"  # meanmax: mean and max concatenated
    # Keep the embedding fixed (e.g. at its pretrained vectors) for freeze_epochs epochs, then
    # fine-tune it; freeze_epochs 0 = frozen for the whole run.
    freeze_embeddings: bool = False
    freeze_epochs: int = 0  # epochs the embedding stays frozen (with freeze_embeddings)

    def __post_init__(self) -> None:
        valid = models_for("text")
        if self.name not in valid:
            raise ArchlabError(f"unknown text model {self.name!r}; valid: {', '.join(valid)}")
        for key in ("embed_dim", "hidden_size", "num_layers"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ArchlabError(f"invalid config value model.{key}={v}: must be >= 1")
        if self.freeze_epochs < 0:
            raise ArchlabError(
                f"invalid config value model.freeze_epochs={self.freeze_epochs}: must be >= 0"
            )


@dataclass(frozen=True)
class SalesDataConfig:
    """Where the panel comes from, its column names, and how samples are framed and split."""

    # A folder holding the files below, or the sales CSV itself (then the tables below are read
    # from beside it when there). Tables, the holiday column and covariates left at these
    # (Walmart) defaults are skipped when the data has none; values you set must exist.
    path: str = ""
    train_file: str = "train.csv"  # also found as train.csv.gz
    features_file: str = "features.csv"  # "" = none
    stores_file: str = "stores.csv"  # "" = none
    # The CSVs' text encoding (a Python codec name). auto: UTF-8 when a whole file decodes as
    # UTF-8, else Windows' western cp1252 (then latin-1), said in a first line.
    encoding: str = "auto"
    date_column: str = "Date"  # the column holding the dates
    # This default (ISO) and "auto": the one of sales_csv.DATE_FORMATS that reads every date (ISO,
    # day-first, month-first, ...); an ambiguous day/month order is refused. Any other strftime
    # format, e.g. %d/%m/%Y, is used as given.
    date_format: str = "%Y-%m-%d"
    # The columns naming a series; the last groups series across stores. Empty (or none): the
    # file is one series, keyed by a column ``series`` (value ``all``) that reading adds.
    series_keys: tuple[str, ...] = ("Store", "Dept")
    store_column: str = "Store"  # join key of the stores and features tables
    target: str = "Weekly_Sales"  # the column to forecast
    holiday_column: str = "IsHoliday"  # "" = no holiday flag (every weight 1)
    covariates: tuple[str, ...] = (  # numeric inputs beside the sales (merged from the tables)
        "Temperature",
        "Fuel_Price",
        *MARKDOWNS,
        "CPI",
        "Unemployment",
        "Size",
    )
    markdown_columns: tuple[str, ...] = MARKDOWNS  # NA -> 0 (no promotion)
    missing_indicators: bool = False  # add <markdown>_missing columns (used as covariates)
    # Drop trailing dates that fewer than this share of the busiest date's series reach (a stray
    # row dated past the others would otherwise become the test period); 0 keeps every date.
    tail_min_coverage: float = 0.1
    ffill_columns: tuple[str, ...] = ("CPI", "Unemployment")  # forward-filled per store
    # forecast: per-series windows and a time split; parity: the study's row-per-sample setup
    framing: Literal["forecast", "parity"] = "forecast"
    # Fields typed ``X | None`` (the recipe below) default to None: derived from the data's
    # time step and season (archlab/data/sales_recipe.py); a value set is used as given.
    # data.json's ``recipe`` says where each came from and why.

    # history steps before the target step (origin); None: 56 days of steps, at least 3
    window: int | None = None
    # Steps per seasonal cycle. This default follows the time step: 52 weekly, 13 4-weekly, 12
    # monthly, 4 quarterly, 2 half-yearly, 7 daily and 5 on business days (the week), else
    # round(365.25 / step days); any other value is used as given.
    season: int = 52
    # Next-step forecasting (H = 1): the last test_steps steps are the test, each forecast from
    # the step before it. None: a quarter of a year of steps (13 weekly, 91 daily), at most a
    # quarter of the history; the study's presets test Walmart's last 39 weeks.
    test_steps: int | None = None
    val_steps: int | None = None  # steps before the test steps used as validation
    # A sample needs these lags observed; this default means 1 and the season (as resolved).
    require_lags: tuple[int, ...] = (1, 52)
    # Predict y - baseline; last_week is the old name of last_step (the previous step's value).
    residual: Literal["none", "last_step", "last_week", "seasonal", "mean"] = "mean"
    min_scale: float = 1.0  # floor of the per-series scale (sales units)
    stores: tuple[int, ...] = ()  # keep only these stores (empty = all)
    depts: tuple[int, ...] = ()  # keep only these groups (last series key; empty = all)
    parity_onehot: tuple[str, ...] = ("Store", "Dept", "Type")  # one-hot inputs (parity)
    val_fraction: float = 0.15  # parity split
    test_fraction: float = 0.15  # parity split
    plot_series: tuple[str, ...] = ()  # e.g. "1-1" (Store-Dept); empty = the largest series
    # Moving calendar events (YYYY-MM-DD, e.g. Easter Sundays): the step whose period holds one
    # gets an event flag, as does the step a season later (forecast framing; see
    # data/sales_horizon.py).
    events: tuple[str, ...] = ()
    # Multi-horizon forecasting (archlab/tasks/sales_horizon*.py): H > 1 forecasts the H steps
    # after an origin at once from the data up to it; test = the last H steps. Covariates named
    # in known_covariates (e.g. Walmart's features.csv, which covers the test period) are kept
    # on the future steps; the others are not known there. backtest_origins=K also scores K
    # origins rolled back one step at a time from the test origin (K <= val_steps + 1).
    horizon: int = 1
    # None: the covariates with values on the H steps after the data's last date (a features
    # table covering them, or one value per series); () = none.
    known_covariates: tuple[str, ...] | None = None
    backtest_origins: int = 0  # H > 1: also score this many origins before the test's
    # H > 1: level_steps=N gives every future step the series' level shift, the mean of the N
    # steps up to the origin minus the same N steps a season earlier, as an input; the residual
    # base (last season's 3-step smoothing) then adds level_weight x that shift. 0 = off.
    level_steps: int | None = None
    level_weight: float | None = None  # H > 1: weight of the level shift added to the base
    # H > 1: the width of the centred smoothing of last season's step in the residual base: 3
    # or 1 (the step itself, e.g. the same day last week).
    smooth_steps: int | None = None
    # H > 1: training targets cover every step before the test origin (the validation and
    # val_gap steps too), so the model that forecasts the test is fit as a forecaster deploys
    # one. The val metrics are then on steps it trained on: a monitor, no longer held out.
    fit_through_val: bool = False
    # H > 1: the val_gap steps between the validation steps and the test are in neither, so
    # the validation weeks can resemble the test's (Walmart: Aug-Oct, not the Nov-Jan holidays
    # before a February-October test). Training targets end before the validation steps.
    val_gap: int | None = None
    # Forecast = residual base + correction_scale x the network's correction (any H), at
    # evaluation and predict time (training fits the full correction). 1 = the network alone;
    # below 1 shrinks its correction toward the base, a combination of network and rule. auto:
    # the scale of sales_horizon.SCALES with the lowest validation WMAE after training (every
    # scale's is in correction_scale.json); a number forces it.
    correction_scale: float | Literal["auto"] = "auto"
    # The statistical peer scored beside the naive baselines on the same test rows
    # (archlab/data/sales_peer.py; about 45 s of CPU on Walmart's 3,331 series); with H = 1
    # fitted at the first test origin and rolled one step at a time. none = off.
    peer: Literal["mstl_ets", "none"] = "mstl_ets"
    # With a peer: the hybrid forecast w x network + (1 - w) x peer, reported as test_blend_*
    # and used by predict. auto: w of sales_posthoc.BLEND_WEIGHTS with the lowest validation
    # WMAE, the peer fit at the validation origin too (on the steps up to it; with H = 1 rolled
    # over the validation steps); a number forces it; 1 = the network alone (the peer is then
    # not fit at the validation origin).
    blend_weight: float | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        def bad(key: str, need: str) -> ArchlabError:
            return ArchlabError(f"invalid config value data.{key}={getattr(self, key)!r}: {need}")

        if self.horizon < 1:
            raise bad("horizon", "must be >= 1 (steps ahead; 1 = next-step forecasting)")
        if self.backtest_origins < 0:
            raise bad("backtest_origins", "must be >= 0")
        if not 0 <= self.tail_min_coverage <= 1:
            raise bad("tail_min_coverage", "must be a share from 0 to 1")
        if self.val_steps is not None and self.backtest_origins > self.val_steps + 1:
            raise bad("backtest_origins", f"at most data.val_steps + 1 = {self.val_steps + 1}")
        unknown = [k for k in self.known_covariates or () if k not in self.covariates]
        if unknown:
            raise bad("known_covariates", f"{unknown} not in data.covariates {self.covariates}")
        if self.horizon > 1 and self.framing == "parity":
            raise bad("horizon", "needs data.framing=forecast")
        if self.level_steps is not None and self.level_steps < 0:
            raise bad("level_steps", "must be >= 0 (0 = no level-shift input)")
        if self.level_weight is not None and not 0 <= self.level_weight <= 1:
            raise bad("level_weight", "must be in [0, 1]")
        if self.val_gap is not None and self.val_gap < 0:
            raise bad("val_gap", "must be >= 0")
        if self.smooth_steps not in (None, 1, 3):
            raise bad("smooth_steps", "1 (last season's step alone) or 3 (with its neighbours)")
        if self.correction_scale != "auto" and not 0 <= self.correction_scale <= 1:
            raise bad("correction_scale", "must be in [0, 1] (0 = the residual base alone) or auto")
        if self.blend_weight != "auto" and not 0 <= self.blend_weight <= 1:
            raise bad("blend_weight", "must be in [0, 1] (1 = the network alone) or auto")
        if self.blend_weight not in ("auto", 1.0) and self.peer == "none":
            raise bad("blend_weight", "blends the network with data.peer, which is none")
        horizon_only = ("level_steps", "level_weight", "fit_through_val", "val_gap", "smooth_steps")
        for key in horizon_only:
            v = getattr(self, key)
            # The rolling origins of H = 1 set these (no level shift, no gap, a smoothing).
            neutral = (v == 0 and key in ("level_steps", "level_weight", "val_gap")) or (
                key == "smooth_steps"
            )
            if self.horizon == 1 and v != self.__dataclass_fields__[key].default and not neutral:
                raise bad(key, "is for multi-horizon forecasting: set data.horizon > 1")
        if self.fit_through_val and self.backtest_origins > 1:
            raise bad(
                "fit_through_val",
                "trains on the validation steps that data.backtest_origins > 1 scores: use one",
            )
        if self.level_weight and self.level_steps == 0:
            raise bad("level_weight", "needs data.level_steps > 0 (the shift it weighs)")

        if self.window is not None and self.window < 1:
            raise bad("window", "must be >= 1")
        if self.season < 2:
            raise bad("season", "must be >= 2")
        for key in ("test_steps", "val_steps"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise bad(key, "must be >= 1")
        if any(lag < 1 for lag in self.require_lags):
            raise bad("require_lags", "lags must be >= 1")
        if self.min_scale <= 0:
            raise bad("min_scale", "must be > 0")
        for e in self.events:
            try:
                np.datetime64(e, "D")
            except ValueError:
                raise ArchlabError(
                    f"invalid config value data.events: {e!r} is not a YYYY-MM-DD date"
                ) from None
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1):
            raise bad("val_fraction", "val and test fractions must be in (0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise bad("test_fraction", "val + test fractions must be < 1")


@dataclass(frozen=True)
class SalesModelConfig:
    name: str = "rnn"  # the network: rnn, lstm, gru
    hidden_size: int = 50  # units per recurrent layer
    num_layers: int = 3  # stacked recurrent layers
    embed_dim: int = 8  # embedding per series key (store, dept); 0 = none (forecast framing)
    loss: Literal["wmae", "mse"] = "wmae"  # wmae: holiday-weighted L1 on the sales scale

    def __post_init__(self) -> None:
        valid = models_for("sales")
        if self.name not in valid:
            raise ArchlabError(f"unknown sales model {self.name!r}; valid: {', '.join(valid)}")
        if self.hidden_size < 1 or self.num_layers < 1 or self.embed_dim < 0:
            raise ArchlabError(
                "invalid config value model.hidden_size/num_layers/embed_dim: "
                f"{self.hidden_size}/{self.num_layers}/{self.embed_dim}"
            )


# A run's data and model sections: one of each task's (TASK_CONFIGS below says whose).
DataConfig = ImageDataConfig | TextDataConfig | SalesDataConfig
ModelConfig = ImageModelConfig | TextModelConfig | SalesModelConfig

# The image augmentations' names: archlab.data.augment.AUGMENTATIONS (which imports torch)
# takes its keys, in this order, from here.
IMAGE_AUGMENTS = ("none", "flip", "translate", "study", "crop", "photo")
# The RegConfig fields (archlab.config) each task reads. The Trainer reads weight_decay and l2_mode
# (archlab.train.optim) for every task, the runner select, early_stop, patience and min_delta
# (the BestWeights callback); the tasks read dropout (their model builders), label_smoothing (the
# classification losses; the sales losses have no classes to smooth) and augment (images only).
_EVERY_TASK = ("weight_decay", "l2_mode", "early_stop", "patience", "min_delta", "select")


@dataclass(frozen=True)
class TaskConfigs:
    """Registry entry: a task's config sections and what its ``reg`` section may set."""

    data_config: type
    model_config: type
    reg_knobs: tuple[str, ...]  # RegConfig fields the task uses; the others must keep defaults
    augments: tuple[str, ...] = ("none",)  # valid values of reg.augment
    # reg.select=auto keeps the best validation epoch (classifiers) rather than the last.
    select_best: bool = False


TASK_CONFIGS: dict[str, TaskConfigs] = {
    "images": TaskConfigs(
        ImageDataConfig,
        ImageModelConfig,
        ("dropout", *_EVERY_TASK, "augment", "label_smoothing"),
        IMAGE_AUGMENTS,
        select_best=True,
    ),
    "sales": TaskConfigs(SalesDataConfig, SalesModelConfig, ("dropout", *_EVERY_TASK)),
    "text": TaskConfigs(
        TextDataConfig,
        TextModelConfig,
        ("dropout", *_EVERY_TASK, "label_smoothing"),
        select_best=True,
    ),
}
