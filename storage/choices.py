"""What a customer chose in a channel wins over the core system's import.

A customer's language, time zone and region each record who set them (``*_set_by``) and when
(``*_set_at``). The import sets them as ``import``; a channel (Telegram ``/language``, the
console on the customer's behalf) with its own name. An import never changes a value someone
other than an import set, until the customer changes it again. Consents are separate records
(``consent``) that imports never write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from storage.models import Customer

IMPORT: Final = "import"
TELEGRAM: Final = "telegram"
SMS: Final = "sms"
# A region inferred by an import from the customer's address or a policy's plate: any region
# named by an import, an operator or the customer replaces it, and it replaces none of them.
ADDRESS: Final = "address"
PLATE: Final = "plate"
INFERRED: Final = (ADDRESS, PLATE)

# The chosen values and the name their provenance columns start with.
CHOICES: Final = {"language": "language", "timezone": "timezone", "region_id": "region"}


def customer_chose(set_by: str) -> bool:
    """Whether a value was set by the customer (in a channel), not by an import or unknown."""
    return set_by not in ("", IMPORT, *INFERRED)


async def record_choice(customer_id: int, *, source: str, now: datetime,
                        **values: object) -> None:
    """The customer chose ``values`` (``language=…``, ``timezone=…``, ``region_id=…``) in
    ``source``: set them, with who and when."""
    updates: dict[str, object] = {}
    for name, value in values.items():
        prefix = CHOICES[name]
        updates.update({name: value, f"{prefix}_set_by": source[:64], f"{prefix}_set_at": now})
    if updates:
        await Customer.filter(id=customer_id).update(**updates)
