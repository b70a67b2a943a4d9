"""Pictures of what a backbone sees: a PCA of its feature map as RGB, beside the input image."""
import torch
from PIL import Image


def feature_pca_image(features: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """A feature map [C, h, w] -> RGB image of ``size`` (W, H) from its first 3 principal components."""
    C, h, w = features.shape
    flat = features.float().reshape(C, -1).T  # [h*w, C]
    flat = flat - flat.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(flat, q=min(3, C), center=False)
    proj = flat @ v[:, :3]  # [h*w, 3]
    lo, hi = proj.min(0).values, proj.max(0).values
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-6) * 255).round().to(torch.uint8)
    image = Image.fromarray(rgb.reshape(h, w, -1).numpy())
    return image.resize(size, Image.NEAREST)


def side_by_side(*images: Image.Image) -> Image.Image:
    width = sum(im.width for im in images)
    canvas = Image.new('RGB', (width, max(im.height for im in images)), 'white')
    x = 0
    for im in images:
        canvas.paste(im.convert('RGB'), (x, 0))
        x += im.width
    return canvas
