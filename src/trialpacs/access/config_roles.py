"""Grants from configuration as code (``roles:`` in the trial config, table role_mappings).

A mapping names members (account or service names), the trials they may see
and the sites whose identified data they may see. They are translated into
ordinary grants here, so the policy module stays the one place that decides:
``trials`` become reader grants, ``phi_sites`` site-coordinator grants at
those sites (for the listed trials, or every trial when none is listed).
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from trialpacs.access.policy import Grant
from trialpacs.trials.models import RoleMapping


def config_grants(session: Session, subject: str) -> set[Grant]:
    out: set[Grant] = set()
    for row in session.scalars(select(RoleMapping)):
        if subject not in json.loads(row.members or "[]"):
            continue
        trials: list[str | None] = list(json.loads(row.trials or "[]"))
        for trial in trials:
            out.add(Grant("reader", trial))
        for site in json.loads(row.phi_sites or "[]"):
            for trial in trials or [None]:
                out.add(Grant("site_coordinator", trial, site))
    return out
