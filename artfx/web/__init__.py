"""``artfx serve``: a local web page to build pipelines and watch the picture form.

- :mod:`artfx.web.app`: the Starlette application (routes, the event stream, the Host and POST guards);
- :mod:`artfx.web.session`: the session's temporary folder, uploads and their limits, requests made into jobs;
- :mod:`artfx.web.forms`: stage forms described from their Params, and submitted forms validated into pipelines
  (the browser never names a file on the server);
- :mod:`artfx.web.jobs`: jobs and their queue (one at a time per device, cancellable, live progress and images);
- ``static/``: the page itself, plain HTML, CSS and JavaScript (no build step), and two small sample photos.

The web framework is an optional extra (``pip install 'artfx[web]'``): nothing else in artfx imports this package.
"""

from __future__ import annotations

from typing import Any


def create_app(**kw: Any) -> Any:
    """The application (see :func:`artfx.web.app.create_app`)."""
    from artfx.web.app import create_app as make

    return make(**kw)
