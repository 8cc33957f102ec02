"""A partial index of the whole-minute equity samples: summaries and the overview's
sparklines read only those, and a session's last hour has 3,600 samples for 60 minutes.
Plain SQL: a Django ``Index`` condition cannot say "ts_ns is a whole minute". SQLite and
PostgreSQL take the same statement."""

from django.db import migrations

SQL = ("CREATE INDEX IF NOT EXISTS equity_sample_minutes ON telemetry_app_equitysample (session_id, ts_ns) "
       "WHERE ts_ns % 60000000000 = 0")


class Migration(migrations.Migration):
    dependencies = [("telemetry_app", "0006_governance_events")]

    operations = [migrations.RunSQL(SQL, reverse_sql="DROP INDEX IF EXISTS equity_sample_minutes")]
