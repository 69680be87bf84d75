"""``seqmodels-predict ckpt_path=... input="..."``: predict with a trained checkpoint, whatever its task.

    seqmodels-predict ckpt_path=run/checkpoints/epoch_019.ckpt input=seqmodels            # G2P
    seqmodels-predict ckpt_path=... input_file=words.txt output_file=phonemes.tsv beam_size=5 n_best=3
    seqmodels-predict ckpt_path=<text classifier>.ckpt input="'great value, works well'" n_best=2
    seqmodels-predict ckpt_path=<forecaster>.ckpt backtest=test output_file=backtest.csv
    seqmodels-predict ckpt_path=[a.ckpt,b.ckpt,c.ckpt] backtest=test                      # an ensemble of forecasters
    seqmodels-predict ckpt_path=<speech model>.ckpt input_file=digits.wav                  # prints the transcript
    seqmodels-predict ckpt_path=<streaming speech model>.ckpt input_file=digits.wav stream=true  # partials on stderr

Text inputs give one line each, ``input<TAB>output`` (with ``n_best`` > 1 one line per output with its score), on
stdout or in ``output_file``. See :mod:`seqmodels.predict` for what each kind of checkpoint reads and writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from seqmodels.cli.errors import run
from seqmodels.config import config_dir
from seqmodels.predict import predict_from_checkpoint
from seqmodels.tasks.capabilities import Prediction


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="predict")
def main(cfg: DictConfig) -> None:
    kind, results = run("seqmodels-predict", lambda: predict_from_checkpoint(cfg))
    if results is None:  # forecasts: written as CSV already
        return
    if kind is Prediction.AUDIO_TO_TEXT and len(results) == 1 and cfg.n_best == 1 and not cfg.get("output_file"):
        print(results[0][1][0][0], flush=True)  # one recording: its transcript alone
        return
    if cfg.n_best == 1:
        lines = [f"{text}\t{outputs[0][0]}" for text, outputs in results]
    else:
        lines = [f"{text}\t{output}\t{score:.4f}" for text, outputs in results for output, score in outputs]
    if cfg.get("output_file"):
        Path(cfg.output_file).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {len(results)} predictions to {cfg.output_file}", file=sys.stderr)
    else:
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
