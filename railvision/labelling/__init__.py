"""Labelling a whole photo archive, resumably.

The archive is scanned (read-only), every photo not yet done is decoded and run
through the model in parallel lanes (one one-thread ONNX session each; on a GPU, decoded in
worker threads while the main thread runs the model on batches), and each batch's results are
committed to a SQLite file in the output folder.
Outputs are always rebuilt from that file, so a run killed at any point and then
resumed ends with exactly the files an uninterrupted run would have written.

Modules, each importing only those listed before it: ``records`` (the record types),
``scan`` (the archive scan, and the checked read of each photo), ``geo`` (georeferencing),
``state`` (the SQLite state), ``outputs`` (the output files),
``pipeline`` (the lanes and the GPU pipeline),
``report`` (report.html), ``ray_backend`` (the same work on Ray actors) and
``driver`` (the run and its summary).
"""

from railvision.labelling.driver import Summary, label_archive
from railvision.labelling.outputs import FORMATS
from railvision.labelling.records import LabelOptions

__all__ = ["FORMATS", "LabelOptions", "Summary", "label_archive"]
