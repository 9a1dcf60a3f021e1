"""The evidence sheet of `esgar predict --explain`: every panel's title sits in its own band,
never over the image of the row above, whatever the sketch's shape."""

from __future__ import annotations

import numpy as np
import pytest

from esgar.explain import _panel_grid


@pytest.mark.parametrize("height,width", [(340, 475), (318, 223), (250, 250)])
def test_titles_never_cover_the_row_above(height, width):
    image = np.zeros((height, width, 3), np.uint8)
    panels = [(f"attribute {k}: a long class name (0.50)", image) for k in range(8)]
    fig = _panel_grid(panels, height / width, cols=4)
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    boxes = [ax.get_window_extent(renderer) for ax in axes]
    for k, ax in enumerate(axes):
        title = ax.title.get_window_extent(renderer)
        others = [b for j, b in enumerate(boxes) if j != k]
        assert not any(title.overlaps(b) for b in others), f"title {k} covers another image"
        assert title.y0 >= boxes[k].y1 - 1, f"title {k} is not above its own image"
    assert boxes[4].y1 < boxes[0].y0  # the second row is below the first
