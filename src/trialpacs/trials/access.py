"""Who may see identified data: role mappings from configuration as code.

Until the identity issue brings real roles, an identity's name (a token's
name) is matched against each role's ``members``; a role grants PHI at the
sites in ``phi_sites``, for the trials in ``trials`` (empty: every trial).
"""

from __future__ import annotations

import json

from sqlalchemy import select

from trialpacs.index.db import Database
from trialpacs.trials.models import RoleMapping


def may_see_phi(db: Database, identity: str, trial_id: str, site_id: str) -> bool:
    with db.read() as session:
        for role in session.scalars(select(RoleMapping)):
            if identity not in json.loads(role.members or "[]"):
                continue
            trials = json.loads(role.trials or "[]")
            if site_id in json.loads(role.phi_sites or "[]") and (not trials or trial_id in trials):
                return True
    return False
