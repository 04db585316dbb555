"""Image intake: read a file once, identify it by content, guard against bombs and truncation,
and decode it to 8-bit RGB with orientation applied and its metadata kept."""

from pixelsleuth.intake.image import JpegInfo, LoadedImage
from pixelsleuth.intake.loader import IntakeLimits, load_image

__all__ = ["IntakeLimits", "JpegInfo", "LoadedImage", "load_image"]
