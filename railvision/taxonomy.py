"""The class list: the one place the five rolling-stock classes are defined.

Every exported model carries these names (and ``TAXONOMY_VERSION``) in its ONNX
metadata; datasets, importers, the service and the labeller all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

TAXONOMY_VERSION = "1"


@dataclass(frozen=True, slots=True)
class RailClass:
    id: int
    name: str
    description: str
    counted: bool  # the first four are what analysts count; other_railcar completes a consist


CLASSES: tuple[RailClass, ...] = (
    RailClass(0, "diesel_locomotive", "diesel locomotive: cab units, hood and centre-cab shunters", True),
    RailClass(1, "tank_car", "four-axle tank wagon for oil products, fuel or gas", True),
    RailClass(2, "covered_flatbed", "flat car whose load is wrapped in tarpaulin sheets", True),
    RailClass(3, "closed_wagon", "boxcar / covered goods wagon", True),
    RailClass(
        4,
        "other_railcar",
        "any other rail vehicle: hopper, gondola, open or container flat, coach, electric or steam loco",
        False,
    ),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
NUM_CLASSES = len(CLASSES)
OTHER = "other_railcar"


def class_id(name: str) -> int:
    """Id of a class name; ``KeyError`` naming the known classes when it is not one."""
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown class {name!r}; known classes: {', '.join(CLASS_NAMES)}") from None


def parse_class_filter(spec: str | list[str] | list[int] | None) -> list[int] | None:
    """Turn ``"tank_car,1"`` or a list of names/ids into class ids (``None`` keeps all)."""
    if spec is None or spec == "" or spec == []:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    ids: list[int] = []
    for item in items:
        token = str(item).strip()
        if token.isdigit():
            value = int(token)
            if not 0 <= value < NUM_CLASSES:
                raise KeyError(f"class id {value} out of range 0..{NUM_CLASSES - 1}")
            ids.append(value)
        elif token:
            ids.append(class_id(token))
    return sorted(set(ids))
