"""``seqmodels-serve``: real HTTP on 127.0.0.1 against tiny checkpoints of every kind the server takes.

Seven checkpoints (text classifier, character language model, forecaster, seq2seq, CTC speech model, tagger,
feature-sequence classifier) are trained for
two batches each, once for the module (a few seconds). One language-model server runs as the real CLI in a
subprocess; the others run uvicorn in a thread of this process. Every server listens on 127.0.0.1 and is shut down
by its fixture. Answers are compared with the library functions behind ``seqmodels-predict``/``seqmodels-generate``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from omegaconf import OmegaConf

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.config import compose_run_config, config_dir
from seqmodels.data.audio import write_wav
from seqmodels.data.speech import dtmf_signal
from seqmodels.generate import generate
from seqmodels.predict import label_texts, predict, transcribe_audio
from seqmodels.serve import CheckpointBackend, Limits, check_host, create_app, load_backend, serve
from seqmodels.train import train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
COMMON = [
    "test=false",
    "logger=none",
    "~callbacks.rich_progress_bar",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
]
TEXTS = ["great value, works well", "broke after a day", "ok", "would buy again, really great", "terrible"] * 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny checkpoints, two training batches each: they must answer, not answer well."""
    root = tmp_path_factory.mktemp("serve")
    corpus = root / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\na dog ran to the park.\n" * 20)
    specs = {
        "classifier": ["experiment=text_classification", "~callbacks.early_stopping"],
        "lm": [
            "experiment=char_lm",
            f"data.path={corpus}",
            "data.pattern=*.txt",
            "data.batch_size=2",
            "data.bptt=16",
            "model.net.embedding_dim=4",
            "model.net.hidden_size=8",
            "model.net.num_layers=1",
            "~callbacks.early_stopping",
            "~callbacks.generation_samples",
        ],
        "forecaster": [
            "experiment=airline",
            "model.net.encoder.hidden_size=8",
            "model.plot_every_n_epochs=0",
            "model/forecasting_output=quantile",
        ],
        "seq2seq": ["experiment=reverse", "data.num_train=64"],
        "speech": ["experiment=dtmf_ctc"],
        "tagger": ["experiment=ner"],
        "vowels": ["experiment=japanese_vowels"],  # a classifier of feature sequences, not text
    }
    paths = {}
    for name, overrides in specs.items():
        result = train(compose_run_config([*overrides, *COMMON], output_dir=root / name))
        paths[name] = Path(str(result.best_model_path))
        assert paths[name].is_file(), name
    return paths


class ThreadServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread of the test process."""

    def __init__(self, app: Any) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextlib.contextmanager
def serving(path: Path, **limits: Any) -> Iterator[tuple[ThreadServer, CheckpointBackend]]:
    """A checkpoint served in a thread on 127.0.0.1 with these limits; shut down on leaving the block."""
    backend = CheckpointBackend(path)
    with ThreadServer(create_app(backend, Limits(**limits))) as server:
        yield server, backend


@pytest.fixture(scope="module")
def classifier(checkpoints):
    with serving(checkpoints["classifier"], max_batch_size=8, max_wait_ms=50, max_input_length=200) as served:
        yield served


@pytest.fixture(scope="module")
def lm_batching(checkpoints):
    with serving(checkpoints["lm"], max_batch_size=32, max_new_tokens=50) as served:
        yield served


@pytest.fixture(scope="module")
def cli_lm(checkpoints) -> Iterator[str]:
    """The real ``python -m seqmodels.cli.serve`` on a free port, terminated afterwards."""
    port = _free_port()
    args = [sys.executable, "-m", "seqmodels.cli.serve", f"ckpt_path={checkpoints['lm']}", f"port={port}"]
    process = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "seqmodels-serve did not start in 90 s"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _events(url: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """POST /generate and read the server-sent events one by one."""
    events = []
    with httpx.stream("POST", f"{url}/generate", json=payload, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        for line in lines:
            if not line:
                continue
            assert line.startswith("data: "), line
            events.append(json.loads(line[len("data: ") :]))
            assert next(lines) == "", "each event ends with a blank line"
    return events


def _generate_cfg(path: Path, **values: Any) -> Any:
    cfg = OmegaConf.load(config_dir() / "generate.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key)
    return OmegaConf.merge(cfg, {"ckpt_path": str(path), **values})


def _predict_cfg(path: Path, **values: Any) -> Any:
    cfg = OmegaConf.load(config_dir() / "predict.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key)
    return OmegaConf.merge(cfg, {"ckpt_path": str(path), **values})


async def _post_all(url: str, path: str, payloads: list[dict[str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return list(await asyncio.gather(*(client.post(path, json=p) for p in payloads)))


# --------------------------------------------------------------------------------------------- the CLI, generation
def test_cli_streams_tokens_equal_to_the_plain_answer_and_to_seqmodels_generate(cli_lm, checkpoints):
    health = httpx.get(f"{cli_lm}/health").json()
    assert health == {"status": "ok", "task": "LanguageModelTask"}
    meta = httpx.get(f"{cli_lm}/metadata").json()
    assert meta["endpoints"] == ["/health", "/metadata", "/stats", "/generate"]
    datamodule = build_from_checkpoint(load_checkpoint(checkpoints["lm"]), setup_data=False)[1]
    assert meta["vocab_size"] == len(datamodule.vocab)
    assert meta["limits"]["max_batch_size"] == 32 and meta["input"]["kind"] == "prompt"

    greedy = {"prompt": "the c", "max_new_tokens": 20, "temperature": 0}
    events = _events(cli_lm, greedy)
    tokens, final = events[:-1], events[-1]
    assert final["done"] and final["tokens"] == len(tokens) == 20 and final["finish_reason"] == "length"
    assert [e["index"] for e in tokens] == list(range(20))
    assert final["completion"] == "".join(e["token"] for e in tokens)
    assert final["text"] == "the c" + final["completion"]
    plain = httpx.post(f"{cli_lm}/generate", json={**greedy, "stream": False}).json()
    assert plain["text"] == final["text"] and plain["token_ids"] == [e["id"] for e in tokens]
    printed: list[str] = []
    generate(_generate_cfg(checkpoints["lm"], prompt="the c", max_new_tokens=20, temperature=0), write=printed.append)
    assert "".join(printed) == final["text"] + "\n"  # what seqmodels-generate prints

    sampled = {"prompt": "a dog", "max_new_tokens": 15, "temperature": 1.0, "top_k": 5, "top_p": 0.9, "seed": 7}
    streamed = _events(cli_lm, sampled)[-1]["text"]
    assert httpx.post(f"{cli_lm}/generate", json={**sampled, "stream": False}).json()["text"] == streamed
    printed = []
    generate(_generate_cfg(checkpoints["lm"], **{k: v for k, v in sampled.items()}), write=printed.append)
    assert "".join(printed) == streamed + "\n"
    other = httpx.post(f"{cli_lm}/generate", json={**sampled, "seed": 8, "stream": False}).json()["text"]
    assert other != streamed  # the seed matters (15 draws from 5 tokens: equal by chance ~never)


def test_concurrent_generation_is_batched_per_step_and_equal_to_unbatched(lm_batching):
    server, _ = lm_batching
    payloads = [
        {"prompt": "the " if i % 2 else "a dog", "max_new_tokens": 10 + i, "seed": i, "stream": False}
        for i in range(16)
    ]
    alone = [httpx.post(f"{server.url}/generate", json=p, timeout=30).json() for p in payloads]
    before = httpx.get(f"{server.url}/stats").json()["batches"]["generate"]["max_size"]
    assert before == 1  # one request at a time: every step ran one stream
    together = asyncio.run(_post_all(server.url, "/generate", payloads))
    assert [r.status_code for r in together] == [200] * 16
    assert [r.json()["text"] for r in together] == [a["text"] for a in alone]
    assert [r.json()["tokens"] for r in together] == [10 + i for i in range(16)]
    stats = httpx.get(f"{server.url}/stats").json()
    assert stats["batches"]["generate"]["max_size"] > 1, stats  # streams were stepped together


def test_generate_refuses_bad_requests(lm_batching):
    url = lm_batching[0].url
    cases = [
        ({"max_new_tokens": 5}, "missing field 'prompt'"),
        ({"prompt": "   "}, '"prompt" is empty'),
        ({"prompt": "the", "max_new_tokens": 51}, "'max_new_tokens' must be an integer in [1, 50]"),
        ({"prompt": "the", "max_new_tokens": "5"}, "'max_new_tokens' must be an integer"),
        ({"prompt": "the", "temperature": -1}, '"temperature" must be a finite number >= 0'),
        ({"prompt": "the", "top_p": 1.5}, '"top_p" must be a number in (0, 1]'),
        ({"prompt": "the", "stream": "no"}, "'stream' must be true or false"),
    ]
    for payload, message in cases:
        response = httpx.post(f"{url}/generate", json=payload)
        assert response.status_code == 400 and message in response.json()["error"], (payload, response.text)
    response = httpx.post(f"{url}/predict", json={"texts": ["the"]})
    assert response.status_code == 404
    assert response.json()["error"].startswith("this LanguageModelTask checkpoint does not offer /predict")


def test_a_model_failure_during_generation_is_a_500(lm_batching, monkeypatch):
    server, backend = lm_batching

    def broken(*args: Any) -> Any:
        raise RuntimeError("state on fire")

    monkeypatch.setattr(backend.net, "step", broken)
    payload = {"prompt": "the ", "max_new_tokens": 5, "temperature": 0}
    response = httpx.post(f"{server.url}/generate", json={**payload, "stream": False})
    assert response.status_code == 500
    assert response.json() == {"error": "the model failed during generation: RuntimeError: state on fire"}
    events = _events(server.url, payload)
    assert events == [{"error": "the model failed during generation: RuntimeError: state on fire", "status": 500}]
    monkeypatch.undo()
    assert httpx.post(f"{server.url}/generate", json={**payload, "stream": False}).json()["tokens"] == 5


# --------------------------------------------------------------------------------------------- classifier
def test_classifier_predicts_labels_like_seqmodels_predict(classifier, checkpoints):
    server, _ = classifier
    meta = httpx.get(f"{server.url}/metadata").json()
    assert meta["task"] == "SequenceClassificationTask" and meta["labels"] == ["negative", "positive"]
    assert meta["endpoints"] == ["/health", "/metadata", "/stats", "/predict"] and meta["input"] == {"kind": "text"}
    response = httpx.post(f"{server.url}/predict", json={"texts": TEXTS[:2], "n_best": 2})
    assert response.status_code == 200
    results = response.json()["results"]
    for text, answer in zip(TEXTS[:2], results, strict=True):
        expected = label_texts(_predict_cfg(checkpoints["classifier"], input=text, n_best=2))[0][1]
        assert [a["label"] for a in answer] == [label for label, _ in expected]
        assert [a["probability"] for a in answer] == pytest.approx([p for _, p in expected], abs=1e-5)
        assert sum(a["probability"] for a in answer) == pytest.approx(1.0, abs=1e-5)
    one = httpx.post(f"{server.url}/predict", json={"text": TEXTS[0]}).json()["results"]
    assert len(one) == 1 and one[0][0]["label"] == results[0][0]["label"]


def test_concurrent_predictions_are_batched_and_equal_to_unbatched(classifier):
    server, _ = classifier
    payloads = [{"text": text, "n_best": 2} for text in TEXTS[:16]]
    alone = [httpx.post(f"{server.url}/predict", json=p).json()["results"] for p in payloads]
    responses = asyncio.run(_post_all(server.url, "/predict", payloads))
    assert [r.status_code for r in responses] == [200] * 16
    for got, want in zip([r.json()["results"] for r in responses], alone, strict=True):
        assert [a["label"] for a in got[0]] == [a["label"] for a in want[0]]
        assert [a["probability"] for a in got[0]] == pytest.approx([a["probability"] for a in want[0]], abs=1e-5)
    batches = httpx.get(f"{server.url}/stats").json()["batches"]["predict"]
    assert 1 < batches["max_size"] <= 8, batches  # batched, never beyond max_batch_size


def test_bad_requests_get_one_line_4xx_and_the_server_goes_on(classifier):
    url = classifier[0].url
    post = lambda body, **kw: httpx.post(f"{url}/predict", content=body, **kw)  # noqa: E731
    cases = [
        (post(b"{not json"), 400, "is not valid JSON"),
        (post(b""), 400, "the request body is empty"),
        (post(b"[1, 2]"), 400, "must be a JSON object"),
        (post(b'{"txt": ["a"]}'), 400, "missing field 'texts'"),
        (post(b'{"texts": "good"}'), 400, "field 'texts' must be"),
        (post(b'{"texts": [3]}'), 400, "texts[0] must be a string"),
        (post(b'{"texts": ["ok", " "]}'), 400, "texts[1] is empty"),
        (post(b'{"texts": []}'), 400, '"texts" is empty'),
        (post(b'{"texts": ["ok"], "n_best": 3}'), 400, "'n_best' must be an integer in [1, 2]"),
        (post(json.dumps({"text": "a" * 201}).encode()), 400, "more than max_input_length=200"),
        (post(json.dumps({"text": "a" * 2_000_000}).encode()), 413, "more than max_request_bytes=1000000"),
        (httpx.post(f"{url}/generate", json={"prompt": "a"}), 404, "does not offer /generate; it offers /predict"),
        (httpx.post(f"{url}/forecast", json={"series": [1]}), 404, "does not offer /forecast"),
        (httpx.get(f"{url}/nowhere"), 404, "no endpoint /nowhere"),
        (httpx.get(f"{url}/predict"), 405, "GET is not allowed on /predict"),
    ]
    for response, status, message in cases:
        body = response.json()
        assert response.status_code == status and set(body) == {"error"}, response.text
        assert message in body["error"] and "\n" not in body["error"], body
    assert httpx.post(f"{url}/predict", json={"text": "still here"}).status_code == 200


def test_a_model_failure_is_a_500_for_its_request_only(classifier, monkeypatch):
    server, backend = classifier

    def broken(*args: Any) -> Any:
        raise RuntimeError("weights on fire")

    monkeypatch.setattr(backend.model, "predict_step", broken)
    response = httpx.post(f"{server.url}/predict", json={"text": "fine"})
    assert response.status_code == 500
    assert response.json() == {"error": "the model failed on this batch: RuntimeError: weights on fire"}
    monkeypatch.undo()
    assert httpx.post(f"{server.url}/predict", json={"text": "fine"}).status_code == 200


# ------------------------------------------------------------------------------ forecaster, seq2seq, speech
def test_forecaster_forecasts_like_the_library(checkpoints):
    import pandas as pd

    values = [112.0 + 3 * i + 20 * np.sin(i / 2) for i in range(36)]
    times = [str(t.date()) for t in pd.date_range("1949-01-01", periods=36, freq="MS")]
    with serving(checkpoints["forecaster"]) as (server, backend):
        meta = httpx.get(f"{server.url}/metadata").json()
        assert meta["endpoints"][-1] == "/forecast" and meta["input"]["horizon"] == 12
        response = httpx.post(f"{server.url}/forecast", json={"series": values, "time": times})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["targets"] == ["Passengers"] and answer["time"][0].startswith("1952-01-01")
        point, lower, upper = (np.array(answer[k]) for k in ("point", "lower", "upper"))
        assert point.shape == lower.shape == upper.shape == (12, 1) and (lower <= upper).all()
        frame = pd.DataFrame({"Passengers": values}, index=pd.to_datetime(times))
        expected = backend.datamodule.forecast(backend.model, frame)
        np.testing.assert_allclose(point, expected.point[0], rtol=1e-5)
        np.testing.assert_allclose(lower, expected.lower[0], rtol=1e-5)
        same = asyncio.run(_post_all(server.url, "/forecast", [{"series": values, "time": times}] * 8))
        assert all(np.allclose(r.json()["point"], point, rtol=1e-5) for r in same)

        short = httpx.post(f"{server.url}/forecast", json={"series": values[:10], "time": times[:10]})
        assert short.status_code == 400 and "looks back 24" in short.json()["error"]
        untimed = httpx.post(f"{server.url}/forecast", json={"series": values})
        assert untimed.status_code == 400 and 'may need dates: send "time"' in untimed.json()["error"]
        bad = httpx.post(f"{server.url}/forecast", json={"series": [1, "x"]})
        assert bad.status_code == 400 and "series[1] holds" in bad.json()["error"]
        assert httpx.post(f"{server.url}/predict", json={"texts": ["a"]}).status_code == 404


def test_seq2seq_decodes_like_seqmodels_predict(checkpoints):
    with serving(checkpoints["seq2seq"]) as (server, _):
        texts = ["abcdef", "xyz"]
        response = httpx.post(f"{server.url}/predict", json={"texts": texts, "beam_size": 3, "n_best": 2})
        assert response.status_code == 200, response.text
        for text, answer in zip(texts, response.json()["results"], strict=True):
            expected = predict(_predict_cfg(checkpoints["seq2seq"], input=text, beam_size=3, n_best=2))[0][1]
            assert [a["text"] for a in answer] == [t for t, _ in expected]
            assert [a["score"] for a in answer] == pytest.approx([s for _, s in expected], abs=1e-4)
        wrong = httpx.post(f"{server.url}/predict", json={"texts": ["abc"], "beam_size": 2, "n_best": 3})
        assert wrong.status_code == 400 and "'n_best' must be an integer in [1, 2]" in wrong.json()["error"]


def test_speech_model_transcribes_a_base64_wav(checkpoints, tmp_path):
    wav = write_wav(tmp_path / "keys.wav", dtmf_signal("123", np.random.default_rng(0)), 8000)
    with serving(checkpoints["speech"]) as (server, _):
        assert httpx.get(f"{server.url}/metadata").json()["input"]["kind"] == "wav"
        encoded = base64.b64encode(wav.read_bytes()).decode()
        response = httpx.post(f"{server.url}/predict", json={"wav_base64": encoded, "beam_size": 2})
        assert response.status_code == 200, response.text
        expected = transcribe_audio(_predict_cfg(checkpoints["speech"], input_file=str(wav), beam_size=2))[0][1]
        assert response.json()["results"][0][0]["text"] == expected[0][0]
        not_wav = base64.b64encode(b"ID3 this is an mp3, honest").decode()
        refused = httpx.post(f"{server.url}/predict", json={"wav_base64": not_wav})
        assert refused.status_code == 400 and "does not hold a WAV file" in refused.json()["error"]
        garbled = httpx.post(f"{server.url}/predict", json={"wav_base64": "%%%"})
        assert garbled.status_code == 400 and "not valid base64" in garbled.json()["error"]
        cut = base64.b64encode(wav.read_bytes()[:100]).decode()
        truncated = httpx.post(f"{server.url}/predict", json={"wav_base64": cut})
        assert truncated.status_code == 400 and "the uploaded WAV" in truncated.json()["error"]


# --------------------------------------------------------------------------------------------- start-up refusals
def test_a_non_loopback_host_needs_allow_remote(checkpoints):
    with pytest.raises(ValueError, match="host=0.0.0.0 would expose the model .* allow_remote=true"):
        serve(str(checkpoints["classifier"]), host="0.0.0.0")
    assert check_host("0.0.0.0", allow_remote=True) == "0.0.0.0"
    assert check_host("127.0.0.1", allow_remote=False) == "127.0.0.1"


def test_an_exported_language_model_is_served_from_its_onnx_file(checkpoints, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from seqmodels import runtime
    from seqmodels.export import export_onnx

    path = tmp_path / "lm.onnx"
    export_onnx(load_checkpoint(checkpoints["lm"]), path)
    backend = load_backend(path)
    with ThreadServer(create_app(backend, Limits(max_batch_size=8))) as server:
        meta = httpx.get(f"{server.url}/metadata").json()
        assert meta["task"] == "LanguageModelRuntime (onnx)" and meta["endpoints"][-1] == "/generate"
        greedy = {"prompt": "the c", "max_new_tokens": 20, "temperature": 0}
        events = _events(server.url, greedy)
        expected = runtime.load(path).generate_text("the c", 20, temperature=0)[0]
        assert events[-1]["text"] == expected and len(events) == 21
        sampled = [{"prompt": "a dog", "max_new_tokens": 12, "seed": i, "stream": False} for i in range(8)]
        alone = [httpx.post(f"{server.url}/generate", json=p).json()["text"] for p in sampled]
        together = asyncio.run(_post_all(server.url, "/generate", sampled))
        assert [r.json()["text"] for r in together] == alone  # each request draws with its own numpy generator
        assert alone[0] == runtime.load(path).generate_text("a dog", 12, seed=0)[0]
        assert httpx.post(f"{server.url}/predict", json={"text": "a"}).status_code == 404
    with pytest.raises(ValueError, match="none.onnx does not exist; export the checkpoint"):
        load_backend(tmp_path / "none.onnx")


def test_exported_taggers_and_speech_models_answer_as_their_checkpoints(checkpoints, tmp_path):
    """/predict from a tagger's and a speech model's .onnx (seqmodels.runtime) equals /predict from the checkpoint."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from seqmodels.export import export_onnx

    texts = {"texts": ["EU rejects German call", "Peter lives in Paris zzz"]}
    wav = write_wav(tmp_path / "keys.wav", dtmf_signal("123", np.random.default_rng(0)), 8000)
    speech = {"wav_base64": base64.b64encode(wav.read_bytes()).decode(), "beam_size": 2, "n_best": 2}
    for name, request in (("tagger", texts), ("speech", speech)):
        path = tmp_path / f"{name}.onnx"
        export_onnx(load_checkpoint(checkpoints[name]), path)
        answers = []
        for source in (checkpoints[name], path):
            with ThreadServer(create_app(load_backend(source), Limits(max_batch_size=8))) as server:
                response = httpx.post(f"{server.url}/predict", json=request)
                assert response.status_code == 200, response.text
                answers.append(response.json()["results"])
        if name == "tagger":
            assert answers[1] == answers[0]
        else:
            (from_checkpoint,), (from_onnx,) = answers
            assert [a["text"] for a in from_onnx] == [a["text"] for a in from_checkpoint]
            scores = [[a["score"] for a in answer] for answer in (from_onnx, from_checkpoint)]
            np.testing.assert_allclose(scores[0], scores[1], atol=1e-4)


def test_an_exported_feature_sequence_classifier_answers_raw_sequences_as_its_checkpoint(checkpoints, tmp_path):
    """The .onnx of a classifier of feature sequences prepares raw sequences as training did (delta features,
    the training scaler), so /predict equals /predict from the checkpoint."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from seqmodels.export import export_onnx

    path = tmp_path / "vowels.onnx"
    export_onnx(load_checkpoint(checkpoints["vowels"]), path)
    rng = np.random.default_rng(1)
    request = {"sequences": [rng.normal(size=(length, 12)).round(3).tolist() for length in (7, 20, 3)], "n_best": 3}
    answers, metas = [], []
    for source in (checkpoints["vowels"], path):
        with ThreadServer(create_app(load_backend(source), Limits(max_batch_size=8))) as server:
            metas.append(httpx.get(f"{server.url}/metadata").json())
            response = httpx.post(f"{server.url}/predict", json=request)
            assert response.status_code == 200, response.text
            answers.append(response.json()["results"])
            narrow = httpx.post(f"{server.url}/predict", json={"sequences": [[[0.0] * 11] * 5]})
            assert narrow.status_code == 400 and "this model reads 12" in narrow.json()["error"]
    assert metas[1]["input"] == metas[0]["input"] == {"kind": "sequences", "channels": 12}
    assert metas[1]["labels"] == metas[0]["labels"]
    for from_checkpoint, from_onnx in zip(*answers, strict=True):
        assert [a["label"] for a in from_onnx] == [a["label"] for a in from_checkpoint]
        np.testing.assert_allclose(
            [a["probability"] for a in from_onnx], [a["probability"] for a in from_checkpoint], atol=1e-5
        )


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_batch_size must be an integer >= 1, got 0"):
        Limits(max_batch_size=0).check()


def test_tagger_gives_one_tag_per_word_like_seqmodels_predict(checkpoints):
    with serving(checkpoints["tagger"]) as (server, _):
        texts = ["EU rejects German call", "Peter lives in Paris"]
        response = httpx.post(f"{server.url}/predict", json={"texts": texts})
        assert response.status_code == 200, response.text
        for text, answer in zip(texts, response.json()["results"], strict=True):
            expected = label_texts(_predict_cfg(checkpoints["tagger"], input=text))[0][1][0][0].split()
            assert answer == {"words": text.split(), "tags": expected}
        refused = httpx.post(f"{server.url}/predict", json={"texts": texts, "n_best": 2})
        assert refused.status_code == 400 and "one tag per word" in refused.json()["error"]


def test_a_feature_sequence_classifier_reads_standardised_sequences(checkpoints):
    import torch

    from seqmodels.data.ucr import with_deltas

    with serving(checkpoints["vowels"]) as (server, backend):
        meta = httpx.get(f"{server.url}/metadata").json()
        assert meta["input"] == {"kind": "sequences", "channels": 12} and len(meta["labels"]) == 9
        rng = np.random.default_rng(0)
        sequences = [rng.normal(size=(length, 12)).round(3).tolist() for length in (7, 20)]
        response = httpx.post(f"{server.url}/predict", json={"sequences": sequences, "n_best": 3})
        assert response.status_code == 200, response.text
        dm = backend.datamodule
        for sequence, answer in zip(sequences, response.json()["results"], strict=True):
            # the recipe's delta features beside the 12 channels, then the training scaler over all 24
            x = (with_deltas(torch.tensor(sequence, dtype=torch.float32), 1) - dm.mean) / dm.std
            assert x.shape[-1] == 24 == dm.dims()["input_size"]
            with torch.no_grad():
                probs = backend.model(x[None], torch.tensor([len(sequence)])).softmax(-1)[0]
            top = probs.topk(3)
            assert [a["label"] for a in answer] == [dm.class_names[i] for i in top.indices.tolist()]
            assert [a["probability"] for a in answer] == pytest.approx(top.values.tolist(), abs=1e-5)
        narrow = httpx.post(f"{server.url}/predict", json={"sequences": [[[0.0] * 11] * 5]})
        assert narrow.status_code == 400 and "11 channels per step; this model reads 12" in narrow.json()["error"]
        ragged = httpx.post(f"{server.url}/predict", json={"sequences": [[[0.0] * 12, [0.0] * 3]]})
        assert ragged.status_code == 400 and "sequences[0][1] has 3 values" in ragged.json()["error"]
