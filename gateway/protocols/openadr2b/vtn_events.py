"""What events each VEN must see: canonical controls aimed at it, price tenders of a program's price sources
(tariffs), and a program market's cleared locational prices, rendered for that VEN at a moment (see ``render``).

Aimed at a VEN means: at its party, at one of its resources, at a location of one of them, or broadcast. Price
tenders reach the VENs at or below the tender's location; a cleared price is the one at the VEN's own site, the
nearest priced location on its path to the root.
"""

from __future__ import annotations

from datetime import datetime

from gateway.model import Clearing, Control, ControlStatus, MessageKind, Resource, Tender, TenderStatus
from gateway.model.market import Side
from gateway.protocols.openadr2b import mapper, render
from gateway.protocols.openadr2b.messages import Event
from gateway.protocols.openadr2b.table import MappingTable, Program
from gateway.protocols.openadr2b.vens import VenDirectory, VenRecord
from gateway.store import Store


class EventBook:
    """Renders each VEN's events from the store (the VTN caches the result between changes)."""

    def __init__(self, store: Store, table: MappingTable, directory: VenDirectory) -> None:
        self.store = store
        self.table = table
        self.directory = directory

    def events_for(self, record: VenRecord, now: datetime) -> list[Event]:
        """Every event this VEN must know about now: controls aimed at it (by party, its resources, their locations,
        or broadcast) and price tenders of the programs' price sources at or above its resources' locations."""
        resources = self.directory.resources_of(record.party_id)
        resource_ids = {r.id for r in resources}
        locations = self._locations_with_ancestors(resources)
        grace = self.table.vtn.completed_grace
        events: list[Event] = []
        for control in self.store.list(MessageKind.CONTROL, limit=None):
            assert isinstance(control, Control)
            if control.periods[-1].span.end + grace < now or not _aimed_at(control, record, resource_ids, locations):
                continue
            if control.status is ControlStatus.CANCELLED and control.periods[-1].span.end < now:
                continue
            try:
                events.append(
                    render.control_to_event(
                        control,
                        ven_id=record.ven_id,
                        now=now,
                        table=self.table,
                        resource_ids=[r for r in control.targets.resource_ids if r in resource_ids],
                    )
                )
            except mapper.MappingError:
                continue  # a control this VEN's protocol cannot carry (a curve, a gap in a price): 2030.5 only
        for program in self.table.programs:
            if program.market_id is None:
                continue
            if program.price_tenders_from:
                events.extend(self._tender_events(program, record, locations, now))
            if program.clearing_prices:
                events.extend(self._price_events(program, record, resources, now))
        return events

    def _tender_events(self, program: Program, record: VenRecord, locations: set[str], now: datetime) -> list[Event]:
        """Open sell tenders of the program's price sources at or above the VEN's locations (tariffs)."""
        assert program.market_id is not None
        grace = self.table.vtn.completed_grace
        events: list[Event] = []
        versions = self.store.versions(MessageKind.TENDER, filters={"market_id": program.market_id})
        for tender in self.store.list(MessageKind.TENDER, filters={"market_id": program.market_id}, limit=None):
            assert isinstance(tender, Tender)
            if (
                tender.party_id not in program.price_tenders_from
                or tender.side is not Side.SELL
                or tender.location_id not in locations
                or tender.status is not TenderStatus.OPEN
                or tender.intervals[-1].end + grace < now
            ):
                continue
            try:
                events.append(
                    render.tender_to_event(
                        tender,
                        ven_id=record.ven_id,
                        now=now,
                        modification_number=versions.get(tender.id, 0),
                        table=self.table,
                        market_context=program.market_context,
                    )
                )
            except mapper.MappingError:
                continue
        return events

    def _price_events(
        self, program: Program, record: VenRecord, resources: list[Resource], now: datetime
    ) -> list[Event]:
        """The cleared prices of the program's market from the current interval on, at the VEN's site."""
        if program.market_id is None or not resources:
            return []
        path = self._path(resources[0].location_id)
        since = (now - self.table.vtn.completed_grace).isoformat()
        found = self.store.list(
            MessageKind.CLEARING,
            filters={"market_id": program.market_id},
            ranges={"interval_start": (since, None)},
            limit=None,
        )
        events: list[Event] = []
        for clearing in found:
            assert isinstance(clearing, Clearing)
            if clearing.interval.end + self.table.vtn.completed_grace < now:
                continue
            events.append(
                render.clearing_to_event(
                    clearing,
                    location_path=path,
                    ven_id=record.ven_id,
                    now=now,
                    table=self.table,
                    market_context=program.market_context,
                )
            )
        return events

    def _path(self, location_id: str) -> list[str]:
        path: list[str] = []
        current: str | None = location_id
        while current is not None and current not in path:
            path.append(current)
            location = self.store.get(MessageKind.LOCATION, current)
            current = getattr(location, "parent_id", None)
        return path

    def _locations_with_ancestors(self, resources: list[Resource]) -> set[str]:
        found: set[str] = set()
        for resource in resources:
            location_id: str | None = resource.location_id
            while location_id is not None and location_id not in found:
                found.add(location_id)
                location = self.store.get(MessageKind.LOCATION, location_id)
                location_id = getattr(location, "parent_id", None)
        return found


def _aimed_at(control: Control, record: VenRecord, resource_ids: set[str], locations: set[str]) -> bool:
    targets = control.targets
    return (
        targets.broadcast
        or record.party_id in targets.party_ids
        or record.ven_id in targets.party_ids
        or bool(resource_ids.intersection(targets.resource_ids))
        or bool(locations.intersection(targets.location_ids))
    )
