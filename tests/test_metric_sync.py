"""Every task family's metrics are reduced across processes exactly once: two gloo processes, each scoring half of
the same test batches with the same weights, compute the values one process computes over all of them (a metric
reduced twice, or not at all, would differ: a sum doubled, a mean of one half)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

FAMILIES = {
    "classification": ["experiment=parity", "data.num_test=64", "data.batch_size=16"],
    "regression": ["experiment=adding_problem", "data.num_test=64", "data.batch_size=16", "data.length=20"],
    "tagging": ["experiment=ner", "data.batch_size=8"],
    "seq2seq": ["experiment=reverse", "data.batch_size=16"],
    "ctc": ["experiment=dtmf_ctc", "data.num_train=32", "data.num_val=8", "data.num_test=32", "data.batch_size=8"],
    "forecasting": ["experiment=sunspots", "data.eval_batch_size=16"],
    "conditional": ["experiment=waveform_generation", "data.batch_size=8"],
}

WORKER = """
import json, os, sys
import torch
import torch.distributed as dist
from hydra.utils import instantiate
from seqmodels.config import compose_run_config, instantiate_datamodule, resolve_with_datamodule

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
if world > 1:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{os.environ['PORT']}", rank=rank, world_size=world)
families = json.loads(sys.argv[2])
results = {}
for name, overrides in families.items():
    cfg = compose_run_config(overrides + ["logger=none"], output_dir=f"{sys.argv[1]}/{name}_{rank}")
    datamodule = instantiate_datamodule(cfg.data)
    resolve_with_datamodule(cfg, datamodule)
    torch.manual_seed(0)  # the same weights in every process
    task = instantiate(cfg.model).eval()
    datamodule.setup()
    batches = [b for _, b in zip(range(4), datamodule.test_dataloader())]
    with torch.no_grad():
        for index in range(rank, len(batches), world):  # this process's share of the batches
            task.test_step(batches[index], index)
    results[name] = {k: float(v) for k, v in task.epoch_end("test").items() if torch.as_tensor(v).numel() == 1}
if rank == 0:
    print("RESULT " + json.dumps(results), flush=True)
if world > 1:  # leave the group before exiting: gloo aborts a process that exits with it open
    dist.barrier()
    dist.destroy_process_group()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_family_reduces_its_test_metrics_once_across_two_processes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    families = json.dumps(FAMILIES)

    def start(rank: int, world: int, port: int) -> subprocess.Popen:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "WORLD_SIZE": str(world), "PORT": str(port)}
        args = [sys.executable, str(script), str(tmp_path / f"w{world}"), families]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def result(process: subprocess.Popen) -> dict:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        return json.loads(lines[-1][len("RESULT ") :]) if lines else {}

    port = free_port()
    pair = [start(rank, 2, port) for rank in range(2)]
    together = result(pair[0])
    result(pair[1])
    alone = result(start(0, 1, free_port()))
    assert set(alone) == set(FAMILIES)
    for family, values in alone.items():
        assert values, family
        assert together[family].keys() == values.keys(), family
        for key, value in values.items():
            assert together[family][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (family, key)
