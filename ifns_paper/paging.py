"""Keyset paging of a queryset by primary key: every page costs one index range scan,
however deep it is (``OFFSET`` would read and drop every row before the page)."""

from __future__ import annotations

from django.db.models import QuerySet


def keyset_page(qs: QuerySet, *, after: int, limit: int, fields: tuple[str, ...]) -> dict:
    """The first ``limit`` rows with a primary key above ``after``, oldest first, as plain
    dicts (``id`` and ``fields``; times as ISO 8601), and the ``next_after`` to ask for the
    next page with (``after`` again when the page is empty: nothing newer yet)."""
    rows = list(qs.filter(pk__gt=after).order_by("pk").values("pk", *fields)[:limit])
    for row in rows:
        row["id"] = row.pop("pk")
        for key, value in row.items():
            if hasattr(value, "isoformat"):
                row[key] = value.isoformat()
    return {"items": rows, "next_after": rows[-1]["id"] if rows else after}
