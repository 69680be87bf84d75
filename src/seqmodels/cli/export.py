"""``seqmodels-export ckpt_path=...``: a checkpoint's network as an ONNX graph, checked with onnxruntime.

seqmodels-export ckpt_path=run/checkpoints/epoch_012.ckpt      # writes run/checkpoints/epoch_012.onnx
seqmodels-export ckpt_path=... output_file=model.onnx verify=false
seqmodels-export ckpt_path=<seq2seq>.ckpt output_file=g2p.onnx   # also writes g2p.decoder.onnx (the decoder step)
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from seqmodels.checkpoint import load_checkpoint
from seqmodels.cli.errors import run
from seqmodels.config import config_dir
from seqmodels.export import ExportReport, export_onnx


def _export(cfg: DictConfig) -> ExportReport:
    checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    output = cfg.get("output_file") or str(Path(cfg.ckpt_path).with_suffix(".onnx"))
    return export_onnx(checkpoint, output, verify=cfg.verify, opset=cfg.get("opset"))


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="export")
def main(cfg: DictConfig) -> None:
    report = run("seqmodels-export", lambda: _export(cfg))
    check = (
        "not verified (onnxruntime missing or verify=false)"
        if report.max_abs_diff is None
        else f"onnxruntime matches PyTorch within {report.max_abs_diff:.2g}"
    )
    print(f"wrote {report.path}: {report.inputs} -> {report.output}; {check}", flush=True)


if __name__ == "__main__":
    main()
