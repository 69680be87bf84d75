"""A model summary at the start of training: layers, parameter counts and size, without an empty FLOPs column.

Lightning's rich summary always reports FLOPs, which it can only count when the model sets an
``example_input_array``; seqmodels' tasks take variable-length batches and set none, so it would print
``Total FLOPs: 0``. This summary shows what is measured.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count


class ModelSummary(RichModelSummary):
    """``RichModelSummary`` (same arguments), with the FLOPs column and total only where FLOPs were counted."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if total_flops or name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            justify = "left" if name in (" ", "Name", "Type", "Mode") else "right"
            table.add_column(name, justify=justify, style="dim" if name == " " else None, no_wrap=name == "Name")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)

        totals = [
            ("Trainable params", get_human_readable_count(int(trainable_parameters))),
            ("Non-trainable params", get_human_readable_count(int(total_parameters - trainable_parameters))),
            ("Total params", get_human_readable_count(int(total_parameters))),
            ("Total estimated model params size (MB)", get_formatted_model_size(model_size)),
        ]
        if total_flops:
            totals.append(("Total FLOPs", get_human_readable_count(total_flops)))
        grid = Table.grid(expand=True)
        grid.add_column()
        for label, value in totals:
            grid.add_row(f"[bold]{label}[/]: {value}")
        console.print(grid)
