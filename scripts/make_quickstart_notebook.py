"""Writes notebooks/quickstart.ipynb (kept as a script so the notebook's source is reviewable as code)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# seqmodels quickstart\n\n"
        "1. Train a recurrent classifier with **plain PyTorch**, using only `seqmodels.nn`.\n"
        "2. Train the same network through the **config-driven** entrypoint (`seqmodels-train`).\n\n"
        "The task is parity: is the number of 1s in a variable-length bit string odd?"
    ),
    new_code_cell(
        "import os\n"
        "import torch\n"
        "from torch.nn.utils.rnn import pad_sequence\n\n"
        "from seqmodels.nn import ManyToOneNet, RecurrentEncoder\n\n"
        "# The test suite runs this notebook with fewer steps.\n"
        "STEPS = int(os.environ.get('QUICKSTART_STEPS', 400))\n"
        "torch.manual_seed(0)"
    ),
    new_markdown_cell(
        "## 1. Plain PyTorch\nVariable-length sequences are padded; `lengths` tells the encoder where each one ends."
    ),
    new_code_cell(
        "def parity_batch(n, max_len=8, gen=None):\n"
        "    lengths = torch.randint(2, max_len + 1, (n,), generator=gen)\n"
        "    seqs = [torch.randint(0, 2, (int(n), 1), generator=gen).float() for n in lengths]\n"
        "    targets = torch.stack([s.sum().long() % 2 for s in seqs])\n"
        "    return pad_sequence(seqs, batch_first=True), lengths, targets\n\n"
        "encoder = RecurrentEncoder(cell='gru', input_size=1, hidden_size=32, batch_first=True)\n"
        "net = ManyToOneNet(encoder, num_outputs=2, pooling='last')\n"
        "optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)\n"
        "gen = torch.Generator().manual_seed(1)\n"
        "for _ in range(STEPS):\n"
        "    inputs, lengths, targets = parity_batch(64, gen=gen)\n"
        "    loss = torch.nn.functional.cross_entropy(net(inputs, lengths), targets)\n"
        "    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n\n"
        "inputs, lengths, targets = parity_batch(1000, gen=torch.Generator().manual_seed(2))\n"
        "with torch.no_grad():\n"
        "    accuracy = (net(inputs, lengths).argmax(-1) == targets).float().mean().item()\n"
        "print(f'held-out accuracy: {accuracy:.3f}')"
    ),
    new_markdown_cell(
        "## 2. The same network from configs\n"
        "`seqmodels-train experiment=parity model/encoder=gru` on the command line does this; here we compose "
        "the same config in Python and call `train`."
    ),
    new_code_cell(
        "import tempfile\n"
        "from hydra import compose, initialize_config_dir\n"
        "from hydra.core.hydra_config import HydraConfig\n"
        "from omegaconf import open_dict\n\n"
        "from seqmodels.config import config_dir\n"
        "from seqmodels.train import train\n\n"
        "out = tempfile.mkdtemp()\n"
        "with initialize_config_dir(str(config_dir()), version_base='1.3'):\n"
        "    cfg = compose('train', overrides=[\n"
        "        'experiment=parity', 'model/encoder=gru', 'data.max_length=8',\n"
        "        f'trainer.max_epochs={max(1, STEPS // 100)}', '~callbacks.rich_progress_bar',\n"
        "        'trainer.enable_progress_bar=false', 'trainer.accelerator=cpu',\n"
        "    ], return_hydra_config=True)\n"
        "with open_dict(cfg):\n"
        "    cfg.paths.output_dir = cfg.hydra.runtime.output_dir = out\n"
        "    cfg.hydra.job.num = 0\n"
        "HydraConfig().set_config(cfg)\n"
        "result = train(cfg)\n"
        "print({k: round(v, 3) for k, v in result.metrics.items() if k.startswith('test/')})"
    ),
    new_markdown_cell("Runs log to TensorBoard: `tensorboard --logdir <out>/tensorboard`."),
]

notebook = new_notebook(
    cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
)
path = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
nbformat.write(notebook, path)
print(f"wrote {path}")
