"""pixelsleuth: was an image made or edited by a generative model, where, and why do we think so?"""

from pixelsleuth.errors import PixelsleuthError

__version__ = "0.1.0"

__all__ = ["PixelsleuthError", "__version__"]
