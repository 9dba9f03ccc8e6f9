"""Time-driven work: the engagement rules and their APScheduler wiring.

Rules (each a pure decision function plus a set-based selection; the day is a parameter):
``birthday``, ``festival``, ``renewal`` (with the holiday-aware extra reminder), ``lapse``,
``weather`` (forecasts through ``forecast``), ``points_expiry`` (Loyalty's daily jobs).
``plan.run_plan`` / ``plan.dry_run`` run one day's date-driven rules; ``jobs.Jobs`` runs the
three daily jobs for the due days recorded in ``runs``; ``runtime`` wires them to APScheduler
under one leader (``leader``) and gives ``bot.web.app`` its cleanup context.

Messages only ever go into the outbox (``storage.outbox``); nothing here sends, and nothing
here imports ``bot``, aiogram or twilio.
"""
