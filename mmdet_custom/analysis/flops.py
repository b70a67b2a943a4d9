"""The detection side of ``tools/analysis/get_flops.py`` (the count itself:
``internvl_mmlab.analysis.flops``)."""
from mmdet.structures import DetDataSample


def detection_samples(shape: tuple[int, int]) -> list:
    """One data sample with the metainfo of a ``shape`` image, as a detector's tensor forward takes it."""
    sample = DetDataSample()
    sample.set_metainfo(dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                             scale_factor=(1.0, 1.0)))
    return [sample]
