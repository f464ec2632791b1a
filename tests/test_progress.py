"""The terminal progress bar (train.progress=bar) survives epoch ends."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from archlab.train.callbacks import Progress


def test_bar_renders_after_an_epoch_end() -> None:
    # rich's Progress.reset replaces a task's fields: a reset without `loss` made the loss column
    # raise KeyError on the next render, which a terminal does at once (`archlab train` crashed at
    # the end of its first epoch whenever stderr was a tty).
    cb = Progress("bar", total_epochs=2)
    trainer = SimpleNamespace(
        steps_per_epoch=3, state=SimpleNamespace(epoch=0, batch=0, stop=False)
    )
    cb.on_fit_start(trainer)
    try:
        cb.on_batch_end(trainer, 0, torch.tensor(0.5))
        cb.on_epoch_end(trainer, {"epoch": 1, "train_loss": 0.5, "val_loss": 0.6, "seconds": 1.0})
        cb._bar.get_renderable()  # what a terminal's refresh draws
        trainer.state.epoch = 1
        cb.on_batch_end(trainer, 0, torch.tensor(0.4))
        fields = cb._bar.tasks[0].fields
        assert fields["epoch"] == 2 and fields["loss"] == pytest.approx(0.4)
        cb._bar.get_renderable()
    finally:
        cb.on_fit_end(trainer)


def test_a_ctrl_c_in_a_later_callbacks_start_stops_the_bar() -> None:
    # The bar starts in its on_fit_start; a Ctrl-C in a slower one after it escaped fit()
    # without on_fit_abort: the bar's thread kept drawing over the interrupt's line and left
    # the terminal's cursor hidden.
    from archlab.train.callbacks import Callback
    from tests.helpers import ToyTask, toy_trainer

    class SlowStart(Callback):
        def on_fit_start(self, trainer) -> None:
            raise KeyboardInterrupt

    bar = Progress("bar", total_epochs=1)
    trainer = toy_trainer(1, 0.1, [bar, SlowStart()])
    task = ToyTask()
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(task, task.build_data(torch.device("cpu")), task.build_model())
    assert bar._bar is None  # stopped: the cursor is shown again


def test_a_slow_read_says_so_and_a_fast_one_says_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A 2M-row panel or 100,000 texts had minutes of silence before the run's first line.
    import time

    from archlab import runner

    with runner.said_if_slow("archlab: still reading big.csv", after_s=0.05):
        time.sleep(0.3)
    assert capsys.readouterr().err == "archlab: still reading big.csv\n"
    with runner.said_if_slow("archlab: still reading small.csv", after_s=0.5):
        pass
    time.sleep(0.7)  # the cancelled timer never prints
    assert capsys.readouterr().err == ""
    with pytest.raises(KeyboardInterrupt), runner.said_if_slow("x", after_s=0.3):
        raise KeyboardInterrupt  # a Ctrl-C while reading: nothing printed after it
    time.sleep(0.5)
    assert capsys.readouterr().err == ""
