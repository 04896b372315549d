"""Cameras over HTTP: an MJPEG stream (multipart/x-mixed-replace, as most IP cameras serve it) and an HLS
playlist, each from a real local HTTP server, read by the same CameraStream that `vidgru watch` runs."""

from __future__ import annotations

import functools
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import imageio_ffmpeg  # a static ffmpeg from PyPI, to cut the HLS segments
import numpy as np
import pytest

from vidgru.config.cameras import StreamSettings
from vidgru.decode import video_frames
from vidgru.streams import CameraStream, CapturedFrame, StatusChange
from vidgru.synthetic import SceneSpec, render_scene

BOUNDARY = "vidgruframe"


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "scene.mp4"
    render_scene(path, SceneSpec(seconds=4, seed=11))
    return path


def serve(handler: type[SimpleHTTPRequestHandler] | functools.partial) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def read_stream(url: str, want: int, timeout: float = 30) -> tuple[list[CapturedFrame], list[StatusChange]]:
    """Run a CameraStream until it has sampled ``want`` frames (or ``timeout``)."""
    frames: list[CapturedFrame] = []
    statuses: list[StatusChange] = []
    stop = threading.Event()
    stream = CameraStream("http-cam", url, StreamSettings(open_timeout_s=10, stall_timeout_s=5), 10, "stream")
    thread = threading.Thread(target=stream.run, args=(frames.append, statuses.append, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while len(frames) < want and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(15)
    assert not thread.is_alive()
    return frames, statuses


def test_mjpeg_over_http(clip: Path) -> None:
    jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in video_frames(clip)]

    class Mjpeg(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # the camera's endless stream, 10 frames a second
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            try:
                for i in range(10_000):
                    data = jpegs[i % len(jpegs)]
                    self.wfile.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    )
                    self.wfile.write(data + b"\r\n")
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, *args: object) -> None:
            pass

    for server in serve(Mjpeg):
        frames, statuses = read_stream(f"http://127.0.0.1:{server.server_address[1]}/video.mjpg", want=15)
    assert len(frames) >= 15, "the MJPEG stream delivered too few frames"
    assert statuses and statuses[0].online
    assert frames[0].image.shape == (240, 360, 3) and frames[0].restart
    # the pictures are the clip's, not noise: the first sampled frame matches one of the clip's frames
    sent = video_frames(clip)
    assert min(float(np.abs(frames[1].image.astype(int) - f).mean()) for f in sent) < 3


def test_hls_over_http(clip: Path, tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    hls.mkdir()
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-loglevel", "error", "-i", str(clip), "-c:v", "mpeg2video", "-q:v", "3"),
            *("-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_playlist_type", "vod"),
            str(hls / "index.m3u8"),
        ],
        check=True,
    )
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    for server in serve(functools.partial(quiet, directory=str(hls))):
        frames, statuses = read_stream(f"http://127.0.0.1:{server.server_address[1]}/index.m3u8", want=30)
    assert len(frames) >= 30, "the HLS playlist delivered too few frames"
    assert statuses and statuses[0].online
    assert frames[0].image.shape == (240, 360, 3)
