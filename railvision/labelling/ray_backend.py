"""``railvision label --engine ray``: the same labelling spread over Ray actors, one ONNX session each.

Actors are the local CPU path's lanes (``pipeline.Labeller``) run on batches of archive
files and hand back ``Outcome`` objects; the driver saves them to the same SQLite
state and writes the same outputs, so both engines give identical files. The archive
must be readable at the same path on every node (a shared mount); outputs stay on the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from railvision.labelling.pipeline import Labeller, chunks
from railvision.labelling.records import ArchiveFile, LabelOptions, Outcome


def label_ray(
    root: Path, files: list[ArchiveFile], options: LabelOptions, address: str | None = None
) -> Iterator[list[Outcome]]:
    """Outcomes batch by batch (in completion order) from ``options.workers`` actors.

    Joins the cluster at ``address`` when given, else starts a small local instance for this run.
    """
    import ray
    from ray.util import ActorPool

    owned = not ray.is_initialized()
    if owned:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=options.workers, include_dashboard=False, log_to_driver=False)
    actors = []
    try:
        remote = ray.remote(num_cpus=1)(Labeller)
        actors = [remote.remote(options) for _ in range(max(1, options.workers))]
        pool = ActorPool(actors)
        yield from pool.map_unordered(
            lambda actor, batch: actor.label.remote(str(root), batch), chunks(files, options.batch)
        )
    finally:
        for actor in actors:
            ray.kill(actor)
        if owned:
            ray.shutdown()
