"""Metrics as mergeable states, one module per metric family, used by training and evaluation
alike: :mod:`~robustcv.metrics.classification` (counts), :mod:`~robustcv.metrics.segmentation`
(one confusion matrix), :mod:`~robustcv.metrics.multilabel` (scores and labels),
:mod:`~robustcv.metrics.binary` (one logit and a 0/1 label per image)."""
from robustcv.metrics.base import BOOTSTRAP, NO_INTERVAL, WILSON, MetricInfo, MetricState
from robustcv.metrics.binary import BinaryState, auroc, binary_metrics
from robustcv.metrics.classification import (ClassificationState, classification_report, confusion_matrix,
                                             report_from_matrix)
from robustcv.metrics.multilabel import MultilabelState, multilabel_metrics
from robustcv.metrics.segmentation import SegmentationState, image_confusions, segmentation_metrics

__all__ = ["BOOTSTRAP", "NO_INTERVAL", "WILSON", "MetricInfo", "MetricState", "BinaryState", "auroc", "binary_metrics",
           "ClassificationState",
           "classification_report", "confusion_matrix", "report_from_matrix", "MultilabelState", "multilabel_metrics",
           "SegmentationState", "image_confusions", "segmentation_metrics"]
