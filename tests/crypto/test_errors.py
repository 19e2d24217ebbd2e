"""The error hierarchy lives in ``crypto.errors``; ``custody.errors`` re-exports all of it."""

from __future__ import annotations

import inspect

import crypto.errors
import custody.errors


def test_custody_errors_re_exports_every_class_unchanged() -> None:
    defined = {
        name
        for name, value in vars(crypto.errors).items()
        if inspect.isclass(value) and issubclass(value, crypto.errors.CustodyError)
    }
    assert set(custody.errors.__all__) == defined
    for name in defined:
        assert getattr(custody.errors, name) is getattr(crypto.errors, name)
