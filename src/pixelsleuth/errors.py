"""Typed errors. Every message is a sentence a person understands; `type` is a stable machine name."""

from __future__ import annotations

import logging


class PixelsleuthError(Exception):
    """Base of every error pixelsleuth raises on purpose."""

    type: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


class IntakeError(PixelsleuthError):
    """The file could not be turned into an image we can analyse."""

    type = "intake_error"


class FileReadError(IntakeError):
    type = "file_unreadable"


class EmptyFileError(IntakeError):
    type = "empty_file"


class FileTooLargeError(IntakeError):
    type = "file_too_large"


class NotAnImageError(IntakeError):
    type = "not_an_image"


class UnsupportedFormatError(IntakeError):
    type = "unsupported_format"


class TruncatedImageError(IntakeError):
    type = "truncated_image"


class CorruptImageError(IntakeError):
    type = "corrupt_image"


class DecompressionBombError(IntakeError):
    type = "decompression_bomb"


class AnalysisTimeoutError(PixelsleuthError):
    """The analysis of one file took longer than the per-file time budget (`--file-timeout`)."""

    type = "timeout"


class AnalysisCrashError(PixelsleuthError):
    """The process analysing one file died (out of memory, or a crash in a native decoder)."""

    type = "analysis_crashed"


class UnstorableResultError(PixelsleuthError):
    """A finished result could not be written to the results store; this record stands in for it."""

    type = "unstorable_result"


class UsageError(PixelsleuthError):
    type = "usage_error"


def unexpected(exc: BaseException, during: str) -> PixelsleuthError:
    """Wrap an exception we did not anticipate so a batch can record it and go on.

    The message stays a sentence; the exception itself, a programming error of ours, goes to the
    ``pixelsleuth`` log for the bug report.
    """
    logging.getLogger("pixelsleuth").warning("internal error while %s: %r", during, exc)
    error = PixelsleuthError(
        f"an internal error in pixelsleuth stopped {during}; the file was skipped "
        "(please report it, with the file if you can)"
    )
    error.type = "internal_error"
    return error
