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
    assert custody.errors.N_ is crypto.errors.N_  # the message-id marker comes along
    for name in defined:
        assert getattr(custody.errors, name) is getattr(crypto.errors, name)


def test_a_message_is_a_template_with_parameters_rendered_at_the_edge() -> None:
    N_ = crypto.errors.N_  # noqa: N806 - the marker's name
    inner = crypto.errors.FormatError(N_("bad {what}"), what="seal")
    e = crypto.errors.ChainError(
        N_("event {event!r} refused: {why}"), hint=N_("look at {event}"), event="e1", why=inner
    )
    assert str(e) == e.message == "event 'e1' refused: bad seal"
    assert e.hint == "look at e1"
    assert e.template == "event {event!r} refused: {why}"
    table = {
        "event {event!r} refused: {why}": "事件 {event!r} 被拒绝：{why}",
        "bad {what}": "{what} 有误",
    }
    assert e.render(lambda m: table.get(m, m)) == ("事件 'e1' 被拒绝：seal 有误", "look at e1")
    broken = {"bad {what}": "{nope} 有误"}  # a translation that names another parameter
    assert inner.render(lambda m: broken.get(m, m)) == ("bad seal", None)
    plain = crypto.errors.UsageError("no {braces} filled without parameters")
    assert plain.message == "no {braces} filled without parameters"
