# mmdet's Mask R-CNN (R50-FPN heads) with its box arithmetic in fp32 under fp16 / bf16 training
# (internvl_mmlab/precision.py): the RPN's scores and deltas and the RoI heads' outputs cast to fp32
# before anchors, decoding, nms and the losses, RoIAlign in fp32; the features cast to the neck's dtype.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']
model = dict(
    type='InternViTMaskRCNN',
    rpn_head=dict(type='FP32BoxRPNHead'),
    roi_head=dict(type='FP32BoxRoIHead', bbox_roi_extractor=dict(type='FP32RoIExtractor'),
                  mask_roi_extractor=dict(type='FP32RoIExtractor')))
