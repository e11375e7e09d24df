"""`charlm serve`'s web app: the page, and a small JSON API over the same calls as the CLI.

    GET  /api/runs       the runs of --checkpoint-dir and the shipped bases
    GET  /api/forms      the named forms (as `generate --list-forms --json`)
    POST /api/generate   a generation, streamed as JSON lines (see `generate`)
    POST /api/scan       a lyric's form (as `charlm scan --json`), with each line's tones
    GET  /api/status     generations running, models loaded

A request's fields are `charlm generate`'s long options with underscores; it is validated by
GenerationRequest and resolved by LanguageModel.prepare, so the page writes the CLI's bytes.
A CharlmError becomes a 4xx with the CLI's message. Generation runs on a thread of its own
and stops at the next character once the client goes away (Stop in the page).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from charlm.errors import CharlmError, ResourceError, UsageError
from charlm.generation.request import GenerationRequest
from charlm.serve.models import ModelCache, run_list

STATUS = {2: 400, 3: 422, 4: 404, 6: 503}  # exit code -> HTTP status
FLUSH_S = 0.05  # the longest a written character waits to be sent (benchmarks/serve.py)


@dataclass(frozen=True)
class Limits:
    """What one request may ask, and how many generations run at once (the CLI's own bounds
    are wider: a page is shared, a shell is not)."""

    max_length: int = 4000  # characters a sample
    max_samples: int = 8
    max_prefix: int = 2000
    max_active: int = 8  # generations at once; more wait their turn...
    max_waiting: int = 32  # ...up to this many, and more get 503 (try again)
    max_body: int = 256_000  # bytes of a request


def create_app(checkpoint_dir: Path, device: str = "cpu", limits: Limits = Limits()) -> Starlette:
    """The app for runs under `checkpoint_dir`; models load on first use."""
    state = _State(ModelCache(Path(checkpoint_dir), device), limits)
    static = resources.files("charlm.serve") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")

    async def index(_: Request) -> Response:
        return HTMLResponse(page)

    async def runs(_: Request) -> Response:
        return await _call(lambda: {"runs": run_list(state.models.checkpoint_dir)})

    async def forms(_: Request) -> Response:
        from charlm.generation.form.layout import describe_forms

        lines = describe_forms(as_json=True).splitlines()
        return JSONResponse({"forms": [json.loads(x) for x in lines]})

    async def status(_: Request) -> Response:
        return JSONResponse({"active": state.active, "waiting": state.waiting,
                             "loaded": state.models.loaded()})  # fmt: skip

    async def scan(request: Request) -> Response:
        body = await _body(request, limits)
        if isinstance(body, Response):
            return body
        return await _call(lambda: scan_text(body))

    async def generate(request: Request) -> Response:
        body = await _body(request, limits)
        if isinstance(body, Response):
            return body
        return await state.generate(body)

    return Starlette(routes=[
        Route("/", index), Route("/api/runs", runs), Route("/api/forms", forms),
        Route("/api/status", status), Route("/api/scan", scan, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ])  # fmt: skip


def scan_text(body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/scan {text, rhyme_table}: scan's result, each line with its tones (平/仄 per
    character where every reading agrees, else 中)."""
    from charlm.generation.form.rhyme import TABLES, RhymeBook
    from charlm.generation.form.scan import scan

    text, table = body.get("text"), body.get("rhyme_table", "十三辙")
    if not isinstance(text, str) or not text.strip():
        raise UsageError("text: paste a lyric to scan")
    if table not in TABLES:
        raise UsageError(f"rhyme_table must be {' or '.join(TABLES)}, not {table!r}")
    book = RhymeBook(table)
    result = scan(text.replace("\r\n", "\n").removeprefix("\ufeff"), book)
    for line in result["lines"]:
        line["tones"] = "".join(book.strict_tone(c) or "中" for c in line["text"] if c.strip())
    return result


class _State:
    """The server's shared state: the models, and the generations running."""

    def __init__(self, models: ModelCache, limits: Limits) -> None:
        self.models, self.limits = models, limits
        self.active = self.waiting = 0
        self._lock = threading.Lock()
        self._turns: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}  # one per loop

    def check(self, body: dict[str, Any]) -> tuple[Any, GenerationRequest]:
        fields = dict(body)
        name = fields.pop("checkpoint", None)
        req = GenerationRequest.from_fields(fields)
        lim = self.limits
        if req.length is not None and req.length > lim.max_length:
            raise UsageError(f"length: at most {lim.max_length} characters from the page")
        if req.num_samples > lim.max_samples:
            raise UsageError(f"num_samples: at most {lim.max_samples} from the page")
        if req.prefix is not None and len(req.prefix) > lim.max_prefix:
            raise UsageError(f"prefix: at most {lim.max_prefix} characters")
        if req.prefix == "-":
            raise UsageError("prefix: - reads stdin in the CLI; type the text itself")
        return name, req

    async def generate(self, body: dict[str, Any]) -> Response:
        """Start a generation on a thread; its first message decides the response: an error
        (4xx, the CLI's message) or the stream of JSON lines that follows."""
        try:
            name, req = self.check(body)
            if self.waiting >= self.limits.max_waiting:
                raise ResourceError(f"{self.active + self.waiting} songs are being written or "
                                    "waiting; try again")  # fmt: skip
        except CharlmError as e:
            return _error(e)
        loop, queue, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        turn = self._turns.setdefault(loop, asyncio.Semaphore(self.limits.max_active))
        self.waiting += 1
        try:
            await turn.acquire()
        finally:
            self.waiting -= 1
        with self._lock:
            self.active += 1

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def done() -> None:
            with self._lock:
                self.active -= 1
            loop.call_soon_threadsafe(turn.release)  # asyncio objects: on their loop

        worker = threading.Thread(target=self._work, args=(name, req, put, stop, done),
                                  daemon=True)  # fmt: skip
        worker.start()
        first = await queue.get()
        if first.get("type") == "error" and first.get("before_text"):
            await queue.get()  # the worker's end
            return JSONResponse({"error": first["error"], "exit_code": first["exit_code"]},
                                status_code=first["status"])  # fmt: skip
        return StreamingResponse(_lines(first, queue, stop), media_type="application/x-ndjson")

    def _work(self, name: Any, req: GenerationRequest, put, stop: threading.Event, done) -> None:
        started = False
        try:
            lm = self.models.get(name)
            run = lm.prepare(req)
            steps = run.stream()
            texts = list(next(steps))  # the options are checked before the first piece
            put({"type": "start", "checkpoint": name, "seed": run.cfg.seed, "notes": run.notes,
                 "samples": len(texts), "options": req.as_dict(),
                 "max_copy": run.cfg.max_copy, "pieces": texts})  # fmt: skip
            started = True
            held, last = [""] * len(texts), 0.0  # the first piece goes at once
            for pieces in steps:
                if stop.is_set():  # the client went away: nothing keeps computing
                    steps.close()
                    return
                texts = _joined(texts, pieces)
                held = _joined(held, pieces)
                # a piece a line break or FLUSH_S: each event wakes the loop (and the GIL)
                now = time.perf_counter()
                if now - last >= FLUSH_S or any("\n" in p for p in pieces):
                    put({"type": "piece", "pieces": held})
                    held, last = [""] * len(texts), now
            if any(held):
                put({"type": "piece", "pieces": held})
            samples = [{**rec, **note} for rec, note in
                       zip(run.records(texts), run.annotations(texts), strict=True)]  # fmt: skip
            short = run.short_samples(texts)
            put({"type": "result", "seed": run.cfg.seed, "options": req.as_dict(),
                 "checkpoint": name, "samples": samples, "short": short})  # fmt: skip
        except CharlmError as e:
            put({"type": "error", "error": str(e), "exit_code": e.exit_code,
                 "status": STATUS.get(e.exit_code, 500), "before_text": not started})  # fmt: skip
        except Exception as e:  # a page shows a line, never a stack trace
            put({"type": "error", "error": f"unexpected error: {type(e).__name__}: {e}",
                 "exit_code": 1, "status": 500, "before_text": not started})  # fmt: skip
        finally:
            done()  # on the thread: `active` falls as soon as the work stops
            put(None)


async def _lines(first: dict[str, Any], queue: asyncio.Queue, stop: threading.Event):
    """The stream: one JSON line an event; pieces that queued up meanwhile go out as one event
    (a slow client gets fewer, longer lines). Closing it (the client left) stops the worker."""
    try:
        yield json.dumps(first, ensure_ascii=False) + "\n"
        while True:
            item = await queue.get()
            while item is not None and item["type"] == "piece" and not queue.empty():
                nxt = queue.get_nowait()
                if nxt is None or nxt["type"] != "piece":
                    yield json.dumps(item, ensure_ascii=False) + "\n"
                    item = nxt
                    break
                item = {"type": "piece", "pieces": _joined(item["pieces"], nxt["pieces"])}
            if item is None:
                return
            item.pop("before_text", None)
            yield json.dumps(item, ensure_ascii=False) + "\n"
    finally:
        stop.set()


def _joined(a: list[str], b: list[str]) -> list[str]:
    return [x + y for x, y in zip(a, b, strict=True)]


async def _body(request: Request, limits: Limits) -> dict[str, Any] | Response:
    raw = await request.body()
    if len(raw) > limits.max_body:
        return _error(UsageError(f"request over {limits.max_body:,} bytes"))
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(UsageError("the request is not JSON"))
    if not isinstance(body, dict):
        return _error(UsageError("the request must be a JSON object of generate's options"))
    return body


async def _call(fn) -> Response:
    """fn() on a thread (it may read files or pypinyin's tables), as JSON or a CharlmError."""
    try:
        return JSONResponse(await asyncio.to_thread(fn))
    except CharlmError as e:
        return _error(e)


def _error(e: CharlmError) -> Response:
    return JSONResponse({"error": str(e), "exit_code": e.exit_code},
                        status_code=STATUS.get(e.exit_code, 500))  # fmt: skip
