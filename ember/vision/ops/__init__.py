"""ember.vision.ops: torchvision.ops (box maths, RoI pooling, detection losses, building blocks).

Design
------
torchvision implements ``nms``, ``roi_align`` and ``roi_pool`` as compiled operators; here they
are written over ember ops so they need no extension and keep autograd:

* Box maths (``box_iou`` and the generalized/distance/complete variants, ``box_convert``,
  ``clip_boxes_to_image``) are composites of ember tensor ops, as torchvision's Python code
  is, so gradients flow to the boxes.
* ``nms`` is the greedy algorithm on the backend arrays (it returns indices, nothing to
  differentiate); ``batched_nms`` offsets boxes per class so one ``nms`` never mixes classes.
* ``roi_align`` uses that bilinear sampling is separable: each RoI's output is
  ``Wy @ x[b] @ Wx^T / count`` with ``Wy`` (pooled_h, H) and ``Wx`` (pooled_w, W) holding the
  summed interpolation weights of the sampling points (NOTE [ RoIAlign as two matmuls ] in
  ``roi_align.py``), so the gradient to the features is two matmuls.
* ``roi_pool`` finds each bin's argmax on the arrays and gathers it, so its gradient goes to
  the argmax as torchvision's kernel sends it.

``misc`` holds the layers torchvision's models are built from (``Conv2dNormActivation``,
``SqueezeExcitation``, ``MLP``, ``FrozenBatchNorm2d``, ``Permute``), with torchvision's
submodule layout so state dicts match.
"""
from __future__ import annotations

from .boxes import (batched_nms, box_area, box_convert, box_iou, clip_boxes_to_image,
                    complete_box_iou, distance_box_iou, generalized_box_iou, masks_to_boxes, nms,
                    remove_small_boxes)
from .focal_loss import sigmoid_focal_loss
from .misc import (Conv2dNormActivation, Conv3dNormActivation, FrozenBatchNorm2d, MLP, Permute,
                   SqueezeExcitation)
from .roi_align import RoIAlign, roi_align
from .roi_pool import RoIPool, roi_pool
from .stochastic_depth import StochasticDepth, stochastic_depth

__all__ = [
    "batched_nms", "box_area", "box_convert", "box_iou", "clip_boxes_to_image",
    "complete_box_iou", "distance_box_iou", "generalized_box_iou", "masks_to_boxes", "nms",
    "remove_small_boxes", "sigmoid_focal_loss", "Conv2dNormActivation", "Conv3dNormActivation",
    "FrozenBatchNorm2d", "MLP", "Permute", "SqueezeExcitation", "RoIAlign", "roi_align",
    "RoIPool", "roi_pool", "StochasticDepth", "stochastic_depth",
]
