"""One short run that checks seqmodels' GPU paths, and prints what it measured.

    python scripts/check_gpu.py            # on a machine with a CUDA GPU (about 3-5 minutes)
    python scripts/check_gpu.py --device cpu --quick   # the same code paths on the CPU (what the tests run)

1. **Every cell on the device**, packed (variable lengths) and unpacked (``pack_sequences = False``), forward and
   backward: outputs and gradients against the same module on the CPU (float32, TF32 off; cuDNN's fused kernels for the
   classic cells, seqmodels' own engines for the others), and training throughput (tokens/s, hidden 256, batch 16,
   length 512).
2. **Mixed precision** (``16-mixed``, ``bf16-mixed`` where the card supports it, and ``32-true``) for one
   experiment of every task family: a few training steps from ``seqmodels-train``'s own configs, with the loss
   finite at every step, and the family's training throughput.
3. **DDP** on every visible GPU (``trainer=ddp``) for one family, when there are at least two.

Exit status 1 if any check fails; the table says which. No data set is downloaded: every experiment used here
generates or ships its data.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from benchmark_common import QUIET, environment, print_table

from seqmodels.config import compose_run_config
from seqmodels.nn import CELLS, MODERN_CELLS, RecurrentEncoder

# One experiment per task family whose data is generated or shipped (no system package needed).
FAMILIES = {
    "many-to-one": ["experiment=adding_problem", "data.length=50", "data.num_train=2048"],
    "tagging": ["experiment=ner"],
    "language model": ["experiment=char_lm", "data.bptt=64"],
    "seq2seq": ["experiment=reverse"],
    "ctc": ["experiment=dtmf_ctc"],
    "conditional": ["experiment=waveform_generation"],
    "forecasting": ["experiment=sunspots"],
    "video": ["experiment=video_classification", "data.num_train=512"],
}


class StepLosses(L.Callback):
    """Training losses of every step, and the wall time of the steps after the first (warm-up) one."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.items = 0
        self.start: float | None = None
        self.seconds = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):  # noqa: ANN001
        if batch_idx == 1:
            torch.cuda.synchronize() if torch.cuda.is_available() else None
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):  # noqa: ANN001
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss.detach()))
        if batch_idx >= 1:
            inputs = getattr(batch, "inputs", None)
            self.items += int(inputs.shape[0] * inputs.shape[1]) if inputs is not None and inputs.dim() > 1 else 0

    def on_train_epoch_end(self, trainer, module):  # noqa: ANN001
        if self.start is not None:
            torch.cuda.synchronize() if torch.cuda.is_available() else None
            self.seconds = time.perf_counter() - self.start


def check_cells(device: str, quick: bool) -> list[list[str]]:
    # Full float32 on both sides: cuDNN's RNNs and matmuls on Ampere and newer default to TF32 (10-bit mantissa),
    # whose ~1e-3 differences would hide a real bug. Training keeps torch's defaults.
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return _check_cells(device, quick)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def _check_cells(device: str, quick: bool) -> list[list[str]]:
    rows = []
    batch, length, hidden = (4, 24, 16) if quick else (16, 512, 256)
    for cell in CELLS + MODERN_CELLS:
        for packed in (True, False):
            torch.manual_seed(0)
            reference = RecurrentEncoder(cell, input_size=hidden, hidden_size=hidden, num_layers=2, batch_first=True)
            reference.pack_sequences = packed
            moved = RecurrentEncoder(cell, input_size=hidden, hidden_size=hidden, num_layers=2, batch_first=True)
            moved.load_state_dict(reference.state_dict())
            moved.pack_sequences = packed
            moved.to(device)
            x = torch.randn(batch, length, hidden)
            lengths = torch.randint(length // 2, length + 1, (batch,))
            lengths[0] = length
            try:
                out_ref, _ = reference(x, lengths)
                out_ref.square().mean().backward()
                out, _ = moved(x.to(device), lengths)
                out.square().mean().backward()
                error = (out.cpu() - out_ref).abs().max().item()
                grad_error = max(
                    (a.grad.cpu() - b.grad).abs().max().item()
                    for a, b in zip(moved.parameters(), reference.parameters(), strict=True)
                )
                steps, start = 3, None
                for step in range(steps + 1):
                    if step == 1:
                        torch.cuda.synchronize() if device.startswith("cuda") else None
                        start = time.perf_counter()
                    moved.zero_grad()
                    out, _ = moved(x.to(device), lengths)
                    out.square().mean().backward()
                torch.cuda.synchronize() if device.startswith("cuda") else None
                rate = steps * batch * length / (time.perf_counter() - start)
                ok = error < 1e-4 and grad_error < 1e-3
                row = [
                    cell,
                    "packed" if packed else "unpacked",
                    f"{error:.1e}",
                    f"{grad_error:.1e}",
                    f"{rate:,.0f}",
                    "ok" if ok else "FAIL",
                ]
            except Exception as err:  # noqa: BLE001 -- the table reports it; the run goes on
                failure = f"FAIL {type(err).__name__}: {err}"[:80]
                row = [cell, "packed" if packed else "unpacked", "-", "-", "-", failure]
            rows.append(progress(row))
    return rows


def progress(row: list[str]) -> list[str]:
    """Print a finished row at once (a run cut short by a time limit still shows what it measured)."""
    print("  done: " + " | ".join(row), flush=True)
    return row


def precisions(device: str) -> list[str]:
    if not device.startswith("cuda"):
        return ["32-true", "bf16-mixed"]  # CPU autocast has bf16 only
    chosen = ["32-true", "16-mixed"]
    if torch.cuda.is_bf16_supported():
        chosen.append("bf16-mixed")
    return chosen


def check_family(
    name: str, overrides: list[str], device: str, precision: str, quick: bool, out: Path, extra: list[str] | None = None
) -> list[str]:
    from seqmodels.train import train

    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    steps = 3 if quick else 30
    cfg = compose_run_config(
        [
            *overrides,
            *(extra or [f"trainer.accelerator={accelerator}", "trainer.devices=1"]),
            f"trainer.precision={precision}",
            "trainer.max_epochs=1",
            f"trainer.limit_train_batches={steps}",
            "trainer.limit_val_batches=1",
            "test=false",
            "logger=none",
            *QUIET,
        ],
        output_dir=out / f"{name.replace(' ', '_')}_{precision}",
    )
    probe = StepLosses()
    try:
        train(cfg, extra_callbacks=[probe])
    except Exception as err:  # noqa: BLE001
        return [name, precision, "-", "-", f"FAIL {type(err).__name__}: {str(err).splitlines()[0][:60]}"]
    finite = bool(probe.losses) and all(math.isfinite(v) for v in probe.losses)
    rate = f"{probe.items / probe.seconds:,.0f}" if probe.seconds and probe.items else "-"
    last = f"{probe.losses[-1]:.4f}" if probe.losses else "-"
    return [name, precision, last, rate, "ok" if finite else "FAIL non-finite loss"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the code paths only")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--skip-cells", action="store_true", help="only the task families (and DDP)")
    args = parser.parse_args(argv)
    if args.device is None:
        print("no CUDA device here: nothing to check (run with --device cpu to exercise the code paths)")
        return 0
    device = args.device
    card = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    cudnn = torch.backends.cudnn.version() if device.startswith("cuda") else None
    print(environment(f"device {card}", f"cuDNN {cudnn}" if cudnn else "no cuDNN"))

    cells = [] if args.skip_cells else check_cells(device, args.quick)
    print_table(cells, header=["cell", "batch", "max |out diff|", "max |grad diff|", "tokens/s", "check"])

    out = Path(tempfile.mkdtemp(prefix="seqmodels_gpu_"))
    families = []
    for name in args.families:
        for precision in precisions(device):
            families.append(progress(check_family(name, FAMILIES[name], device, precision, args.quick, out)))
    print_table(families, header=["family", "precision", "last loss", "items/s", "check"])

    ddp = []
    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    if gpus >= 2:
        ddp.append(
            check_family(
                "many-to-one",
                FAMILIES["many-to-one"],
                device,
                "16-mixed",
                args.quick,
                out,
                extra=["trainer=ddp", f"trainer.devices={gpus}"],
            )
        )
        print_table(ddp, header=["family", "precision", "last loss", "items/s (all GPUs)", f"DDP on {gpus} GPUs"])
    else:
        print(f"DDP: {gpus} GPU(s) visible, needs 2: skipped")
    failed = [row for row in cells + families + ddp if not row[-1].startswith("ok")]
    print(f"{len(failed)} check(s) failed" if failed else "every check passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
