"""Evidence sources that misbehave on purpose, loaded by name ("plugin_sources:spin") in worker tests.

They live in a module of their own so that a worker process (spawned, not forked) can import them.
"""

from __future__ import annotations

import os
import signal

from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake.image import LoadedImage


def spin_on_red(image: LoadedImage) -> list[Evidence]:
    """Never returns for an image whose first pixel is pure red (a stand-in for a parser that hangs)."""
    if tuple(image.rgb[0, 0]) == (255, 0, 0):
        while True:
            pass
    return [Evidence(source="spin", finding="The first pixel is not red.")]


def die_on_green(image: LoadedImage) -> list[Evidence]:
    """Kills its own process for an image whose first pixel is pure green (a crash in native code)."""
    if tuple(image.rgb[0, 0]) == (0, 255, 0):
        os.kill(os.getpid(), signal.SIGKILL)
    return [Evidence(source="die", finding="The first pixel is not green.")]


def lone_surrogate(image: LoadedImage) -> list[Evidence]:
    """A finding carrying text that cannot be encoded as UTF-8 (as a careless parser would produce)."""
    return [
        Evidence(
            source="surrogate", finding="prompt x\udc80y", data={"prompt": "\ud800", "nan": float("nan")}
        )
    ]
