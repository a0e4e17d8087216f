"""Which provider a run uses: wesctl's `provider_type` column if set, else the string in the
run's `tags["provider_type"]` (what the WES API stores), else the configured default; names
compared trimmed and lower-case. `wesctl.db.runs.resolved_provider` applies this rule in SQL, so
queries filter and group runs by provider without decoding their tags in Python."""

from __future__ import annotations

PROVIDER_TAG = "provider_type"
