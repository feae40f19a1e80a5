"""Dashboard.launch makes its widgets in a kernel thread while the page connects: the
kernel's answer to the page's request for every widget's state waits until the thread has
made them, so the answer neither breaks nor leaves a widget out."""

from __future__ import annotations

import threading
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
    answering.join(5)
    assert not answering.is_alive()
    [answer] = comm.sent
    assert answer["method"] == "update_states" and made.model_id in answer["states"]
    made.close()
