"""`pix2pix serve`: a local web page to try a trained model: upload or draw, see the translation.

Everything runs on this machine: the page has no external resources and the server binds to
127.0.0.1 unless --host says otherwise (there is no authentication). Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import fail, stage_app, user_errors

app = stage_app(__doc__)


@app.command("serve")
@user_errors
def serve(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Run folder written by `pix2pix train` or `pix2pix import-checkpoint`, or a generator.pt / checkpoint.pt file.")],
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one (printed at start).")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind; anything but 127.0.0.1 exposes the model to the network.")] = "127.0.0.1",
    eval_mode: Annotated[str, typer.Option("--eval-mode", help="train: dropout on and the image's own batch statistics, as in the paper (each request varies a little); eval: running statistics, no dropout.")] = "train",
    max_bytes: Annotated[int, typer.Option("--max-bytes", help="Largest upload in bytes.")] = 10_000_000,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Largest upload in pixels (width x height), checked before decoding.")] = 4096 * 4096,
    max_side: Annotated[int, typer.Option("--max-side", help="Larger images are translated in overlapping tiles of this size.")] = 1024,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Serve a demo page for a trained model at http://HOST:PORT/."""
    from pix2pix.apps.serve import (
        DemoModel,
        Limits,
        make_server,
        serve_until_signal,
        warn_if_exposed,
    )
    from pix2pix.device import select_device
    from pix2pix.infer.evaluate import EVAL_MODES
    from pix2pix.infer.translate import Translator

    if eval_mode not in EVAL_MODES:
        raise fail(f"--eval_mode {eval_mode!r}: expected train or eval")
    if not 0 <= port <= 65535:
        raise fail(f"--port {port}: expected 0 to 65535")
    if min(max_bytes, max_pixels, max_side) < 1:
        raise fail("--max_bytes, --max_pixels and --max_side must be positive")
    translator = Translator.from_checkpoint(checkpoint, select_device(device), eval_mode, max_side=max_side, overlap=min(64, max_side // 2))
    server = make_server(DemoModel(translator, Limits(max_bytes, max_pixels)), host, port)
    warn_if_exposed(host)
    bound_host, bound_port = server.server_address[:2]
    typer.echo(f"serving {checkpoint} at http://{bound_host}:{bound_port}/ (Ctrl-C to stop)")
    signum = serve_until_signal(server)
    typer.echo(f"stopped ({'signal ' + str(signum) if signum else 'server closed'})")


if __name__ == "__main__":
    app()
