"""How an update finds its handler: every feature router's handlers in one router, and for
messages and button presses an index that skips the handlers that cannot take the update.

aiogram walks the routers one by one and, in each, tries every handler's filters in turn. With
twenty feature routers and some seventy handlers, that walk was about a third of the CPU an
update took. Two changes keep what it decides and drop most of what it costs:

* ``flatten_into`` makes every handler the Dispatcher's own, in the order aiogram would have
  tried them. A router's own filters become the first filters of each of its handlers (a handler
  below a failing router filter is never tried, either way).
* ``Indexed`` observers try only the handlers that could take the update. A handler whose
  filters require a command (``/points``), a main-menu label or a button's callback-data prefix
  is tried only for an update that has it; every other handler is tried for everything. Which
  handlers remain, and their order, is all the index decides: each one tried still runs all of
  its filters, so an index that kept too many would only cost time, never change an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from inspect import isclass
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED, SkipHandler
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.filters.logic import _AndFilter, _OrFilter
from aiogram.filters.state import StateFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.telegram.filters import MenuButton
from bot.telegram.i18n import labels
from bot.texts import Texts

Keys = frozenset[str]
"""What an update offers to the index: ``/points`` (its command word, case-folded), ``=text``
(a message's whole text), ``#prefix`` (a button's callback-data prefix) and ``@`` (no
conversation state) or ``@=state`` (the sender's state)."""

INDEXED = ("message", "callback_query")


def flatten_into(target: Router, routers: Iterable[Router], texts: Texts) -> None:
    """Every handler of ``routers`` (and of their child routers) becomes ``target``'s own, in
    the order aiogram would try them, its message and button handlers indexed. ``target`` is
    normally the Dispatcher itself (one router hop less per update); its message and button
    observers must still be bare (no handlers, filters or middlewares), because they are
    replaced. A router with middlewares of its own cannot be flattened (they would reach
    handlers they were not meant for), so it is refused; so is one with raw update handlers
    (the Dispatcher's own update handler must stay first)."""
    for event in INDEXED:
        bare = target.observers[event]
        if bare.handlers or bare._handler.filters or len(bare.middleware) \
                or len(bare.outer_middleware):
            raise ValueError(f"{target.name}'s {event} observer is already in use")
        indexed = Indexed(target, event)
        target.observers[event] = indexed
        setattr(target, event, indexed)

    def take(router: Router, above: Mapping[str, list[FilterObject]]) -> None:
        filters: dict[str, list[FilterObject]] = {}
        for event, observer in router.observers.items():
            if len(observer.middleware) or len(observer.outer_middleware):
                raise ValueError(f"router {router.name} has {event} middlewares of its own")
            if event == "update" and observer.handlers:
                raise ValueError(f"router {router.name} has raw update handlers")
            filters[event] = [*above.get(event, ()), *(observer._handler.filters or ())]
            target.observers[event].handlers.extend(
                replace(handler, filters=[*filters[event], *(handler.filters or ())])
                if filters[event] else handler
                for handler in observer.handlers)
        for child in router.sub_routers:
            take(child, filters)

    for router in routers:
        take(router, {})
    for event in INDEXED:
        filled = target.observers[event]
        assert isinstance(filled, Indexed)
        filled.index(texts)


def gate(filter_: FilterObject, texts: Texts) -> Keys | None:
    """The keys of which an update must offer one for ``filter_`` to pass it, or None when
    the filter may pass an update whatever it offers."""
    inner = filter_.callback
    if isinstance(inner, Command):
        if all(isinstance(command, str) for command in inner.commands):
            return frozenset(f"/{command}".casefold() for command in inner.commands)
        return None
    if isinstance(inner, MenuButton):
        return frozenset(f"={label}" for label in labels(texts, inner.key))
    if isinstance(inner, CallbackQueryFilter):
        return frozenset({f"#{inner.callback_data.__prefix__}"}) \
            if inner.callback_data.__separator__ == ":" else None
    if isinstance(inner, StateFilter):
        return _states(inner.states)
    if isinstance(inner, _OrFilter):
        either = [gate(target, texts) for target in inner.targets]
        return None if None in either else frozenset().union(*(g for g in either if g))
    if isinstance(inner, _AndFilter):
        return handler_gate(inner.targets, texts)
    return None


def _state_key(state: str | None) -> str:
    return "@" if state is None else f"@={state}"


def _states(states: Iterable[object]) -> Keys | None:
    """The states a ``StateFilter`` passes, as keys (None if it passes any state)."""
    keys: set[str] = set()
    for allowed in states:
        if isinstance(allowed, State):
            allowed = allowed.state
        if allowed == "*":
            return None
        if allowed is None or isinstance(allowed, str):
            keys.add(_state_key(allowed))
        elif isinstance(allowed, StatesGroup) or (isclass(allowed)
                                                  and issubclass(allowed, StatesGroup)):
            group = allowed if isclass(allowed) else type(allowed)
            keys.update(_state_key(name) for name in group.__all_states_names__)
        else:
            return None
    return frozenset(keys)


def handler_gate(filters: Sequence[FilterObject] | None, texts: Texts) -> Keys | None:
    """All of a handler's filters must pass, so the first one with a gate gates it."""
    for filter_ in filters or ():
        if (keys := gate(filter_, texts)) is not None:
            return keys
    return None


def offered(event: TelegramObject, raw_state: str | None) -> Keys:
    """The keys ``event`` offers, its sender being in ``raw_state``: what a command, menu,
    callback-data or state filter looks at."""
    keys = {_state_key(raw_state)}
    if isinstance(event, Message):
        if event.text is not None:
            keys.add(f"={event.text}")
        if (text := event.text or event.caption) and (words := text.split(maxsplit=1)):
            keys.add("/" + words[0][1:].partition("@")[0].casefold())
    elif isinstance(event, CallbackQuery) and event.data is not None:
        keys.add("#" + event.data.partition(":")[0])
    return frozenset(keys)


class Indexed(TelegramEventObserver):
    """An observer that tries only the handlers an update could pass (see the module text);
    otherwise aiogram's own ``trigger``, line for line."""

    def __init__(self, router: Router, event_name: str) -> None:
        super().__init__(router=router, event_name=event_name)
        self._gates: list[tuple[HandlerObject, Keys | None]] = []
        self._known: Keys = frozenset()
        self._chosen: dict[Keys, list[HandlerObject]] = {}

    def index(self, texts: Texts) -> None:
        self._gates = [(h, handler_gate(h.filters, texts)) for h in self.handlers]
        self._known = frozenset().union(*(g for _, g in self._gates if g is not None))
        self._chosen = {}

    def candidates(self, event: TelegramObject, raw_state: str | None) -> list[HandlerObject]:
        if len(self._gates) != len(self.handlers):  # registered after indexing: no index
            return self.handlers
        keys = offered(event, raw_state) & self._known  # bounded: the cache holds known keys only
        chosen = self._chosen.get(keys)
        if chosen is None:
            chosen = self._chosen[keys] = [
                handler for handler, needs in self._gates if needs is None or needs & keys]
        return chosen

    async def trigger(self, event: TelegramObject, **kwargs: Any) -> Any:
        for handler in self.candidates(event, kwargs.get("raw_state")):
            kwargs["handler"] = handler
            result, data = await handler.check(event, **kwargs)
            if result:
                kwargs.update(data)
                try:
                    wrapped_inner = self.outer_middleware.wrap_middlewares(
                        self._resolve_middlewares(), handler.call)
                    return await wrapped_inner(event, kwargs)
                except SkipHandler:
                    continue
        return UNHANDLED
