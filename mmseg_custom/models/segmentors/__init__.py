from .batched_slide import BatchedSlideEncoderDecoder
from .batched_tta import BatchedSegTTAModel

__all__ = ['BatchedSegTTAModel', 'BatchedSlideEncoderDecoder']
