"""``experiment=video_classification`` against baselines that cannot use the order of the frames.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/video_baseline.py                 # LRCN and the order-blind CNN
    OMP_NUM_THREADS=1 .venv/bin/python scripts/video_baseline.py trainer.max_epochs=3   # extra Hydra overrides
    OMP_NUM_THREADS=1 .venv/bin/python scripts/video_baseline.py --prediction   # frame_prediction vs copy-last

Trains, on the same generated clips with the same trainer settings and frame encoder:
  * ``lrcn``: the experiment as configured (CNN per frame -> LSTM -> last output -> classes);
  * ``frame_pooling``: :class:`~seqmodels.nn.video.FramePoolingNet` (CNN per frame -> mean over frames -> classes),
    which sees the same frames in no order: it can read the digit and whether the motion is horizontal or
    vertical, never which way, so its accuracy is at most half its digit accuracy;
and fits scikit-learn logistic regressions on raw pixels (the mean frame, and the first and last frames side by
side). Prints test accuracy, digit accuracy (the class // num_directions) and training time for each.
"""

from __future__ import annotations

import sys
import time

import benchmark_common as common
import numpy as np
import torch


def digit_accuracy(model, datamodule, num_directions: int) -> tuple[float, float]:
    """(accuracy, digit accuracy) of a trained task's network on the test split."""
    model.eval()
    right = digit_right = total = 0
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            predicted = model.net(batch.inputs, batch.lengths).argmax(-1)
            right += int((predicted == batch.targets).sum())
            digit_right += int((predicted // num_directions == batch.targets // num_directions).sum())
            total += len(batch)
    return right / total, digit_right / total


def train_network(kind: str, overrides: list[str]) -> None:
    from omegaconf import open_dict

    from seqmodels.config import compose_run_config
    from seqmodels.train import train

    cfg = compose_run_config(["experiment=video_classification", *common.QUIET, "trainer.accelerator=cpu", *overrides])
    if kind == "frame_pooling":
        with open_dict(cfg):
            cfg.model.net = {
                "_target_": "seqmodels.nn.video.FramePoolingNet",
                "frame_encoder": cfg.model.net.frontend,
                "num_outputs": "${model.num_classes}",
                "dropout": cfg.model.net.dropout,
            }
    start = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - start
    accuracy, digit = digit_accuracy(result.task, result.datamodule, cfg.data.num_directions)
    print(f"{kind:42s} test acc {accuracy:.3f}  digit acc {digit:.3f}  ({seconds:.0f} s)", flush=True)


def pixel_baselines(seed: int, num_directions: int) -> None:
    from sklearn.linear_model import LogisticRegression

    from seqmodels.data.video import MovingDigitsDataModule

    dm = MovingDigitsDataModule(seed=seed, num_directions=num_directions)
    dm.setup()
    y_train, y_test = dm.train_set.targets.numpy(), dm.test_set.targets.numpy()

    def features(dataset, kind: str) -> np.ndarray:
        clips = [c.astype(np.float32) / 16.0 for c in dataset.clips]
        if kind == "mean":
            return np.stack([c.mean(axis=0).ravel() for c in clips])
        return np.stack([np.concatenate([c[0].ravel(), c[-1].ravel()]) for c in clips])

    for kind, name in (("mean", "logistic regression, mean frame"), ("ends", "logistic regression, first + last")):
        start = time.perf_counter()
        model = LogisticRegression(max_iter=2000).fit(features(dm.train_set, kind), y_train)
        predicted = model.predict(features(dm.test_set, kind))
        accuracy = float((predicted == y_test).mean())
        digit = float((predicted // num_directions == y_test // num_directions).mean())
        print(f"{name:42s} test acc {accuracy:.3f}  digit acc {digit:.3f}  ({time.perf_counter() - start:.0f} s)")


def frame_prediction(overrides: list[str]) -> None:
    """``experiment=frame_prediction`` against copying the last context frame: test MSE and SSIM."""
    from seqmodels.config import compose_run_config
    from seqmodels.nn.video import ssim
    from seqmodels.train import train

    cfg = compose_run_config(["experiment=frame_prediction", *common.QUIET, "trainer.accelerator=cpu", *overrides])
    start = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - start
    net = result.task.net.eval()
    totals = {"convlstm": [0.0, 0.0], "copy last frame": [0.0, 0.0]}
    count = 0
    with torch.no_grad():
        for batch in result.datamodule.test_dataloader():
            last = batch.inputs[torch.arange(len(batch)), batch.lengths - 1]
            guesses = {
                "convlstm": net(batch.inputs, batch.lengths),
                "copy last frame": last.unsqueeze(1).expand_as(batch.targets),
            }
            for name, guess in guesses.items():
                totals[name][0] += float(((guess - batch.targets) ** 2).mean()) * len(batch)
                totals[name][1] += float(ssim(guess, batch.targets)) * len(batch)
            count += len(batch)
    for name, (mse, similarity) in totals.items():
        print(f"frame prediction, {name:27s} test MSE {mse / count:.4f}  SSIM {similarity / count:.3f}")
    print(f"frame prediction training time {seconds:.0f} s", flush=True)


def main() -> None:
    overrides = sys.argv[1:]
    if overrides[:1] == ["--prediction"]:
        frame_prediction(overrides[1:])
        return
    from seqmodels.config import compose_run_config

    cfg = compose_run_config(["experiment=video_classification", *overrides])
    pixel_baselines(int(cfg.seed), int(cfg.data.num_directions))
    for kind in ("frame_pooling", "lrcn"):
        train_network(kind, overrides)


if __name__ == "__main__":
    main()
