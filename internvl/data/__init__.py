"""Image preprocessing shared by the chat, contrastive and dense-prediction models."""
from .preprocess import (IMAGENET_MEAN, IMAGENET_STD, build_transform, dynamic_preprocess,
                         find_closest_aspect_ratio, load_image, open_image, probe_image, target_ratios, tile_grid,
                         tile_layout)

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'build_transform', 'dynamic_preprocess',
           'find_closest_aspect_ratio', 'load_image', 'open_image', 'probe_image', 'target_ratios', 'tile_grid',
           'tile_layout']
