"""The ``model/encoder=`` config group for the networks that build their own recurrent layers from a cell name.

:class:`~seqmodels.nn.RecurrentLanguageModel`, :class:`~seqmodels.nn.Seq2Seq` and
:class:`~seqmodels.nn.ConditionalDecoder` take ``cell="lstm"`` and sizes of their own rather than a
:class:`~seqmodels.nn.RecurrentEncoder`, so a config cannot hand them the group's ``model.net.encoder`` node. These
subclasses take it, as the ``_partial_`` RecurrentEncoder the group describes, and build the same network (same
weights, same ``state_dict`` keys, same random draws): ``model/encoder=gru`` works for every model.

From ``model.net.encoder`` they take the cell, its ``init`` and the options of seqmodels' own cells (``cell_options``,
``residual``, ``norm``, ``ffn_expansion``, passed on as ``encoder_options``). Its sizes mirror the network's
own (the model configs interpolate them: ``model.net.hidden_size`` and the like stay the keys to set), and settings
the network cannot build (custom cells, a bidirectional decoder, ...) are refused, naming the key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from seqmodels.nn import ConditionalDecoder, RecurrentLanguageModel, Seq2Seq

EncoderConfig = functools.partial | Mapping[str, Any]

# Settings of the encoder group that these networks build one way only (their RecurrentEncoder's defaults).
_BUILT_AS = {
    "bias": True,
    "proj_size": 0,
    "forget_bias": None,
    "impl": "fused",
    "layer_norm": False,
    "recurrent_dropout": 0.0,
    "zoneout": 0.0,
    "dropout": 0.0,  # the network's own dropout is model.net.dropout
}
# Settings that only say where the encoder's input comes from: the network decides.
_IGNORED = ("input_size", "batch_first")
# Settings of seqmodels' own cells that every network building its own layers passes on (as encoder_options).
_ENGINE_OPTIONS = ("cell_options", "residual", "norm", "ffn_expansion")


def engine_options(encoder: EncoderConfig) -> dict[str, Any]:
    """``encoder_options`` for a network that builds its own layers: the engine settings the config sets."""
    settings = encoder_settings(encoder)
    return {"encoder_options": {key: settings[key] for key in _ENGINE_OPTIONS if key in settings}}


def encoder_settings(encoder: EncoderConfig) -> dict[str, Any]:
    """The settings of the ``model.net.encoder`` node: a ``functools.partial`` of RecurrentEncoder, or a mapping."""
    if isinstance(encoder, functools.partial):
        return dict(encoder.keywords)
    if isinstance(encoder, Mapping):
        return {key: value for key, value in encoder.items() if not str(key).startswith("_")}
    kind = type(encoder).__name__
    raise TypeError(f"encoder must be the model/encoder config (a _partial_ RecurrentEncoder) or a dict, got {kind}")


def from_encoder(
    network: str,
    encoder: EncoderConfig,
    takes: tuple[str, ...],
    mirrors: Mapping[str, tuple[str, Any]],
    built_as: Mapping[str, Any],
) -> dict[str, Any]:
    """The keyword arguments ``network`` takes from ``encoder`` (the names in ``takes``), after checking the rest.

    ``mirrors``: encoder setting -> (the network's argument, its value); the two must agree. ``built_as``: settings
    the network builds with one value only.
    """
    settings = encoder_settings(encoder)
    for key, (argument, value) in mirrors.items():
        if key in settings and settings[key] != value:
            raise ValueError(
                f"encoder.{key}={settings[key]!r} but {argument}={value!r}: a {network} sizes its recurrent layers "
                f"with {argument}; set model.net.{argument}"
            )
    for key, value in built_as.items():
        if key in settings and settings[key] != value:
            raise ValueError(
                f"encoder.{key}={settings[key]!r}: a {network} builds its recurrent layers with {key}={value!r} only"
            )
    unknown = sorted(set(settings) - set(takes) - set(mirrors) - set(built_as) - set(_IGNORED) - set(_ENGINE_OPTIONS))
    if unknown:
        raise ValueError(f"encoder.{unknown[0]}: not a setting a {network} takes from model/encoder")
    return {key: settings[key] for key in takes if key in settings}


class LanguageModelNet(RecurrentLanguageModel):
    """:class:`~seqmodels.nn.RecurrentLanguageModel` with ``cell`` and ``init`` from ``encoder`` (``model/encoder=``);
    the other arguments are the language model's own."""

    def __init__(
        self,
        vocab_size: int,
        encoder: EncoderConfig,
        embedding_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 2,
        **kwargs: Any,
    ) -> None:
        mirrors = {"hidden_size": ("hidden_size", hidden_size), "num_layers": ("num_layers", num_layers)}
        cell = from_encoder(
            "RecurrentLanguageModel", encoder, ("cell", "init"), mirrors, {**_BUILT_AS, "bidirectional": False}
        )
        super().__init__(
            vocab_size, embedding_dim, hidden_size, num_layers, **cell, **engine_options(encoder), **kwargs
        )


class Seq2SeqNet(Seq2Seq):
    """:class:`~seqmodels.nn.Seq2Seq` with ``cell`` (of encoder and decoder) from ``encoder`` (``model/encoder=``);
    the encoder's sizes are ``hidden_size``, ``encoder_layers`` and ``bidirectional``."""

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        bos_id: int,
        eos_id: int,
        encoder: EncoderConfig,
        hidden_size: int = 128,
        encoder_layers: int = 1,
        bidirectional: bool = True,
        **kwargs: Any,
    ) -> None:
        mirrors = {
            "hidden_size": ("hidden_size", hidden_size),
            "num_layers": ("encoder_layers", encoder_layers),
            "bidirectional": ("bidirectional", bidirectional),
        }
        cell = from_encoder("Seq2Seq", encoder, ("cell", "init"), mirrors, _BUILT_AS)
        super().__init__(
            source_vocab_size,
            target_vocab_size,
            bos_id,
            eos_id,
            hidden_size=hidden_size,
            encoder_layers=encoder_layers,
            bidirectional=bidirectional,
            **cell,
            **engine_options(encoder),
            **kwargs,
        )


class ConditionalDecoderNet(ConditionalDecoder):
    """:class:`~seqmodels.nn.ConditionalDecoder` with ``cell`` from ``encoder`` (``model/encoder=``); the other
    arguments are the decoder's own."""

    def __init__(
        self,
        condition_encoder: Any,
        encoder: EncoderConfig,
        hidden_size: int = 128,
        num_layers: int = 1,
        **kwargs: Any,
    ) -> None:
        mirrors = {"hidden_size": ("hidden_size", hidden_size), "num_layers": ("num_layers", num_layers)}
        built_as = {**_BUILT_AS, "bidirectional": False}
        cell = from_encoder("ConditionalDecoder", encoder, ("cell", "init"), mirrors, built_as)
        super().__init__(
            condition_encoder,
            hidden_size=hidden_size,
            num_layers=num_layers,
            **cell,
            **engine_options(encoder),
            **kwargs,
        )


__all__ = ["ConditionalDecoderNet", "LanguageModelNet", "Seq2SeqNet", "encoder_settings", "from_encoder"]
