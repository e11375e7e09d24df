"""The page's JSON API, through the ASGI test client and a real server."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from urllib.parse import urlparse

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

import charlm
from charlm.serve import models
from charlm.serve.app import Limits, create_app
from charlm.store import checkpoint

from .conftest import copy_run


@pytest.fixture
def client(runs_dir):
    with TestClient(create_app(runs_dir, limits=Limits())) as c:
        yield c


def events(response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def streamed_texts(evs: list[dict]) -> list[str]:
    texts = list(evs[0]["pieces"])
    for ev in evs[1:]:
        if ev["type"] == "piece":
            texts = [t + p for t, p in zip(texts, ev["pieces"], strict=True)]
    return texts


def test_runs_forms_and_the_page(client):
    names = [r["name"] for r in client.get("/api/runs").json()["runs"]]
    assert {"a", "b", "builtin:zh"} <= set(names)
    forms = {f["name"]: f for f in client.get("/api/forms").json()["forms"]}
    assert forms["七言绝句"]["form"] == "7,7,7,7"
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "export" in client.get("/static/app.js").text
    assert (
        models.BUILTIN == checkpoint.BUILTIN and models.BUILTIN_PREFIX == checkpoint.BUILTIN_PREFIX
    )


@pytest.mark.parametrize(
    "options",
    [{"prefix": "分开", "length": 40, "seed": 3}, {"form": "七言绝句", "seed": 2},
     {"acrostic": "分不天", "seed": 4, "num_samples": 2}],
)  # fmt: skip
def test_generate_streams_what_the_api_writes(client, runs_dir, options):
    r = client.post("/api/generate", json={"checkpoint": "a", **options})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    evs = events(r)
    assert evs[0]["type"] == "start" and evs[-1]["type"] == "result"
    assert len(evs) > 3  # pieces as they come, not one block
    lm = charlm.load("a", checkpoint_dir=runs_dir, device="cpu")
    want = [s["text"] for s in lm.samples(**options)]
    assert streamed_texts(evs) == want == [s["text"] for s in evs[-1]["samples"]]
    for s in evs[-1]["samples"]:
        lines = [ln for ln in s["text"].splitlines() if ln.strip()]
        assert [x["text"] for x in s["line_rhymes"]] == lines
        assert all(0 <= c["start"] < c["end"] <= len(s["text"]) for c in s["copied_spans"])
    assert evs[-1]["seed"] == options["seed"]


def test_copied_spans_are_the_training_texts(client, runs_dir):
    r = client.post("/api/generate", json={"checkpoint": "a", "length": 300, "seed": 1,
                                           "max_copy": 0, "temperature": 0.3})  # fmt: skip
    sample = events(r)[-1]["samples"][0]
    train = (runs_dir / "lyrics.txt").read_text(encoding="utf-8")
    assert sample["copied_spans"], "a tiny model of a repeated text copies it"
    for span in sample["copied_spans"]:
        piece = sample["text"][span["start"] : span["end"]]
        assert span["length"] == len(piece) >= 8 and piece in train


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"checkpoint": "a", "prefix": "分开\u2603"}, 422, "never saw"),
        ({"checkpoint": "../a"}, 400, "not a run name"),
        ({"checkpoint": "/etc/passwd"}, 400, "not a run name"),
        ({"checkpoint": "gone"}, 404, "no such run"),
        ({"checkpoint": "a", "lenght": 3}, 400, "unknown generate option"),
        ({"checkpoint": "a", "length": "9"}, 400, "--length must be a whole number"),
        ({"checkpoint": "a", "length": 100_000}, 400, "at most 4000"),
        ({"checkpoint": "a", "num_samples": 50}, 400, "at most 8"),
        ({"checkpoint": "a", "form": "7,x"}, 400, "form"),
        ({"checkpoint": "a", "form": "7,7", "template": "a\n"}, 400, "choose one"),
    ],
)
def test_errors_are_the_clis_words_not_a_trace(client, body, status, words):
    r = client.post("/api/generate", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and "Traceback" not in r.text


def test_bad_bodies(client):
    assert client.post("/api/generate", content=b"{not json").status_code == 400
    assert client.post("/api/generate", json=[1, 2]).status_code == 400
    assert client.post("/api/generate", content=b"x" * 300_000).status_code == 400
    assert client.post("/api/scan", json={"text": ""}).status_code == 400


def test_scan_reads_lengths_rhymes_and_tones(client):
    r = client.post("/api/scan", json={"text": "\ufeff床前明月光\r\n疑是地上霜\r\n"}).json()
    assert [ln["length"] for ln in r["lines"]] == [5, 5] and r["scheme"] == "AA"
    assert r["lines"][0]["tones"] == "平平平仄平"


def test_a_retrained_run_is_served_anew(client, runs_dir):
    copy_run(runs_dir / "a", runs_dir / "c")
    body = {"checkpoint": "c", "length": 60, "seed": 5, "max_copy": 0}
    first = events(client.post("/api/generate", json=body))[-1]["samples"][0]["text"]
    time.sleep(0.01)
    copy_run(runs_dir / "b", runs_dir / "c")  # "retrained": another network, same name
    again = events(client.post("/api/generate", json=body))[-1]["samples"][0]["text"]
    lm_b = charlm.load("b", checkpoint_dir=runs_dir, device="cpu")
    assert again == lm_b.generate_text(length=60, seed=5, max_copy=0) != first
    (runs_dir / "c" / "best.pt").unlink()  # deleted meanwhile: the CLI's words, a 404
    r = client.post("/api/generate", json=body)
    assert r.status_code == 404 and "deleted meanwhile" in r.json()["error"]


def _status(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url + "api/status", timeout=5).read())


def test_a_closed_connection_stops_the_generation(live_server):
    u = urlparse(live_server)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    body = json.dumps({"checkpoint": "a", "length": 4000, "num_samples": 8, "seed": 1,
                       "rhyme": "AABBCCDDEEFFGGHH"})  # fmt: skip
    conn.request("POST", "/api/generate", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.readline())["type"] == "start"
    resp.readline()  # a piece: it is writing
    assert _status(live_server)["active"] == 1
    conn.sock.shutdown(2)
    conn.close()
    t0 = time.perf_counter()
    while _status(live_server)["active"] and time.perf_counter() - t0 < 5:
        time.sleep(0.05)
    assert _status(live_server)["active"] == 0  # nothing keeps computing


def test_several_clients_at_once(live_server):
    results, errors = {}, []

    def one(seed: int) -> None:
        try:
            req = urllib.request.Request(
                live_server + "api/generate", method="POST",
                data=json.dumps({"checkpoint": "b", "length": 80, "seed": seed}).encode(),
                headers={"content-type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(req, timeout=60) as r:
                evs = [json.loads(x) for x in r.read().decode().splitlines()]
            results[seed] = evs[-1]["samples"][0]["text"]
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 4
    assert len(set(results.values())) == 4  # four seeds, four songs


def test_too_many_at_once_are_told_to_wait(runs_dir):
    app = create_app(runs_dir, limits=Limits(max_waiting=0))
    with TestClient(app) as c:
        r = c.post("/api/generate", json={"checkpoint": "a"})
    assert r.status_code == 503 and "try again" in r.json()["error"]


def test_serve_without_the_extra_says_how_to_install_it(runner, monkeypatch, tmp_path):
    import sys

    from ..conftest import invoke

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    r = invoke(runner, ["serve", "--checkpoint-dir", tmp_path])
    assert r.exit_code == 2 and "pip install 'charlm-lyrics[serve]'" in r.stderr


def test_serve_help_and_root_help_import_no_server(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from charlm.cli import app\ntry:\n    app(['serve', '--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in ('uvicorn', 'starlette', "
            "'torch') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
