"""From evidence to a verdict."""

from pixelsleuth.verdict.fuse import VERDICTS, Verdict, VerdictLabel, fuse

__all__ = ["VERDICTS", "Verdict", "VerdictLabel", "fuse"]
