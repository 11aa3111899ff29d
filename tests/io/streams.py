"""Local stand-ins for remote sources: an HTTP server and a TCP MPEG-TS pusher on 127.0.0.1, lossless streams."""

from __future__ import annotations

import contextlib
import functools
import io
import socket
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np


def lossless_ts(frames: np.ndarray, fps: int = 25) -> bytes:
    """MPEG-TS bytes of uint8 ``(T, H, W, 3)`` frames in lossless RGB H.264: they decode back exactly."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as container:
        stream = container.add_stream("libx264rgb", rate=fps, options={"preset": "ultrafast", "qp": "0"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "bgr24"
        for frame in frames:
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
            )
        container.mux(stream.encode())
    return buf.getvalue()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def http_server(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1; yields the base URL (``http://127.0.0.1:PORT``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def tcp_pusher(data: bytes, *, upto: float = 1.0, hold_s: float = 0.0, chunk: int = 4096) -> Iterator[str]:
    """A writer thread on 127.0.0.1 that pushes ``data`` (its first ``upto`` fraction, then hangs up) to the
    first client; with ``hold_s`` it accepts and sends nothing for that long. Yields ``tcp://127.0.0.1:PORT``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    done = threading.Event()

    def push() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            if hold_s:
                done.wait(hold_s)
                return
            end = int(len(data) * upto)
            try:
                for start in range(0, end, chunk):
                    conn.sendall(data[start : min(start + chunk, end)])
                    time.sleep(0.001)
            except OSError:  # the reader hung up first
                pass

    thread = threading.Thread(target=push, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        listener.close()
        thread.join(5)
