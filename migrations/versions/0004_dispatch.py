"""Bookings, dispatch and live locations (docs/dispatch.md).

- therapist_assignments: `busy_period` (trigger-maintained, platform zone) and an exclusion
  constraint so that no therapist is ever double-booked, whatever writes the rows; dispatch's
  decision record, travel buffer and travel timestamps.
- Booking <-> assignment coupling as triggers: an assignment's status moves its booking's status
  and writes the notifications (an outbox in the same transaction); a cancelled or moved booking
  releases its therapists.
- booking_number_counters (per-day numbers) and therapist_last_positions (never pruned), both kept
  by statement triggers with transition tables, so every write path maintains them.
- therapist_locations becomes a table partitioned by hour (a catch-all partition below the first
  hour), with the RLS policies of 0003 (migrations/rls.py) carried over; `ensure_hourly_partitions` adds hours.
- The hourly `locations.prune` schedule.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

API = "ombaro_api"
WORKER = "ombaro_worker"
REQUEST_ROLES = f"{API}, {WORKER}"
LIVE = "('assigned', 'acknowledged', 'in_transit', 'reached', 'in_progress')"
# The platform zone the spec's views use (docs/schema.md): the setting, else Asia/Kolkata.
PLATFORM_ZONE = "coalesce(nullif(current_setting('ombaro.timezone', true), ''), 'Asia/Kolkata')"
DEFINER = "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public"


# --- assignments: the busy period and the double-booking guard -------------------------------------

# Stored, not generated: a generated column cannot use the zone conversion (not immutable).
BUSY_PERIOD = f"""
CREATE FUNCTION therapist_assignment_busy_period() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    starts timestamptz := (NEW.assignment_date + NEW.assignment_time) AT TIME ZONE {PLATFORM_ZONE};
BEGIN
    NEW.busy_period := tstzrange(
        starts, starts + make_interval(mins => NEW.estimated_duration + NEW.travel_buffer_minutes), '[)');
    RETURN NEW;
END
$$;
CREATE TRIGGER therapist_assignments_busy_period
    BEFORE INSERT OR UPDATE OF assignment_date, assignment_time, estimated_duration, travel_buffer_minutes,
        busy_period
    ON therapist_assignments FOR EACH ROW EXECUTE FUNCTION therapist_assignment_busy_period();
"""
NO_DOUBLE_BOOKING = f"""
ALTER TABLE therapist_assignments ADD CONSTRAINT ex_therapist_assignments_busy_period
    EXCLUDE USING gist (therapist_id WITH =, busy_period WITH &&) WHERE (status IN {LIVE})
"""

# An assignment's status moves its booking's status, and a change of status is told to the people
# concerned (notifications written in the same transaction: an outbox). One trigger for every writer
# (dispatch worker, therapist app, vendor, operations): the request roles may not write bookings or
# notifications themselves, hence SECURITY DEFINER. New assignments are announced by dispatch, which
# made them, so rows inserted by other paths (imports, the demo data) stay silent.
ASSIGNMENT_FOLLOW_UP = f"""
CREATE FUNCTION therapist_assignment_follow_up() RETURNS trigger {DEFINER} AS $$
DECLARE
    b record;
    t record;
    live_count integer;
    started_count integer;
    completed_count integer;
    next_status text;
    data jsonb;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
        RETURN NULL;
    END IF;
    SELECT id, status, booking_number, customer_id, booking_date, booking_time INTO b
        FROM bookings WHERE id = NEW.booking_id;
    SELECT name, user_id INTO t FROM therapists WHERE id = NEW.therapist_id;
    SELECT count(*) FILTER (WHERE status IN {LIVE}), count(*) FILTER (WHERE status = 'in_progress'),
           count(*) FILTER (WHERE status = 'completed')
        INTO live_count, started_count, completed_count
        FROM therapist_assignments WHERE booking_id = NEW.booking_id;

    next_status := CASE
        WHEN b.status = 'assigned' AND started_count > 0 THEN 'in_progress'
        WHEN b.status IN ('pending', 'confirmed', 'rescheduled') AND live_count > 0 THEN 'assigned'
        WHEN b.status IN ('assigned', 'in_progress') AND live_count = 0 AND completed_count > 0 THEN 'completed'
        WHEN b.status = 'assigned' AND live_count = 0 THEN 'confirmed'
    END;
    IF next_status IS NOT NULL THEN
        UPDATE bookings SET status = next_status, updated_at = now() WHERE id = b.id;
    END IF;

    data := jsonb_build_object('booking_id', b.id, 'booking_number', b.booking_number,
                               'assignment_id', NEW.id, 'therapist_id', NEW.therapist_id);
    IF TG_OP = 'INSERT' THEN
        NULL;  -- dispatch writes the 'therapist_assigned' notifications with its decision
    ELSIF NEW.status IN ('reached', 'in_progress', 'completed') THEN
        INSERT INTO notifications (user_id, type, title, message, data) VALUES
            (b.customer_id,
             CASE NEW.status WHEN 'reached' THEN 'therapist_arrived' WHEN 'in_progress' THEN 'service_started'
                  ELSE 'service_completed' END,
             CASE NEW.status WHEN 'reached' THEN 'Your therapist has arrived'
                  WHEN 'in_progress' THEN 'Your session has started' ELSE 'Your session is complete' END,
             format('Booking %s with %s.', b.booking_number, t.name), data);
    ELSIF NEW.status = 'cancelled' AND t.user_id IS NOT NULL THEN
        INSERT INTO notifications (user_id, type, title, message, data) VALUES
            (t.user_id, 'booking_cancelled', 'Assignment cancelled',
             format('You are no longer booked for %s on %s at %s.', b.booking_number, NEW.assignment_date,
                    to_char(NEW.assignment_time, 'HH24:MI')), data);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION therapist_assignment_follow_up() FROM PUBLIC;
CREATE TRIGGER therapist_assignments_follow_up AFTER INSERT OR UPDATE OF status ON therapist_assignments
    FOR EACH ROW EXECUTE FUNCTION therapist_assignment_follow_up();
"""

# A cancelled booking, or one moved to another date or time, holds no therapist any more. (An
# in-progress service cannot be cancelled or moved: the booking state machine refuses it.)
BOOKING_RELEASE = f"""
CREATE FUNCTION booking_release_therapists() RETURNS trigger {DEFINER} AS $$
BEGIN
    UPDATE therapist_assignments
       SET status = 'cancelled', updated_at = now(),
           notes = concat_ws(E'\\n', notes, CASE WHEN NEW.status = 'cancelled' THEN 'booking cancelled'
                                                ELSE 'booking moved to ' || NEW.booking_date || ' '
                                                     || to_char(NEW.booking_time, 'HH24:MI') END)
     WHERE booking_id = NEW.id AND status IN ('assigned', 'acknowledged', 'in_transit', 'reached');
    IF NEW.status = 'cancelled' AND OLD.status <> 'cancelled'
       AND NEW.cancelled_by IS DISTINCT FROM NEW.customer_id THEN
        INSERT INTO notifications (user_id, type, title, message, data) VALUES
            (NEW.customer_id, 'booking_cancelled', 'Your booking was cancelled',
             format('Booking %s was cancelled: %s', NEW.booking_number,
                    coalesce(NEW.cancellation_reason, 'no reason given')),
             jsonb_build_object('booking_id', NEW.id, 'booking_number', NEW.booking_number));
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION booking_release_therapists() FROM PUBLIC;
CREATE TRIGGER bookings_release_therapists AFTER UPDATE OF status, booking_date, booking_time ON bookings
    FOR EACH ROW
    WHEN ((NEW.status = 'cancelled' AND OLD.status <> 'cancelled')
          OR NEW.booking_date <> OLD.booking_date OR NEW.booking_time <> OLD.booking_time)
    EXECUTE FUNCTION booking_release_therapists();
"""

# --- booking numbers ---------------------------------------------------------------------------------

BOOKING_NUMBER_DAY = """
CREATE FUNCTION booking_number_day(booking_number text) RETURNS date
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS $$
BEGIN
    IF booking_number !~ '^OBO-[0-9]{8}-[0-9]{1,9}$' THEN
        RETURN NULL;
    END IF;
    RETURN to_date(substr(booking_number, 5, 8), 'YYYYMMDD');
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
    RETURN NULL;
END
$$;
"""
# Numbers inserted by any other path (imports, the demo, fixtures) push the day's counter up, so the
# counter never hands out a number that already exists.
BOOKING_NUMBER_COUNTERS = f"""
CREATE FUNCTION booking_numbers_follow_inserts() RETURNS trigger {DEFINER} AS $$
BEGIN
    INSERT INTO booking_number_counters AS c (day, last_number)
    SELECT booking_number_day(booking_number), max(split_part(booking_number, '-', 3)::integer)
      FROM inserted_bookings
     WHERE booking_number_day(booking_number) IS NOT NULL
     GROUP BY 1
     ORDER BY 1
    ON CONFLICT (day) DO UPDATE SET last_number = excluded.last_number, updated_at = now()
     WHERE excluded.last_number > c.last_number;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION booking_numbers_follow_inserts() FROM PUBLIC;
CREATE TRIGGER bookings_number_counters AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS inserted_bookings FOR EACH STATEMENT
    EXECUTE FUNCTION booking_numbers_follow_inserts();
"""

# --- locations -----------------------------------------------------------------------------------------

# One set-based upsert per INSERT or COPY statement, in therapist order (concurrent batches lock
# rows in the same order); an older fix arriving late never replaces a newer one.
KEEP_LAST_POSITION = f"""
CREATE FUNCTION therapist_locations_keep_last() RETURNS trigger {DEFINER} AS $$
BEGIN
    INSERT INTO therapist_last_positions AS p (id, vendor_id, latitude, longitude, accuracy, speed,
                                               heading, battery_level, is_moving, recorded_at)
    SELECT DISTINCT ON (n.therapist_id) n.therapist_id, t.vendor_id, n.latitude, n.longitude, n.accuracy,
           n.speed, n.heading, n.battery_level, n.is_moving, n.timestamp
      FROM fresh_pings AS n JOIN therapists AS t ON t.id = n.therapist_id
     ORDER BY n.therapist_id, n.timestamp DESC
    ON CONFLICT (id) DO UPDATE
       SET vendor_id = excluded.vendor_id, latitude = excluded.latitude, longitude = excluded.longitude,
           accuracy = excluded.accuracy, speed = excluded.speed, heading = excluded.heading,
           battery_level = excluded.battery_level, is_moving = excluded.is_moving,
           recorded_at = excluded.recorded_at, updated_at = now()
     WHERE excluded.recorded_at > p.recorded_at;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION therapist_locations_keep_last() FROM PUBLIC;
"""
KEEP_LAST_POSITION_TRIGGER = """
CREATE TRIGGER therapist_locations_keep_last AFTER INSERT ON therapist_locations
    REFERENCING NEW TABLE AS fresh_pings FOR EACH STATEMENT EXECUTE FUNCTION therapist_locations_keep_last()
"""

# Hourly UTC partitions <parent>_pYYYYMMDDTHH. Each is built beside the parent and attached: ATTACH
# takes SHARE UPDATE EXCLUSIVE on the parent, which inserts do not wait for (CREATE ... PARTITION OF
# would take ACCESS EXCLUSIVE). An hour another partition already covers (the catch-all below the
# first hour) is skipped. Partitions get row security and only the workers' policy, as in 0003.
# Idempotent; returns how many it created. Callers set lock_timeout.
ENSURE_HOURLY_PARTITIONS = f"""
CREATE FUNCTION ensure_hourly_partitions(parent regclass, from_hour timestamptz, hours integer)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    parent_schema name;
    parent_table name;
    hour_start timestamptz;
    partition_name text;
    created integer := 0;
BEGIN
    SELECT n.nspname, c.relname INTO parent_schema, parent_table
      FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = parent;
    IF NOT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = parent AND partstrat = 'r'
                   AND partnatts = 1) THEN
        RAISE EXCEPTION '% is not partitioned by range on one column', parent;
    END IF;
    FOR i IN 0 .. hours - 1 LOOP
        hour_start := date_trunc('hour', from_hour, 'UTC') + make_interval(hours => i);
        partition_name := parent_table || '_p' || to_char(hour_start AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24');
        CONTINUE WHEN to_regclass(format('%I.%I', parent_schema, partition_name)) IS NOT NULL;
        EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       parent_schema, partition_name, parent);
        BEGIN
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)', parent,
                           parent_schema, partition_name,
                           to_char(hour_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:00:00+00'),
                           to_char((hour_start + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:00:00+00'));
        EXCEPTION WHEN invalid_object_definition THEN  -- would overlap a partition that covers the hour
            EXECUTE format('DROP TABLE %I.%I', parent_schema, partition_name);
            CONTINUE;
        END;
        IF (SELECT relrowsecurity FROM pg_class WHERE oid = parent) THEN
            EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY',
                           parent_schema, partition_name);
            EXECUTE format('CREATE POLICY worker_all ON %I.%I TO {WORKER} USING (true) WITH CHECK (true)',
                           parent_schema, partition_name);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;
REVOKE ALL ON FUNCTION ensure_hourly_partitions(regclass, timestamptz, integer) FROM PUBLIC;
"""
LOCATION_INDEXES_PARTITIONED = {
    "idx_therapist_locations_timestamp": "timestamp DESC",
    "idx_therapist_locations_latest": "therapist_id, timestamp DESC",
}
# 0001's indexes; the single-column one is left out of the partitioned table: `latest` serves it.
LOCATION_INDEXES_PLAIN = {"idx_therapist_locations_therapist": "therapist_id", **LOCATION_INDEXES_PARTITIONED}
HISTORY_PARTITION = "therapist_locations_history"
HOURS_BEHIND = 25  # the retention (24 h) and an hour of slack
HOURS_AHEAD = 48


def _copy_policies_and_grants(source: str, target: str) -> None:
    """Carry row security over to a rebuilt table: the same policies (0003's), grants, FORCE."""
    bind = op.get_bind()
    op.execute(f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    policies = bind.execute(sa.text(
        "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
        "WHERE schemaname = 'public' AND tablename = :t ORDER BY policyname"), {"t": source}).all()
    for name, permissive, roles, command, using, check in policies:
        sql = f"CREATE POLICY {name} ON {target} AS {permissive} FOR {command} TO {', '.join(roles)}"
        if using is not None:
            sql += f" USING ({using})"
        if check is not None:
            sql += f" WITH CHECK ({check})"
        op.execute(sql)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {target} TO {REQUEST_ROLES}")


def _rename_location_indexes(indexes: dict[str, str], suffix: str) -> None:
    op.execute(f"ALTER INDEX pk_therapist_locations RENAME TO pk_therapist_locations{suffix}")
    for name in indexes:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}{suffix}")


def _partition_locations() -> None:
    """Rebuild therapist_locations partitioned by hour. The primary key must contain the partition
    key, hence (id, timestamp). Rows move over in the migration's transaction."""
    bind = op.get_bind()
    op.execute("ALTER TABLE therapist_locations RENAME TO therapist_locations_unpartitioned")
    _rename_location_indexes(LOCATION_INDEXES_PLAIN, "_unpartitioned")
    op.execute("""
        CREATE TABLE therapist_locations (LIKE therapist_locations_unpartitioned
            INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (timestamp)""")
    op.execute("ALTER TABLE therapist_locations ADD CONSTRAINT pk_therapist_locations PRIMARY KEY (id, timestamp)")
    op.execute("ALTER TABLE therapist_locations ADD CONSTRAINT fk_therapist_locations_therapist_id_therapists "
               "FOREIGN KEY (therapist_id) REFERENCES therapists (id) ON DELETE CASCADE")
    for name, columns in LOCATION_INDEXES_PARTITIONED.items():
        op.execute(f"CREATE INDEX {name} ON therapist_locations ({columns})")
    _copy_policies_and_grants("therapist_locations_unpartitioned", "therapist_locations")
    op.execute(KEEP_LAST_POSITION_TRIGGER)

    now, newest = bind.execute(sa.text(
        "SELECT now(), max(timestamp) FROM therapist_locations_unpartitioned")).one()
    first_hour = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=HOURS_BEHIND)
    hours = HOURS_BEHIND + HOURS_AHEAD
    if newest is not None and newest >= first_hour + dt.timedelta(hours=hours):
        hours = int((newest - first_hour).total_seconds() // 3600) + 1
    op.execute(f"CREATE TABLE {HISTORY_PARTITION} PARTITION OF therapist_locations "
               f"FOR VALUES FROM (MINVALUE) TO ('{first_hour.isoformat()}')")
    op.execute(f"ALTER TABLE {HISTORY_PARTITION} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY worker_all ON {HISTORY_PARTITION} TO {WORKER} USING (true) WITH CHECK (true)")
    bind.execute(sa.text("SELECT ensure_hourly_partitions('therapist_locations', :first, :hours)"),
                 {"first": first_hour, "hours": hours})
    op.execute("INSERT INTO therapist_locations SELECT * FROM therapist_locations_unpartitioned")
    op.execute("DROP TABLE therapist_locations_unpartitioned")


def _unpartition_locations() -> None:
    op.execute("ALTER TABLE therapist_locations RENAME TO therapist_locations_partitioned")
    _rename_location_indexes(LOCATION_INDEXES_PARTITIONED, "_partitioned")
    op.execute("CREATE TABLE therapist_locations (LIKE therapist_locations_partitioned "
               "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute("ALTER TABLE therapist_locations ADD CONSTRAINT pk_therapist_locations PRIMARY KEY (id)")
    op.execute("ALTER TABLE therapist_locations ADD CONSTRAINT fk_therapist_locations_therapist_id_therapists "
               "FOREIGN KEY (therapist_id) REFERENCES therapists (id) ON DELETE CASCADE")
    for name, columns in LOCATION_INDEXES_PLAIN.items():
        op.execute(f"CREATE INDEX {name} ON therapist_locations ({columns})")
    _copy_policies_and_grants("therapist_locations_partitioned", "therapist_locations")
    op.execute("INSERT INTO therapist_locations SELECT * FROM therapist_locations_partitioned")
    op.execute("DROP TABLE therapist_locations_partitioned")  # its partitions and trigger go with it


# --- tables, grants, policies, schedule ---------------------------------------------------------------

def _create_tables() -> None:
    op.create_table(
        "therapist_last_positions",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("latitude", sa.Numeric(10, 8), nullable=False),
        sa.Column("longitude", sa.Numeric(11, 8), nullable=False),
        sa.Column("accuracy", sa.Numeric(10, 2), nullable=True),
        sa.Column("speed", sa.Numeric(10, 2), nullable=True),
        sa.Column("heading", sa.Numeric(5, 2), nullable=True),
        sa.Column("battery_level", sa.Integer(), nullable=True),
        sa.Column("is_moving", sa.Boolean(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("battery_level BETWEEN 0 AND 100", name="ck_therapist_last_positions_battery_level"),
        sa.ForeignKeyConstraint(["id"], ["therapists.id"], ondelete="CASCADE",
                                name="fk_therapist_last_positions_id_therapists"),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.id"], ondelete="CASCADE",
                                name="fk_therapist_last_positions_vendor_id_vendors"),
        sa.PrimaryKeyConstraint("id", name="pk_therapist_last_positions"),
    )
    op.create_index("idx_therapist_last_positions_vendor", "therapist_last_positions", ["vendor_id"])
    op.create_table(
        "booking_number_counters",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last_number", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("last_number >= 0", name="ck_booking_number_counters_last_number"),
        sa.PrimaryKeyConstraint("id", name="pk_booking_number_counters"),
        sa.UniqueConstraint("day", name="uq_booking_number_counters_day"),
    )


def _add_columns() -> None:
    op.add_column("bookings", sa.Column("dispatch_note", pg.JSONB(), nullable=True))
    op.add_column("customers", sa.Column("preferred_therapist_gender", sa.Text(), nullable=True))
    op.create_check_constraint("ck_customers_preferred_therapist_gender", "customers",
                               "preferred_therapist_gender IN ('male', 'female', 'other')")
    op.add_column("therapist_assignments", sa.Column("busy_period", pg.TSTZRANGE(), nullable=True))
    op.add_column("therapist_assignments", sa.Column("travel_buffer_minutes", sa.Integer(),
                                                     server_default=sa.text("0"), nullable=False))
    op.create_check_constraint("ck_therapist_assignments_travel_buffer_minutes", "therapist_assignments",
                               "travel_buffer_minutes >= 0")
    op.add_column("therapist_assignments", sa.Column("dispatch_decision", pg.JSONB(), nullable=True))
    op.add_column("therapist_assignments", sa.Column("departed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("therapist_assignments", sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("uq_promotion_usage_booking", "promotion_usage", ["booking_id"], unique=True)


NEW_COLUMNS = {
    "bookings": ("dispatch_note",),
    "customers": ("preferred_therapist_gender",),
    "therapist_assignments": ("busy_period", "travel_buffer_minutes", "dispatch_decision", "departed_at",
                              "arrived_at"),
}


def _policies() -> dict[str, list]:
    uid, vendor, therapist = rls.UID, rls.VENDOR, rls.THERAPIST
    return {
        "therapist_last_positions": [
            *rls.own("id", therapist, "SELECT"),
            rls.api("select_own_vendor", "SELECT", f"vendor_id = {vendor}"),
            rls.api("select_staff", "SELECT", rls.role_in(*rls.STAFF_OPS, "directors")),
            rls.api("select_my_live_therapist", "SELECT",
                    f"id IN (SELECT therapist_id FROM therapist_assignments "
                    f"WHERE customer_id = {uid} AND status IN {LIVE})"),
        ],
        # Handed out by the domain on the service connection; no request reads or writes it.
        "booking_number_counters": [],
    }


PRUNE_SCHEDULE = ("locations.prune", "locations.prune", "0 * * * *")


def upgrade() -> None:
    _create_tables()
    _add_columns()

    op.execute(BUSY_PERIOD)
    op.execute("UPDATE therapist_assignments SET busy_period = NULL")  # the trigger computes it
    op.alter_column("therapist_assignments", "busy_period", nullable=False)
    op.execute(NO_DOUBLE_BOOKING)
    op.execute(ASSIGNMENT_FOLLOW_UP)
    op.execute(BOOKING_RELEASE)
    op.execute(BOOKING_NUMBER_DAY)
    op.execute(BOOKING_NUMBER_COUNTERS)
    op.execute("INSERT INTO booking_number_counters (day, last_number) "
               "SELECT booking_number_day(booking_number), max(split_part(booking_number, '-', 3)::integer) "
               "FROM bookings WHERE booking_number_day(booking_number) IS NOT NULL GROUP BY 1")

    for table, policies in _policies().items():
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {REQUEST_ROLES}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        for policy in (*rls.everywhere(), *policies):
            op.execute(rls.policy_sql(table, policy))

    op.execute(KEEP_LAST_POSITION)
    op.execute(ENSURE_HOURLY_PARTITIONS)
    _partition_locations()

    name, kind, cron = PRUNE_SCHEDULE
    op.execute(sa.text("INSERT INTO schedules (name, kind, params, cron, overlap_policy, misfire_policy) "
                       "VALUES (:n, :k, '{}', :c, 'skip', 'run_once')").bindparams(n=name, k=kind, c=cron))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM schedules WHERE name = :n").bindparams(n=PRUNE_SCHEDULE[0]))
    _unpartition_locations()
    op.execute("DROP FUNCTION ensure_hourly_partitions(regclass, timestamptz, integer)")
    op.execute("DROP FUNCTION therapist_locations_keep_last()")
    op.execute("DROP TRIGGER bookings_number_counters ON bookings")
    op.execute("DROP FUNCTION booking_numbers_follow_inserts()")
    op.execute("DROP FUNCTION booking_number_day(text)")
    op.execute("DROP TRIGGER bookings_release_therapists ON bookings")
    op.execute("DROP FUNCTION booking_release_therapists()")
    op.execute("DROP TRIGGER therapist_assignments_follow_up ON therapist_assignments")
    op.execute("DROP FUNCTION therapist_assignment_follow_up()")
    op.execute("ALTER TABLE therapist_assignments DROP CONSTRAINT ex_therapist_assignments_busy_period")
    op.execute("DROP TRIGGER therapist_assignments_busy_period ON therapist_assignments")
    op.execute("DROP FUNCTION therapist_assignment_busy_period()")
    op.drop_index("uq_promotion_usage_booking", table_name="promotion_usage")
    for table, columns in NEW_COLUMNS.items():
        for column in columns:
            op.drop_column(table, column)  # their CHECK constraints go with them
    op.drop_table("booking_number_counters")  # policies go with the tables
    op.drop_table("therapist_last_positions")
