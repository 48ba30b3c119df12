"""``artfx serve``: the local web page (:mod:`artfx.web`). The web framework is imported only when it runs, so
``artfx --help`` and every other command stay as cheap as before, with or without the ``web`` extra."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from pathlib import Path

import typer

from artfx.errors import UsageError

log = logging.getLogger("artfx")

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
NO_EXTRA = "artfx serve needs the web extra: pip install 'artfx[web]'"


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address (only this machine can connect)."""
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or a one-line UsageError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot listen on {host}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="leave out --port to take a free one" if port else None) from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
    return f"http://{shown}:{port}/"


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only). "
                             "Any other lets anyone who can reach it on the network use the page."),
    port: int = typer.Option(0, "--port", "-p", min=0, max=65535, help="Port to listen on; 0 takes a free one."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the web browser."),
    max_upload_mb: float = typer.Option(25.0, "--max-upload-mb", min=0.01, help="Largest upload, in MB."),
    max_pixels: float = typer.Option(40.0, "--max-pixels", min=0.01,
                                     help="Largest upload, in megapixels (the decompression-bomb guard stays on)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request."),
    debug: bool = typer.Option(False, "--debug", help="Debug messages and full tracebacks."),
) -> None:
    """Start a local web page: drop a photo, build the pipeline, watch the picture form, download the result."""
    try:
        import uvicorn

        from artfx.web.app import create_app
    except ImportError:
        raise UsageError(NO_EXTRA) from None

    sock = listen(host, port)
    local = is_local(host)
    if not local:
        log.warning("listening on %s: anyone who can reach this machine on the network can use this page "
                    "(upload photos and run jobs on it)", host)
    hosts = None if not local else ["127.0.0.1", "localhost", "::1", "[::1]", host]
    app = create_app(max_upload=int(max_upload_mb * (1 << 20)), max_pixels=int(max_pixels * 1e6),
                     allowed_hosts=hosts)
    session = app.state.session
    url = url_of(sock)
    typer.echo(f"artfx serve: {url}  (Ctrl-C stops it; results live in {session.folder} until then)")
    if open_browser:
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    config = uvicorn.Config(app, log_level="debug" if debug else "info" if verbose else "warning",
                            access_log=verbose, timeout_graceful_shutdown=2, lifespan="on")
    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            # Ctrl-C: cancel the jobs and end the pages' event streams now, so that the server stops at once
            session.stop()
            super().handle_exit(sig, frame)

    here = Path.cwd()
    os.chdir(session.folder)  # a bare file name that reaches a stage names a file of the session, nothing else
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        os.chdir(here)
        session.close()
        sock.close()
    if not quiet:
        typer.echo("artfx serve: stopped; its temporary folder is removed", err=True)
