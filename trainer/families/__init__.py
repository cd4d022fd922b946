"""The trainer's side of each model family: tokenize, encode, predict (core/families.py says
what differs; these say how training does it). A new family is a new file registered here."""

from __future__ import annotations

from core.families import FamilySpec
from core.manifest import Family
from trainer.families.base import Conditioning, FamilySide
from trainer.families.sd15 import SD15Side
from trainer.families.sdxl import SDXLSide

SIDES: dict[Family, type[FamilySide]] = {Family.SD15: SD15Side, Family.SDXL: SDXLSide}


def side_for(spec: FamilySpec) -> FamilySide:
    return SIDES[spec.family](spec)


__all__ = ["SIDES", "Conditioning", "FamilySide", "side_for"]
