"""FSD's descriptions computed the way they were before issue 12, for benchmarks to compare against.

Before issue 12, `phase_grams` stacked the shifted views of every residual map and multiplied them out,
and the residual maps came from one convolution over the colour planes as a batch of one-channel
images. `use_fsd_before_issue_12` puts both back (the same numbers, to float32 rounding, slower) in this
process; a spawned worker process picks it up from the environment variable `ENVIRONMENT_SWITCH` when
its parent's main script calls `apply_if_switched()` at import (a spawned child re-imports the main
script).
"""

from __future__ import annotations

import os

ENVIRONMENT_SWITCH = "PIXELSLEUTH_BENCHMARK_FSD_BEFORE_ISSUE_12"


def use_fsd_before_issue_12() -> None:
    """Switch this process's FSD to the pre-issue-12 computation."""
    import torch.nn.functional as F

    from pixelsleuth.forensics import selfdescription

    def phase_grams(planes, offsets, margin, period=1):
        return selfdescription._phase_grams_from_views(planes, offsets, margin, period)

    def plane_major_residuals(planes, kernels):
        batch, count, height, width = planes.shape
        weights = kernels.to(planes.dtype).unsqueeze(1)
        maps = F.conv2d(planes.reshape(batch * count, 1, height, width), weights)
        return maps.view(batch, count, kernels.shape[0], *maps.shape[-2:])

    selfdescription.phase_grams = phase_grams
    selfdescription._plane_major_residuals = plane_major_residuals


def apply_if_switched() -> None:
    if os.environ.get(ENVIRONMENT_SWITCH):
        use_fsd_before_issue_12()
