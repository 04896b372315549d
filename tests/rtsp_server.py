"""A real RTSP server for the watch tests and benchmark: GStreamer's rtsp-server playing video files.

Runs under Debian's ``/usr/bin/python3`` (python3-gi and gir1.2-gst-rtsp-server-1.0 from
scripts/system-deps), not vidgru's Python. Each mount plays its files one after the other, at their own
frame rate, ``--repeat`` times; every client that connects gets the sequence from its start. H.264 files
(UCSD Ped2) are passed through; MPEG-4 part 2 files (what OpenCV's VideoWriter writes, as the tests'
generated clips) are sent as MP4V-ES. Nothing is re-encoded. H.264 files with B-frames (Ped2's) open
slowly in FFmpeg and stall the stream for seconds where one file follows another: serve one long file.

Example::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --stream live=/tmp/clip.mp4 --repeat 3
    # rtsp://127.0.0.1:8554/live ; prints "ready" once it listens; stops on SIGTERM or Ctrl-C
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# Payloader chain per video codec, keyed by the caps name Discoverer reports.
PAYLOADERS = {
    "video/x-h264": "h264parse ! rtph264pay name=pay0 pt=96 config-interval=1",
    "video/mpeg": "mpeg4videoparse config-interval=1 ! rtpmp4vpay name=pay0 pt=96 config-interval=1",
}


def video_caps(path: Path) -> str:
    """The demuxed video's caps name, read by prerolling ``filesrc ! qtdemux`` (no decoder needed)."""
    pipeline = Gst.parse_launch(f'filesrc location="{path}" ! qtdemux name=d d.video_0 ! fakesink name=s')
    pipeline.set_state(Gst.State.PAUSED)
    pipeline.get_state(10 * Gst.SECOND)
    caps = pipeline.get_by_name("s").get_static_pad("sink").get_current_caps()
    pipeline.set_state(Gst.State.NULL)
    if caps is None:
        raise SystemExit(f"{path} has no video stream GStreamer's qtdemux can read")
    return caps.get_structure(0).get_name()


def launch_line(files: list[Path]) -> str:
    kinds = {video_caps(f) for f in files}
    if len(kinds) != 1 or (kind := kinds.pop()) not in PAYLOADERS:
        raise SystemExit(f"{files}: all files must share one codec of {sorted(PAYLOADERS)} (got {kinds})")
    sources = " ".join(f'filesrc location="{f}" ! qtdemux ! queue ! c.' for f in files)
    return f"( concat name=c ! {PAYLOADERS[kind]} {sources} )"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--stream",
        action="append",
        required=True,
        help="MOUNT=FILE[,FILE...]: served at rtsp://HOST:PORT/MOUNT",
    )
    parser.add_argument("--repeat", type=int, default=1, help="Play each mount's files this many times.")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for spec in args.stream:
        mount, _, paths = spec.partition("=")
        files = [Path(p) for p in paths.split(",") if p]
        missing = [str(f) for f in files if not f.is_file()]
        if not files or missing:
            raise SystemExit(f"--stream {spec}: no such file(s) {missing}")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(files * args.repeat))
        factory.set_shared(False)  # each client gets the sequence from its first frame
        mounts.add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on {args.host}:{args.port}")
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("ready", flush=True)
    loop.run()
    sys.exit(0)


if __name__ == "__main__":
    main()
