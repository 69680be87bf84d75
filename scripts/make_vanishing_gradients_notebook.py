"""Writes notebooks/vanishing_gradients.ipynb (kept as a script so the notebook's source is reviewable as code)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# Vanishing gradients on the adding problem\n\n"
        "Each sequence has T steps of two channels: a random value in [0, 1) and a marker that is 1 at exactly two "
        "steps, one in each half. The target is the sum of the two marked values. Predicting 1.0 always gives an "
        "MSE of 1/6 ~ 0.167; doing better needs information from step ~T/4 to survive until the last step.\n\n"
        "We train a vanilla (tanh) RNN and an LSTM with plain PyTorch and `seqmodels.nn`, and look at "
        "**||dL/dh_t||**, the gradient of the loss with respect to the hidden state at every step t. The loss "
        "is read at the last step, so this is the signal that reaches step t: where it has vanished, the network "
        "cannot learn what happened there."
    ),
    new_code_cell(
        "import os\n"
        "import statistics\n\n"
        "import matplotlib.pyplot as plt\n"
        "import torch\n"
        "import torch.nn.functional as F\n\n"
        "from seqmodels.callbacks.gradients import plot_state_gradients\n"
        "from seqmodels.nn import ManyToOneNet, RecurrentEncoder\n\n"
        "# The test suite runs this notebook with fewer steps and shorter sequences.\n"
        "STEPS = int(os.environ.get('VANISHING_STEPS', 1000))\n"
        "LENGTH = int(os.environ.get('VANISHING_LENGTH', 100))\n"
        "# One training run is one trajectory of a chaotic system: another seed, or another CPU's rounding, lands\n"
        "# elsewhere. Every figure below is read over several seeds.\n"
        "SEEDS = range(int(os.environ.get('VANISHING_SEEDS', 5)))\n"
        "HIDDEN = 64"
    ),
    new_code_cell(
        "def adding_batch(n, length=LENGTH, gen=None):\n"
        "    values = torch.rand(n, length, generator=gen)\n"
        "    first = torch.randint(0, length // 2, (n,), generator=gen)\n"
        "    second = torch.randint(length // 2, length, (n,), generator=gen)\n"
        "    rows = torch.arange(n)\n"
        "    markers = torch.zeros(n, length)\n"
        "    markers[rows, first] = markers[rows, second] = 1.0\n"
        "    targets = values[rows, first] + values[rows, second]\n"
        "    return torch.stack([values, markers], dim=-1), torch.full((n,), length), targets\n\n"
        "test_inputs, test_lengths, test_targets = adding_batch(1000, gen=torch.Generator().manual_seed(2))"
    ),
    new_markdown_cell(
        "`probe_states = True` makes the encoder record, on its next forward, a zero tensor added to every hidden "
        "state; after `backward()` its gradient is dL/dh_t through every path (the head and all later steps). "
        "`state_gradient_norms()` returns the norm over the batch and the hidden units for each step."
    ),
    new_code_cell(
        "def state_gradients(net, inputs, lengths, targets):\n"
        "    net.encoder.probe_states = True\n"
        "    loss = F.mse_loss(net(inputs, lengths).squeeze(-1), targets)\n"
        "    net.zero_grad()\n"
        "    loss.backward()\n"
        "    net.encoder.probe_states = False\n"
        "    norms = net.encoder.state_gradient_norms()['layer0']\n"
        "    net.zero_grad()\n"
        "    return norms\n\n"
        "def train(cell, seed):\n"
        "    torch.manual_seed(seed)\n"
        "    encoder = RecurrentEncoder(cell, input_size=2, hidden_size=HIDDEN, batch_first=True)\n"
        "    net = ManyToOneNet(encoder, num_outputs=1)\n"
        "    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)\n"
        "    gen = torch.Generator().manual_seed(1000 + seed)\n"
        "    probe = adding_batch(256, gen=torch.Generator().manual_seed(3))\n"
        "    at_init = state_gradients(net, *probe)\n"
        "    for _ in range(STEPS):\n"
        "        inputs, lengths, targets = adding_batch(64, gen=gen)\n"
        "        loss = F.mse_loss(net(inputs, lengths).squeeze(-1), targets)\n"
        "        optimizer.zero_grad()\n"
        "        loss.backward()\n"
        "        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)\n"
        "        optimizer.step()\n"
        "    with torch.no_grad():\n"
        "        mse = F.mse_loss(net(test_inputs, test_lengths).squeeze(-1), test_targets).item()\n"
        "    return {'mse': mse, 'at_init': at_init, 'trained': state_gradients(net, *probe)}\n\n"
        "def ratio(norms):  # ||dL/dh_0|| / ||dL/dh_T-1||: the share of the learning signal that reaches t = 0\n"
        "    return (norms[0] / norms[-1]).item()\n\n"
        "runs = {cell: [train(cell, seed) for seed in SEEDS] for cell in ('rnn_tanh', 'lstm')}\n"
        "for cell, results in runs.items():\n"
        "    for seed, r in zip(SEEDS, results, strict=True):\n"
        "        print(f\"seed {seed} {cell}: test MSE {r['mse']:.4f} ratio at init {ratio(r['at_init']):.3g} \"\n"
        "              f\"trained {ratio(r['trained']):.3g}\")\n"
        "for cell, results in runs.items():\n"
        "    mses = [r['mse'] for r in results]\n"
        "    trained = [ratio(r['trained']) for r in results]\n"
        "    print(f'{cell}: test MSE median {statistics.median(mses):.4f} (range {min(mses):.4f}-{max(mses):.4f}), '\n"
        "          f'solved (MSE < 0.05) in {sum(m < 0.05 for m in mses)} of {len(mses)} seeds (baseline 0.167); '\n"
        "          f'trained ||dL/dh_0|| / ||dL/dh_T-1|| median {statistics.median(trained):.3g} '\n"
        "          f'(range {min(trained):.3g}-{max(trained):.3g})')"
    ),
    new_code_cell(
        "fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)\n"
        "for ax, when in zip(axes, ('at_init', 'trained'), strict=True):\n"
        "    # The median over seeds, step by step: one seed's curve is one trajectory.\n"
        "    curves = {cell: torch.stack([r[when] for r in results]).median(dim=0).values\n"
        "              for cell, results in runs.items()}\n"
        "    title = 'at initialisation' if when == 'at_init' else f'after {STEPS} steps'\n"
        "    plot_state_gradients(curves, ax=ax, title=f'{title} (median of {len(SEEDS)} seeds)')\n"
        "fig.tight_layout()"
    ),
    new_markdown_cell(
        "Read the curves from right (the last step, where the loss is) to left.\n\n"
        "**At initialisation** both gradients decay, and not very differently: orthogonal recurrent weights keep "
        "the tanh RNN's step Jacobian W_hh^T diag(1 - h_t^2) close to norm-preserving while its units are near "
        "zero, and the LSTM's forget gates start at sigmoid(1) ~ 0.73, which shrinks the cell-state path at every "
        "step.\n\n"
        "**After training** they part ways. The tanh RNN's units saturate as it fits the data, 1 - h_t^2 drops "
        "below one, and in the typical (median) run the gradient reaching the first steps falls by orders of "
        "magnitude: the first marked value never gets a learning signal and the RNN stays at the 0.167 baseline in "
        "every seed. The LSTM's cell state is updated additively (c_t = f_t c_{t-1} + i_t g_t); its forget gates "
        "learn to stay near 1, the gradient reaches the early steps with little loss, and the LSTM solves the task "
        "in most seeds. The seeds where it does not are the ones where its gradient vanished too.\n\n"
        "How far the gradient falls in one run depends on the seed, and even on the CPU: a different rounding gives "
        "a different trajectory. That is why the figures above are medians and ranges over seeds.\n\n"
        "In a config-driven run, `callbacks=gradient_diagnostics` logs the same curves (and a time x training-step "
        "heat-map) to TensorBoard; `scripts/adding_problem_study.py` sweeps T and the cell type."
    ),
]

notebook = new_notebook(
    cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
)
path = Path(__file__).resolve().parents[1] / "notebooks" / "vanishing_gradients.ipynb"
nbformat.write(notebook, path)
print(f"wrote {path}")
