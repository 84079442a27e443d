"""QIDO rendering shortcuts give the same DICOM JSON as the plain element builder."""

from __future__ import annotations

from typing import Any

import pytest

from trialpacs.index.qido import ATTRS, _converter, element

VALUES: list[Any] = [None, "", "ABC", "A\\B", "\\CT\\PT\\", "\\", "Doe^Jane", 0, 7, "12"]


@pytest.mark.parametrize("vr", sorted({a.vr for a in ATTRS.values()} | {"UL", "SS", "SL"}))
def test_converter_matches_element(vr: str) -> None:
    for value in VALUES:
        try:
            expected = element(vr, value)
        except ValueError:  # int("ABC"): both must refuse alike
            with pytest.raises(ValueError):
                _converter(vr)(value)
            continue
        assert _converter(vr)(value) == expected, (vr, value)
