"""The paper's figures as PNG files (matplotlib's Agg canvas, no display needed), and the
HTML/Markdown reproduction report: Fig. 3 (conv1 kernels), Fig. 4 left (top-5 predictions) and
right (nearest neighbours in feature space), learning curves, confusion matrix.

A leaf: it draws plain data (tensors, lists, dicts, paths) and imports only `alexnet.atomic`
and `alexnet.errors` of the package; `alexnet.evaluation` gathers what it draws."""

from alexnet.figures.confusion import confusion_figure
from alexnet.figures.conv1_kernels import conv1_kernels_figure
from alexnet.figures.curves import learning_curves_figure, read_metrics
from alexnet.figures.neighbors import neighbors_figure
from alexnet.figures.predictions import predictions_figure

__all__ = ["confusion_figure", "conv1_kernels_figure", "learning_curves_figure",
           "neighbors_figure", "predictions_figure", "read_metrics"]
