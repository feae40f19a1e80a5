"""Dashboard.launch makes its widgets in a kernel thread while Voilà's page connects: the
kernel's answer to the page's request for every widget's state never runs while the thread
makes widgets, and under Voilà the thread makes them once the page has that answer."""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as widgets
import pytest

from softcopy.dashboard import app

REQUEST = {"content": {"data": {"method": "request_states"}}}


class ControlComm:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, data: dict[str, Any], buffers: Any = None) -> None:
        self.sent.append(data)


@pytest.fixture
def comm(monkeypatch: pytest.MonkeyPatch) -> ControlComm:
    unlocked = widgets.Widget.__dict__["_handle_control_comm_msg"]
    monkeypatch.setattr(widgets.Widget, "_handle_control_comm_msg", unlocked)  # restored after
    made = ControlComm()
    monkeypatch.setattr(widgets.Widget, "_control_comm", made)
    app.serialise_state_requests()
    return made


def test_the_page_s_state_request_waits_for_the_widgets_being_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unlocked = widgets.Widget.__dict__["_handle_control_comm_msg"]
    monkeypatch.setattr(widgets.Widget, "_handle_control_comm_msg", unlocked)  # restored after
    comm = ControlComm()
    monkeypatch.setattr(widgets.Widget, "_control_comm", comm)
    app.serialise_state_requests()
    app.serialise_state_requests()  # once is enough; twice wraps it once
    assert widgets.Widget.__dict__["_handle_control_comm_msg"].__func__.serialised
    with app.MAKING:  # the opening thread, making the coverage tab
        answering = threading.Thread(
            target=widgets.Widget._handle_control_comm_msg, args=(REQUEST,), daemon=True
        )
        answering.start()
        answering.join(0.3)
        assert answering.is_alive() and comm.sent == []
        made = widgets.HTML("made while the page asked")
    answering.join(60)  # a safety deadline: the answer serialises every live widget
    assert not answering.is_alive()
    [answer] = comm.sent
    assert answer["method"] == "update_states" and made.model_id in answer["states"]
    made.close()


def test_under_voila_the_first_tabs_are_made_once_the_page_has_its_states(
    comm: ControlComm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "PAGE_ASKED", threading.Event())
    monkeypatch.setenv("SERVER_SOFTWARE", "voila/0.5")
    waiting = threading.Thread(target=app._before_the_page_asks, daemon=True)
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive()  # no page has asked yet
    widgets.Widget._handle_control_comm_msg(REQUEST)  # the page connects and asks
    waiting.join(60)  # a safety deadline, not a timing
    assert not waiting.is_alive() and len(comm.sent) == 1


def test_elsewhere_nothing_waits_for_a_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "PAGE_ASKED", threading.Event())
    monkeypatch.setattr(app, "PAGE_WAIT_SECONDS", 3600)  # waiting at all would hang
    monkeypatch.delenv("SERVER_SOFTWARE", raising=False)  # JupyterLab, a script
    waiting = threading.Thread(target=app._before_the_page_asks, daemon=True)
    waiting.start()
    waiting.join(60)
    assert not waiting.is_alive()


def test_a_page_that_never_asks_is_waited_for_a_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "PAGE_ASKED", threading.Event())
    monkeypatch.setattr(app, "PAGE_WAIT_SECONDS", 0.2)
    monkeypatch.setenv("SERVER_SOFTWARE", "voila/0.5")
    began = time.monotonic()
    app._before_the_page_asks()
    assert 0.2 <= time.monotonic() - began < 60  # it gave up waiting, after the bound
