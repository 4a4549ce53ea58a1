"""A real RTSP server for tests/test_live.py: GStreamer's gst-rtsp-server serving one H.264 file.

Run with the system Python that has PyGObject and the GStreamer typelibs (Debian:
python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,bad}); the test suite's
virtualenv does not need them:

    /usr/bin/python3 tests/rtsp_server.py clip.mp4 --port 0

Serves ``rtsp://127.0.0.1:PORT/clip`` over RTP/UDP and RTP interleaved in TCP, each client from the
start of the file, paced in real time. Prints ``PORT`` on one line once it listens (``--port 0``: a
port the OS picks; pass it again to restart on the same one), then serves until it is killed.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve an H.264 MP4 file over RTSP (gst-rtsp-server)")
    parser.add_argument("path", help="an MP4 file holding one H.264 video stream")
    parser.add_argument("--port", type=int, default=0, help="TCP port of the RTSP service (0: any free one)")
    parser.add_argument("--mount", default="/clip", help="path of the stream in the URL")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.path.replace("\\", "\\\\").replace('"', '\\"')
    # the parameter sets travel in the SDP (sprop-parameter-sets), not in band: GStreamer 1.22's
    # h264parse with config-interval=-1 inserts them before each IDR *slice*, which splits a
    # multi-slice IDR picture (x264 writes two slices here) into two access units
    factory.set_launch(f'( filesrc location="{location}" ! qtdemux ! h264parse ! '
                       "rtph264pay name=pay0 pt=96 )")
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
