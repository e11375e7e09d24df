"""`charlm serve`: the page to write songs in, on a local web server (charlm/serve/)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from charlm.cli import options as o
from charlm.cli.app import app, console, guard
from charlm.errors import ResourceError, UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
INSTALL = "pip install 'charlm-lyrics[serve]'"


@app.command(short_help="A page to write songs in: a local web server.")
@guard
def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; anything but loopback "
            "lets other machines in (the page has no login)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8765,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in a browser.")
    ] = False,
    checkpoint_dir: o.CkptDir = Path("checkpoints"),
    device: o.Device = "cpu",
    quiet: o.Quiet = False,
) -> None:
    """Serve the page to write songs in: pick a run, a prefix and a form, watch the song appear.

    The URL is printed on stderr; Ctrl-C stops the server. The JSON API under the page is in
    README ("The page").

    \b
    Examples:
      charlm serve --open
      charlm serve --port 0 --checkpoint-dir runs
    """
    try:  # the serve extra: here, so that `charlm --help` imports none of it
        import uvicorn

        from charlm.serve.app import create_app
    except ImportError as e:
        raise UsageError(
            f"charlm serve needs the serve extra ({e.name} is missing): {INSTALL}"
        ) from None
    if not 0 <= port <= 65535:
        raise UsageError("--port must be in [0, 65535] (0 = a free one)")
    out = console(quiet)
    sock = _bind(host, port)  # bound before the server starts: --port 0 has no race
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    if host not in LOOPBACK:
        out.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this machine "
                  "can use the page (it has no login)", highlight=False)  # fmt: skip
    print(f"charlm serve: {url}  (Ctrl-C stops it)", file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(create_app(checkpoint_dir, device), log_level="warning",
                            access_log=False, timeout_graceful_shutdown=2)  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ResourceError(
            f"{host}:{port}: cannot listen there ({e.strerror}); try --port 0"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
