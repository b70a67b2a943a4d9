from .synthetic_coco import CLASSES, PALETTE, write_synthetic_coco

__all__ = ['CLASSES', 'PALETTE', 'write_synthetic_coco']
