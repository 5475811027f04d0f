"""`pix2pix serve`: a local web page to try a trained model: upload or draw, see the translation.

Everything runs on this machine: the page has no external resources and the server binds to
127.0.0.1 unless --host says otherwise (there is no authentication). Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field

from pix2pix.options import DeviceName, EvalMode, Flags
from stages.common import WhichCheckpoint, stage_app, user_errors
from stages.options import with_options

app = stage_app(__doc__)

DEFAULT_MAX_PIXELS = 2048 * 2048  # 2x2 tiles at the default --max-side
# Measured peak memory of a translation per image pixel (decoded pixels, float input, blended
# output, conversion back, PNG filters), besides the generator's work on its one tile.
TRANSLATION_BYTES_PER_PIXEL = 50


class ServeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: Annotated[int, Flags("Server"), Field(ge=0, le=65535, description="TCP port; 0 picks a free one (printed at start).")] = 8000
    host: Annotated[str, Flags("Server"), Field(description="Address to bind; anything but 127.0.0.1 exposes the model to the network.")] = "127.0.0.1"
    max_bytes: Annotated[int, Flags("Server"), Field(ge=1, description="Largest upload in bytes.")] = 10_000_000
    max_pixels: Annotated[int, Flags("Server"), Field(ge=1, description=(
        "Largest upload in pixels (width x height), read from the image header before decoding; larger ones get 413. "
        f"A translation holds about {TRANSLATION_BYTES_PER_PIXEL} bytes a pixel "
        f"({TRANSLATION_BYTES_PER_PIXEL * DEFAULT_MAX_PIXELS / 1e6:.0f} MB at the default {DEFAULT_MAX_PIXELS:,} pixels (2048x2048)) "
        "plus the generator's work on one tile (about 0.4 GB for a 1024 px tile of the standard 64-filter U-Net)."
    ))] = DEFAULT_MAX_PIXELS
    max_side: Annotated[int, Flags("Server"), Field(ge=1, description="Larger images are translated in overlapping tiles of this size, one at a time.")] = 1024
    max_queued: Annotated[int, Flags("Server"), Field(ge=1, description="Uploads held at once (one translating, the others decoded and waiting); more are answered 503 with Retry-After.")] = 8
    palette: Annotated[Literal["auto", "none", "facades"], Flags("Server"), Field(description=(
        "auto: the palette the checkpoint records as its input's (`pix2pix train --labels`; none for imported checkpoints "
        "and those saved before the option existed); facades: the model's input is a CMP facade label map (the facades "
        "experiment, labels -> photo): the page draws with the 12 classes' colours (background first) at the training "
        "crop's size; none: free drawing with any colour."
    ))] = "auto"
    eval_mode: EvalMode = "train"
    device: DeviceName = "auto"


@app.command("serve")
@user_errors
@with_options(ServeOptions)
def serve(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Run folder written by `pix2pix train` or `pix2pix import-checkpoint`, or a generator.pt / checkpoint.pt file.", rich_help_panel="Paths")],
    options: ServeOptions,
    which: WhichCheckpoint = None,
) -> None:
    """Serve a demo page for a trained model at http://HOST:PORT/."""
    from pix2pix.apps.serve import (
        DemoModel,
        Limits,
        demo_palette,
        make_server,
        serve_until_signal,
        warn_if_exposed,
    )
    from pix2pix.checkpoint import resolve
    from pix2pix.infer.translate import Translator
    from pix2pix.nn.device import select_device

    host, port, max_side = options.host, options.port, options.max_side
    # One tile at a time (batch_size=1): a translation's memory is then bounded by --max-pixels and one --max-side tile.
    translator = Translator.from_checkpoint(resolve(checkpoint, which), select_device(options.device), options.eval_mode, max_side=max_side, overlap=min(64, max_side // 2), batch_size=1)
    palette = demo_palette(options.palette, translator.config)
    model = DemoModel(translator, Limits(options.max_bytes, options.max_pixels), options.max_queued, palette)
    server = make_server(model, host, port)
    warn_if_exposed(host)
    bound_host, bound_port = server.server_address[:2]
    origin = "the checkpoint's labels" if options.palette == "auto" else "--palette"
    typer.echo(f"serving {checkpoint} at http://{bound_host}:{bound_port}/ (palette {palette or 'none'}, from {origin}; Ctrl-C to stop)")
    signum = serve_until_signal(server)
    typer.echo(f"stopped ({'signal ' + str(signum) if signum else 'server closed'})")


if __name__ == "__main__":
    app()
