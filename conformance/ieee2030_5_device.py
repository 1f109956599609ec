"""The gateway's 2030.5 client run as a DER device: the reference device the ieee2030_5-client suite must pass.

:class:`gateway.protocols.ieee2030_5.client.Sep2Client` knows how to walk, poll and respond, and
:class:`ControlTracker` which Responses are owed when; neither runs by itself. A device does two things on two
clocks, and this loop does both:

- it polls the server at the ``pollRate`` the server gave (the DERProgramList's; 900 s when absent), because
  that is how it learns of new, cancelled and superseded controls;
- between polls it re-evaluates what it already knows every ``tick`` seconds, because a control starts and ends
  by the server's clock, not when the device happens to poll (a device that only acted on polls would start
  every control up to one pollRate late).

Failures (the server unreachable, an answer refused, and any unexpected exception, since a device does not stop
over one bad answer) are kept in ``errors`` and retried after a short pause; the walk starts over from
DeviceCapability when it never completed. Subclasses of the client and the tracker can be
passed in, which is how the suite's tests build deliberately broken devices from the same loop.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.client import ControlTracker, DeviceView, Sep2Client, Sep2ClientError

DEFAULT_POLL_RATE = 900.0  # 2030.5: the pollRate when a list does not give one
RETRY_PAUSE = 0.5


class ReferenceDevice:
    """A DER device: ``start()`` runs it in a thread until ``stop()``. ``poll_rate`` overrides the server's."""

    def __init__(
        self,
        url: str,
        cert: str | Path,
        key: str | Path,
        ca: str | Path,
        *,
        tick: float = 0.25,
        poll_rate: float | None = None,
        client_type: type[Sep2Client] = Sep2Client,
        tracker_type: type[ControlTracker] = ControlTracker,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.cert, self.key, self.ca = cert, key, ca
        self.tick = tick
        self.forced_poll_rate = poll_rate
        self.client_type = client_type
        self.tracker_type = tracker_type
        self.timeout = timeout
        self.errors: list[str] = []
        self.tracker: ControlTracker | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ReferenceDevice:
        self._thread = threading.Thread(target=self.run, name="tgw-2030.5-device", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run(self) -> None:
        client = self.client_type(self.url, self.cert, self.key, self.ca, timeout=self.timeout)
        tracker = self.tracker = self.tracker_type(client)
        view: DeviceView | None = None
        poll_rate = DEFAULT_POLL_RATE
        next_poll = 0.0
        try:
            while not self._stop.is_set():
                pause = self.tick
                try:
                    if view is None:
                        found = client.discover(tariffs=False)
                        poll_rate = self.forced_poll_rate or self._poll_rate(client, found)
                        view, next_poll = found, time.monotonic() + poll_rate
                        tracker.update(view.programs)
                    elif time.monotonic() >= next_poll:
                        next_poll = max(next_poll + poll_rate, time.monotonic())
                        tracker.update(client.poll())
                    else:
                        tracker.update(tracker.programs)
                except Sep2ClientError as exc:
                    self.errors.append(str(exc))
                    pause = max(self.tick, RETRY_PAUSE)
                except Exception as exc:  # a device keeps running; the fault is kept for whoever runs it
                    self.errors.append(f"unexpected {type(exc).__name__}: {exc}")
                    pause = max(self.tick, RETRY_PAUSE)
                self._stop.wait(min(pause, max(0.0, next_poll - time.monotonic())) if view else pause)
        finally:
            client.close()

    @staticmethod
    def _poll_rate(client: Sep2Client, view: DeviceView) -> float:
        """The smallest pollRate of the device's DERProgramLists (the function set its controls come from)."""
        rates = []
        for fsa in view.assignments:
            if fsa.DERProgramListLink is not None:
                page = client.get(fsa.DERProgramListLink.href, m.DERProgramList, params={"s": 0, "l": 1})
                if page.pollRate:
                    rates.append(float(page.pollRate))
        return min(rates, default=DEFAULT_POLL_RATE)
