"""Sliding-window geometry of segmentation inference, the same as mmseg's ``slide_inference``."""


def slide_windows(height: int, width: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, ...]]:
    """(y1, y2, x1, x2) of each window, in mmseg's order; edge windows are shifted inside the image."""
    (h_crop, w_crop), (h_stride, w_stride) = crop, stride
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    windows = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2, x2 = min(h_idx * h_stride + h_crop, height), min(w_idx * w_stride + w_crop, width)
            windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return windows
