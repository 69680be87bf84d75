"""Benchmark: streaming speech recognition. The bidirectional `spoken_digits` model against the causal
`spoken_digits_streaming` one (unidirectional encoder, cumulative feature normalisation), same data and epochs.

    .venv/bin/python scripts/benchmark_streaming_speech.py               # 3 epochs each (about 10-15 min, 2 cores)
    .venv/bin/python scripts/benchmark_streaming_speech.py --epochs 4 --chunk-ms 100

Trains both, then reports: test CER and WER (greedy) of each on the held-out voices, so the accuracy cost of
streaming; for the unidirectional model, the latency of the streaming recogniser per audio chunk (samples ->
log-mel -> network -> partial transcript, one thread: median and p95 over every chunk of the timed utterances),
its real-time factor (compute seconds per audio second), and whether every streamed transcript equals offline
greedy decoding. Writes benchmarks/streaming_speech.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import hydra
import torch
from benchmark_common import QUIET, TrainingTimer, environment, load_best
from torchmetrics.functional.text import char_error_rate, word_error_rate

from seqmodels.config import compose_run_config
from seqmodels.data.speech import EspeakNotFoundError
from seqmodels.nn.ctc import StreamingRecognizer, ctc_greedy_decode
from seqmodels.train import train

MODELS = {"bidirectional (offline)": "spoken_digits", "unidirectional (streaming)": "spoken_digits_streaming"}


@torch.no_grad()
def test_transcripts(model, datamodule) -> list[str]:
    loader = torch.utils.data.DataLoader(datamodule.test_set, batch_size=64, collate_fn=datamodule.collate_fn)
    return [text for batch in loader for text in model.transcribe(batch.inputs, batch.lengths, 1)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@torch.no_grad()
def streaming_timings(model, datamodule, waveforms: list[torch.Tensor], chunk_ms: float) -> dict[str, float]:
    """Times every ``stream`` call of the recogniser (one thread); checks the final transcripts against offline."""
    recognizer = StreamingRecognizer(datamodule.featurizer, model.net, model.labels, model.blank)
    chunk = round(datamodule.sample_rate * chunk_ms / 1000)
    latencies, total, mismatches = [], 0.0, 0
    for waveform in waveforms:
        state = recognizer.initial_state()
        pieces = [waveform[i : i + chunk] for i in range(0, len(waveform), chunk)]
        for index, piece in enumerate(pieces):
            start = time.perf_counter()
            text, state = recognizer.stream(piece, state, final=index == len(pieces) - 1)
            elapsed = time.perf_counter() - start
            latencies.append(elapsed)
            total += elapsed
        features = datamodule.featurizer.featurize(waveform)
        log_probs, lengths = model.net(features.unsqueeze(0), torch.tensor([features.shape[0]]))
        mismatches += text != model.text(ctc_greedy_decode(log_probs, lengths, model.blank)[0])
    audio = sum(len(w) for w in waveforms) / datamodule.sample_rate
    return {
        "chunk_ms": chunk_ms,
        "chunks": len(latencies),
        "latency_median_ms": 1000 * statistics.median(latencies),
        "latency_p95_ms": 1000 * percentile(latencies, 0.95),
        "latency_max_ms": 1000 * max(latencies),
        "real_time_factor": total / audio,
        "audio_seconds": audio,
        "utterances": len(waveforms),
        "streamed_differs_from_offline": mismatches,
    }


@torch.no_grad()
def offline_rtf(model, datamodule, waveforms: list[torch.Tensor]) -> float:
    audio = sum(len(w) for w in waveforms) / datamodule.sample_rate
    start = time.perf_counter()
    for waveform in waveforms:
        features = datamodule.featurizer.featurize(waveform)
        log_probs, lengths = model.net(features.unsqueeze(0), torch.tensor([features.shape[0]]))
        model.text(ctc_greedy_decode(log_probs, lengths, model.blank)[0])
    return (time.perf_counter() - start) / audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of each model (the same for both)")
    parser.add_argument("--chunk-ms", type=float, default=100.0)
    parser.add_argument("--timed-utterances", type=int, default=100, help="test utterances streamed for latency")
    parser.add_argument("--output", default="benchmarks/streaming_speech.json")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for both runs, e.g. data.num_train=3000")
    args = parser.parse_args()
    print(environment(), flush=True)

    results: dict[str, dict] = {}
    for name, experiment in MODELS.items():
        overrides = [f"experiment={experiment}", *QUIET, "model.test_beam_size=1", f"trainer.max_epochs={args.epochs}"]
        cfg = compose_run_config([*overrides, *args.overrides])
        try:
            hydra.utils.instantiate(cfg.data).prepare_data()  # synthesises the cache, or finds it
        except EspeakNotFoundError as exc:
            print(f"benchmark_streaming_speech: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        torch.set_num_threads(max(1, torch.get_num_threads()))
        timer = TrainingTimer()
        start = time.perf_counter()
        result = train(cfg, extra_callbacks=[timer])
        minutes = (time.perf_counter() - start) / 60
        model, datamodule = load_best(result)
        model.eval()
        hypotheses = test_transcripts(model, datamodule)
        references = datamodule.texts["test"]
        entry = {
            "experiment": experiment,
            "epochs": args.epochs,
            "parameters": sum(p.numel() for p in model.net.parameters()),
            "test_cer": float(char_error_rate(hypotheses, references)),
            "test_wer": float(word_error_rate(hypotheses, references)),
            "test_utterances": len(references),
            "train_minutes": minutes,
        }
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        waveforms = [torch.from_numpy(w) for w, _ in datamodule.utterances("test")[: args.timed_utterances]]
        entry["offline_rtf"] = offline_rtf(model, datamodule, waveforms)
        if not model.net.encoder.bidirectional:
            entry["streaming"] = streaming_timings(model, datamodule, waveforms, args.chunk_ms)
        torch.set_num_threads(threads)
        results[name] = entry
        print(f"{name}: {json.dumps(entry)}", flush=True)

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"environment": environment(), "models": results}, indent=2) + "\n")
    print(f"\nwrote {output}\n")
    print("| model | params | test CER | test WER | latency / chunk (median, p95) | RTF, 1 thread |")
    print("|---|---|---|---|---|---|")
    for name, entry in results.items():
        stream = entry.get("streaming")
        latency = (
            f"{stream['latency_median_ms']:.2f} ms, {stream['latency_p95_ms']:.2f} ms per {stream['chunk_ms']:g} ms"
            if stream
            else "- (needs the whole utterance)"
        )
        rtf = f"{stream['real_time_factor']:.4f} streaming" if stream else f"{entry['offline_rtf']:.4f} offline"
        print(
            f"| {name} | {entry['parameters'] / 1e6:.2f} M | {100 * entry['test_cer']:.2f}% | "
            f"{100 * entry['test_wer']:.2f}% | {latency} | {rtf} |"
        )


if __name__ == "__main__":
    main()
