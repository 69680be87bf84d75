"""A checkpoint behind HTTP (the library behind ``seqmodels-serve ckpt_path=...``): a FastAPI app, run by uvicorn.

    seqmodels-serve ckpt_path=run/checkpoints/epoch_009.ckpt                 # http://127.0.0.1:8000
    curl -s localhost:8000/metadata
    curl -s localhost:8000/predict -d '{"texts": ["great value, works well"], "n_best": 2}'
    curl -sN localhost:8000/generate -d '{"prompt": "the ", "max_new_tokens": 50, "seed": 1}'

Endpoints follow what the checkpoint's task declares (``capabilities``, see :mod:`seqmodels.tasks.capabilities`):
``/predict`` for ``capabilities.predict`` (text, feature sequences or WAV in; labels, tags, text out),
``/forecast`` for ``Prediction.SERIES_TO_FORECAST``, ``/generate`` for ``capabilities.generate``. ``/health``,
``/metadata`` and ``/stats`` are always there. An endpoint the checkpoint does not offer answers 404 with one line
saying which it does offer.

Requests (JSON bodies; every field but the input is optional):

    POST /predict   text classifier {"texts": [...] | "text": "...", "n_best": 1}          -> labels, probabilities
                    tagger          {"texts": [...]}                                        -> one tag per word
                    encoder-decoder {"texts": [...], "beam_size": 5, "n_best": 1, "length_penalty": 1.0} -> texts
                    numeric classifier {"sequences": [[[x, ...] per step] per input], "n_best": 1}
                    speech (CTC)    {"wav_base64": "<base64 of a PCM WAV>", "beam_size": 5, "n_best": 1}
    POST /forecast  {"series": [y, ...] | [[y1, y2], ...], "time": [...], "covariates": {"name": [...]}}
    POST /generate  {"prompt": "...", "max_new_tokens": 200, "temperature": 1.0, "top_k": null, "top_p": null,
                     "seed": 0, "stream": true}   -> text/event-stream, or one JSON answer with "stream": false

Batching. ``/predict`` and ``/forecast`` requests queue in a :class:`DynamicBatcher`: a batch runs when
``max_batch_size`` items wait or ``max_wait_ms`` has passed since the first. ``/generate`` streams are stepped by a
:class:`GenerationScheduler` (continuous batching): each request keeps its own recurrent state, and every step
concatenates the states of all active streams along the batch dimension, runs one batched ``step``, and splits them
again; a new request joins at the next step, a finished one leaves. Each stream samples its rows with its own
``torch.Generator`` (seeded by the request), so a seeded request draws the same text however it was batched. Every
model call runs on one worker thread, off the event loop: the server keeps accepting while the model works.

Errors are JSON ``{"error": "<one line: the problem and the fix>"}``: 4xx for a request the server cannot take
(malformed JSON, a missing or wrong field, empty text, an input beyond the configured limits, a WAV that is not a
WAV, an endpoint the checkpoint does not offer), 500 where the model itself fails. No request is dropped silently.

Backends. A ``.ckpt`` is served by :class:`CheckpointBackend` (PyTorch); an ``.onnx`` file written by
``seqmodels-export`` by :class:`OnnxBackend` (:mod:`seqmodels.runtime`: numpy + onnxruntime) for language models,
encoder-decoders and text classifiers. Both give the server the same small interface (:class:`Backend`).

Trust model: the checkpoint is loaded only through :mod:`seqmodels.checkpoint` (``weights_only=True``, configs
rebuilt through the allow-list). The server binds 127.0.0.1 unless ``allow_remote=true``; it has no authentication.
"""

from seqmodels.serve.app import create_app, serve
from seqmodels.serve.backends import Backend, CheckpointBackend, Item, OnnxBackend, load_backend
from seqmodels.serve.batching import DynamicBatcher, GenerationScheduler, Stats
from seqmodels.serve.requests import LOOPBACK_HOSTS, Limits, RequestError, check_host

__all__ = [
    "LOOPBACK_HOSTS",
    "Backend",
    "CheckpointBackend",
    "DynamicBatcher",
    "GenerationScheduler",
    "Item",
    "Limits",
    "OnnxBackend",
    "RequestError",
    "Stats",
    "check_host",
    "create_app",
    "load_backend",
    "serve",
]
