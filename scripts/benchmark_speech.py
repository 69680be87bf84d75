"""Benchmark: spoken digit strings with CTC (the `spoken_digits` experiment) on voices held out from training.

    .venv/bin/python scripts/benchmark_speech.py                        # 4 epochs of the default recipe
    .venv/bin/python scripts/benchmark_speech.py --epochs 8 model.net.encoder.hidden_size=256

Synthesises the utterances with espeak-ng into the cache (once; later runs reuse it), trains, and prints:
test CER and WER on the held-out voices (greedy and prefix beam search), per voice, the training time, and the
real-time factor of CPU inference on one utterance at a time (WAV samples -> log-mel features -> network ->
decoded text, one thread): compute seconds per second of audio.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import hydra
import torch
from benchmark_common import QUIET, TrainingTimer, decoding_label, environment, load_best, print_table
from torchmetrics.functional.text import char_error_rate, word_error_rate

from seqmodels.config import compose_run_config
from seqmodels.data.speech import EspeakNotFoundError
from seqmodels.nn.ctc import ctc_greedy_decode, ctc_prefix_beam_search
from seqmodels.train import train


def error_rates(hypotheses: list[str], references: list[str]) -> tuple[float, float]:
    return float(char_error_rate(hypotheses, references)), float(word_error_rate(hypotheses, references))


@torch.no_grad()
def transcribe(model, datamodule, beam_size: int) -> list[str]:
    loader = torch.utils.data.DataLoader(datamodule.test_set, batch_size=64, collate_fn=datamodule.collate_fn)
    outputs: list[str] = []
    for batch in loader:
        outputs += model.transcribe(batch.inputs, batch.lengths, beam_size)
    return outputs


@torch.no_grad()
def real_time_factor(model, datamodule, waveforms: list[torch.Tensor], beam_size: int) -> float:
    """Compute seconds per audio second, one utterance at a time, from samples to text."""
    audio = sum(len(w) for w in waveforms) / datamodule.sample_rate
    start = time.perf_counter()
    for waveform in waveforms:
        features = datamodule.featurizer.featurize(waveform)
        log_probs, lengths = model.net(features.unsqueeze(0), torch.tensor([features.shape[0]]))
        if beam_size == 1:
            model.text(ctc_greedy_decode(log_probs, lengths, model.blank)[0])
        else:
            model.text(ctc_prefix_beam_search(log_probs, lengths, beam_size, model.blank)[0][0][0])
    return (time.perf_counter() - start) / audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--beam", type=int, default=4, help="prefix beam search width")
    parser.add_argument("--rtf-utterances", type=int, default=200, help="test utterances timed for the RTF")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. data.num_train=3000")
    args = parser.parse_args()
    overrides = [
        "experiment=spoken_digits",
        *QUIET,
        "model.test_beam_size=1",
        f"trainer.max_epochs={args.epochs}",
        *args.overrides,
    ]
    cfg = compose_run_config(overrides)
    print(environment(), flush=True)

    start = time.perf_counter()
    try:
        hydra.utils.instantiate(cfg.data).prepare_data()  # synthesises the cache, or finds it
    except EspeakNotFoundError as exc:
        print(f"benchmark_speech: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    synthesis = time.perf_counter() - start

    timer = TrainingTimer()
    start = time.perf_counter()
    result = train(cfg, extra_callbacks=[timer])
    total = time.perf_counter() - start

    model, datamodule = load_best(result)
    model.eval()
    references = datamodule.texts["test"]
    voices = [item["voice"] for item in datamodule.plan("test")]
    sizes = {name: len(getattr(datamodule, f"{name}_set")) for name in ("train", "val", "test")}
    print(
        f"\nspoken digits: {sizes['train']:,} train / {sizes['val']:,} val / {sizes['test']:,} test utterances; "
        f"train voices {', '.join(datamodule.voices['train'])}"
    )
    print(f"held-out test voices: {', '.join(datamodule.voices['test'])}")
    print(f"synthesis (espeak-ng, cached): {synthesis:.0f} s")
    print(f"training: {timer.summary()}, {total / 60:.1f} min in all with data and test", flush=True)

    for beam in (1, args.beam):
        start = time.perf_counter()
        hypotheses = transcribe(model, datamodule, beam)
        cer, wer = error_rates(hypotheses, references)
        print(
            f"{decoding_label(beam):>8}: test CER {100 * cer:.2f}%  WER {100 * wer:.2f}%  "
            f"(decoding {time.perf_counter() - start:.1f} s)",
            flush=True,
        )
        if beam == 1:
            by_voice: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
            for voice, hyp, ref in zip(voices, hypotheses, references, strict=True):
                by_voice[voice][0].append(hyp)
                by_voice[voice][1].append(ref)
            rows = []
            for voice, (hyps, refs) in sorted(by_voice.items()):
                voice_cer, voice_wer = error_rates(hyps, refs)
                rows.append((voice, f"CER {100 * voice_cer:.2f}%", f"WER {100 * voice_wer:.2f}%", f"({len(refs)})"))
            print_table(rows, indent=10)

    torch.set_num_threads(1)
    waveforms = [torch.from_numpy(w) for w, _ in datamodule.utterances("test")[: args.rtf_utterances]]
    seconds = sum(len(w) for w in waveforms) / datamodule.sample_rate
    for beam in (1, args.beam):
        rtf = real_time_factor(model, datamodule, waveforms, beam)
        print(
            f"real-time factor, CPU, 1 thread, {decoding_label(beam)}: {rtf:.4f} ({len(waveforms)} utterances, "
            f"{seconds:.0f} s of audio, features + network + decoding)"
        )
    print("targets: test CER < 5% on held-out voices; real-time factor well under 0.1")


if __name__ == "__main__":
    main()
