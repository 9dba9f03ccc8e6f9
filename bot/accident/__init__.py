"""Accident reports (报案): the guided report's drafts and rules (``drafts``), the queue that
delivers confirmed reports to the core system (``core``), and the sweep that reminds and
expires abandoned drafts (``sweep``). Nothing in here imports aiogram or twilio."""
