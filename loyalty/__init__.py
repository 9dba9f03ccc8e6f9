"""The loyalty programme: points ledger, earning rules, VIP tiers, rewards and vouchers.

Depends on ``storage`` only (never on ``bot``, aiogram or twilio); configuration comes in as
``loyalty.config.LoyaltySettings`` and the clock as ``now``/``today`` parameters. Refusals
are ``loyalty.errors`` exceptions with a machine ``code``; messages go through the outbox.

* ``ledger``   — credit, debit, reverse_entry, balances, expiring points, audit
* ``earning``  — earn_for_payment, reverse_policy_points, check_in, link_referrer,
  award_referral_if_due, award_birthday_bonus, adjust_points
* ``tiers``    — trailing premium, upgrade at once, annual_tier_review, tier_status
* ``rewards``  — catalogue seeding, tier entitlements, offers_for
* ``vouchers`` — redeem, cancel_voucher, expire_vouchers, customer_vouchers
* ``partners`` — create_partner, authenticate_partner, check_voucher, use_voucher
* ``jobs``     — the daily jobs for the scheduler, and settle_imports after an import
"""
