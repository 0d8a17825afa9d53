"""Review files of earlier schemas upgraded to the current one, as plain dicts (Qt-free).

Schema 1 recorded the reader's verdict on the model's call: ``accepted`` / ``rejected`` /
``pending``. Schema 2 records the reader's truth per label (present / absent / uncertain) with
the model's probability and the threshold in force when it was given. The threshold of a
schema-1 verdict was not saved; the one in force in the file (the reader's, else the model's)
stands for it, which is what the reader saw when the file was last written:

- accepted on a positive call -> present; accepted on a negative call -> absent;
- rejected on a positive call -> absent; rejected on a negative call -> present (the reason
  code is kept either way);
- pending -> no verdict.

Schema 3 adds the reader's annotations (``annotations``: ROIs, angles, arrows, key-image
flags); a schema-2 file has none. An older RadAssist refuses a schema-3 file rather than
saving it again without them. Schema 4 adds a segmentation's lesions (``lesions``: verdicts
and measurements per series; the label volume in a ``.npz`` beside the file); older files have
none.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

CURRENT = 4


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a parsed review file) in the current schema; a new dict when it was older.
    Raises ValueError for a version this build does not know (a newer RadAssist's file)."""
    version = data.get("schema_version")
    if version == CURRENT:
        return data
    if version == 1:
        return _from_v3(_from_v2(_from_v1(data)))
    if version == 2:
        return _from_v3(_from_v2(data))
    if version == 3:
        return _from_v3(data)
    raise ValueError(
        f"review schema version {version!r} is not supported (this RadAssist reads 1 to "
        f"{CURRENT}); open it with the RadAssist that wrote it"
    )


def _from_v2(data: dict[str, Any]) -> dict[str, Any]:
    return dict(data, schema_version=3, annotations=[])


def _from_v3(data: dict[str, Any]) -> dict[str, Any]:
    return dict(data, schema_version=CURRENT, lesions={})


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    thresholds = dict(data.get("thresholds") or {})
    findings = []
    for old in data.get("findings", []):
        f = {k: v for k, v in dict(old).items() if k != "verdict"}
        verdict = old.get("verdict", "pending")
        threshold = float(thresholds.get(old.get("label"), old["model_threshold"]))
        positive = float(old["probability"]) >= threshold
        if verdict == "pending":
            truth = "pending"
        elif verdict == "accepted":
            truth = "present" if positive else "absent"
        elif verdict == "rejected":
            truth = "absent" if positive else "present"
        else:
            raise ValueError(f"unknown verdict {verdict!r} in a schema-1 review file")
        f["truth"] = truth
        if truth != "pending":
            f["verdict_probability"] = float(old["probability"])
            f["verdict_threshold"] = threshold
        findings.append(f)
    out = dict(data, schema_version=2, findings=findings)
    log.info("upgraded a schema-1 review (%d findings)", len(findings))
    return out
