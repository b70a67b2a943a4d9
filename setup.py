"""InternViT for dense prediction on mmengine / mmsegmentation 1.x / mmdetection 3.x."""
from setuptools import find_packages, setup

setup(
    name='internvl-dense',
    version='0.1.0',
    description='InternViT (InternVL) for semantic segmentation and detection on the OpenMMLab 2.x stack',
    packages=find_packages(include=['internvl*', 'mmseg_custom*', 'mmdet_custom*']),
    python_requires='==3.11.*',
    install_requires=[
        'torch==2.14.1',
        'torchvision==0.29.1',
        'safetensors==0.8.0',
        'tqdm',
    ],
    extras_require={
        'openmmlab': ['mmengine==0.10.7', 'mmcv==2.1.0', 'mmsegmentation==1.2.2', 'mmdet==3.3.0'],
    },
)
