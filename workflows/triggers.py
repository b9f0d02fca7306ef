"""A workflow's `triggers`: what starts it by itself, checked like its steps (a 400 naming
each problem's path, `triggers[1].cron`). What acts on them is `jobs.triggers` (entity
events) and `jobs.schedules` (celery beat).

- `{"on": "entity.created"}`
- `{"on": "entity.updated", "fields": ["title", ...]}`: only when one of those top-level
  fields changed (no `fields`: any change); a nested path (`seo.title`) is refused, naming
  the top-level field to watch, unless a closed schema declares a field named so
- `{"on": "schedule", "cron": "0 3 * * *", "timezone"?: "Europe/Paris", "filter"?: {...}}`

Every string is bounded by the column it ends up in (beat's `CrontabSchedule`, the
`ScheduleFire` history), so a long one is a 400 naming it, not a database error. Two schedules
alike (the same cron, time zone and filter) would start the same run twice: the second is a
400.
"""

import json
import zoneinfo
from functools import cache

from celery.schedules import crontab
from croniter import croniter
from django_celery_beat.models import CrontabSchedule

from config.api.errors import FieldError, InvalidInput
from entities.filters import entity_filter_clean
from entities.models import EntityType

TRIGGER_ON = ("entity.created", "entity.updated", "schedule")
KEYS = {
    "entity.created": {"on"},
    "entity.updated": {"on", "fields"},
    "schedule": {"on", "cron", "timezone", "filter"},
}
MAX_TRIGGERS = 20
# Fields one `entity.updated` trigger watches, and the length of a field's name: every entity
# write of the type compares its changed keys with them.
MAX_WATCHED_FIELDS = 100
MAX_FIELD_NAME_LENGTH = 200
# A cron as `ScheduleFire.cron` stores it; each of its five parts as beat's crontab does.
CRON_MAX_LENGTH = 255
CRON_PARTS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")

TRIGGERS_SCHEMA = {
    "type": "array",
    "maxItems": MAX_TRIGGERS,
    "items": {
        "oneOf": [
            {
                "type": "object",
                "required": ["on"],
                "additionalProperties": False,
                "properties": {"on": {"const": "entity.created"}},
            },
            {
                "type": "object",
                "required": ["on"],
                "additionalProperties": False,
                "properties": {
                    "on": {"const": "entity.updated"},
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_FIELD_NAME_LENGTH,
                        },
                        "minItems": 1,
                        "maxItems": MAX_WATCHED_FIELDS,
                    },
                },
            },
            {
                "type": "object",
                "required": ["on", "cron"],
                "additionalProperties": False,
                "properties": {
                    "on": {"const": "schedule"},
                    "cron": {
                        "type": "string",
                        "maxLength": CRON_MAX_LENGTH,
                        "examples": ["0 3 * * *"],
                    },
                    "timezone": {
                        "type": "string",
                        "maxLength": CrontabSchedule._meta.get_field("timezone").max_length,
                        "examples": ["UTC"],
                    },
                    "filter": {"$ref": "#/components/schemas/EntityFilterRequest"},
                },
            },
        ]
    },
}


def _known_fields(entity_type: EntityType) -> set[str] | None:
    """The top-level fields the type's schema declares, or None if it does not close them
    (`additionalProperties: false`): an open schema's entities may carry any field."""
    schema = entity_type.schema or {}
    if (
        not isinstance(schema, dict)
        or not isinstance(schema.get("properties"), dict)
        or schema.get("additionalProperties", True) is not False
    ):
        return None
    return set(schema["properties"])


def _trigger_problems(trigger, where: str, known: set[str] | None) -> list[FieldError]:
    if not isinstance(trigger, dict):
        return [FieldError(where, "Must be an object with `on`.")]
    on = trigger.get("on")
    if on not in TRIGGER_ON:
        return [
            FieldError(
                f"{where}.on",
                f"Unknown trigger {on!r}. Use one of: {', '.join(TRIGGER_ON)}."
                if on is not None
                else "This field is required.",
                "unknown_trigger" if on is not None else "required",
            )
        ]
    found = [
        FieldError(f"{where}.{key}", "Unknown field.", "unknown_field")
        for key in trigger
        if key not in KEYS[on]
    ]
    if on == "entity.updated" and "fields" in trigger:
        fields = trigger["fields"]
        if (
            not isinstance(fields, list)
            or not 1 <= len(fields) <= MAX_WATCHED_FIELDS
            or not all(isinstance(f, str) and f for f in fields)
        ):
            found.append(
                FieldError(
                    f"{where}.fields",
                    f"Must be a list of 1 to {MAX_WATCHED_FIELDS} field names.",
                )
            )
        elif too_long := [i for i, f in enumerate(fields) if len(f) > MAX_FIELD_NAME_LENGTH]:
            found.append(
                FieldError(
                    f"{where}.fields[{too_long[0]}]",
                    f"A field name has at most {MAX_FIELD_NAME_LENGTH} characters.",
                    "max_length",
                )
            )
        else:
            found += [
                FieldError(
                    f"{where}.fields[{index}]",
                    _nested_message(name)
                    if "." in name
                    else f"The entity type's schema has no field {name!r}.",
                    "unknown_field",
                )
                for index, name in enumerate(fields)
                if (known is None and "." in name) or (known is not None and name not in known)
            ]
    if on == "schedule":
        found += _schedule_problems(trigger, where)
    return found


def _nested_message(name: str) -> str:
    """Why a watched field named as a path is refused (a trigger compares whole top-level
    keys: no key named so ever changes, and the trigger would never fire)."""
    top = name.split(".")[0]
    return (
        f"A trigger watches top-level fields, and {name!r} names a nested one: watch `{top}` "
        "(a change anywhere inside it)."
    )


def beat_runs(cron: str) -> bool:
    """Whether celery beat's crontab parses the (croniter-valid) expression: croniter also
    takes extensions beat has not (`L`, `#`, `?`, weekday 7)."""
    minute, hour, day_of_month, month_of_year, day_of_week = cron.split()
    if "#" in day_of_week:
        # Beat reads a weekday name by its first three letters: `mon#2` (croniter: the second
        # Monday) is every Monday to beat, and each fire between would start a run.
        return False
    try:
        crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except ValueError:
        return False
    return True


@cache
def _zones() -> frozenset[str]:
    """The IANA zone names known here (the system's and the tzdata package's, which
    django-celery-beat requires, so beat knows them too). Looking a name up rather than
    opening it refuses
    what `ZoneInfo` would open but is no zone name: a folder of the database ("Europe"), a
    path, `posix/...` and `right/...` copies, `posixrules`. `localtime`, which some systems
    list, is the zone of whichever machine reads it: beat's and a worker's may differ."""
    return frozenset(zoneinfo.available_timezones()) - {"localtime"}


_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("weekday", "0-6 or sun-sat"),
)


def _cron_field_problem(fields: list[str]) -> str:
    """Which of a 5-field cron's fields croniter refuses, and what that field takes."""
    for index, (name, allowed) in enumerate(_CRON_FIELDS):
        alone = ["*"] * 5
        alone[index] = fields[index]
        if not croniter.is_valid(" ".join(alone)):
            return (
                f"Its {name} field `{fields[index]}` is not valid: it takes {allowed}, with "
                "ranges (`1-5`), lists (`1,3`) and steps (`*/15`)."
            )
    return "Not a valid cron expression (minute hour day month weekday), such as `0 3 * * *`."


# Each field's whole range, as beat's crontab expands `*` (weekdays 0-6, Sunday 0).
_WHOLE = (range(0, 60), range(0, 24), range(1, 32), range(1, 13), range(0, 7))


def _read_apart(cron: str) -> str | None:
    """The first field of the (beat-valid) cron that beat's crontab and croniter expand to
    different values, or None. Beat fires the cron; croniter works out which tick a fire is
    for (`jobs.schedules.schedule_tick`): where they disagree, fires map to ticks beat never
    fires, and two fires to one tick start one run between them. They do on odd spellings:
    croniter reads `26-26` as `*`, and wraps a stepped range (`6-3/2`) its own way."""
    minute, hour, day_of_month, month_of_year, day_of_week = parts = cron.split()
    beat = crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )
    beats = (beat.minute, beat.hour, beat.day_of_month, beat.month_of_year, beat.day_of_week)
    for index, values in enumerate(croniter(cron).expanded):
        read = set(_WHOLE[index]) if values == ["*"] else set(values)
        if index == 4:
            read = {0 if value == 7 else value for value in read}  # Sunday as 7
        if read != set(beats[index]):
            return f"{_CRON_FIELDS[index][0]} field `{parts[index]}`"
    return None


def _schedule_problems(trigger: dict, where: str) -> list[FieldError]:
    found = []
    cron = trigger.get("cron")
    if cron is None:
        found.append(FieldError(f"{where}.cron", "This field is required.", "required"))
    elif isinstance(cron, str) and (too_long := _cron_too_long(cron)):
        found.append(FieldError(f"{where}.cron", too_long, "max_length"))
    elif not isinstance(cron, str) or len(cron.split()) != 5:
        found.append(
            FieldError(
                f"{where}.cron",
                "Must be a cron expression of 5 fields (minute hour day month weekday), "
                "such as `0 3 * * *`.",
            )
        )
    elif not croniter.is_valid(cron):
        found.append(FieldError(f"{where}.cron", _cron_field_problem(cron.split())))
    elif not beat_runs(cron):
        found.append(
            FieldError(
                f"{where}.cron",
                "Beat cannot run this cron: use numbers, ranges, lists, steps and names "
                "(weekdays 0-6, Sunday 0), without `L`, `W`, `#` or `?`.",
            )
        )
    elif apart := _read_apart(cron):
        found.append(
            FieldError(
                f"{where}.cron",
                f"Its {apart} is read one way by beat, which fires the schedule, and "
                "another by croniter, which names each fire's tick, so runs would be lost: "
                "write it with single values, lists, ranges and steps (`3` rather than `3-3`; "
                "a range that wraps past the end without a step, or as a list).",
            )
        )
    timezone = trigger.get("timezone")
    longest = CrontabSchedule._meta.get_field("timezone").max_length
    if isinstance(timezone, str) and len(timezone) > longest:
        found.append(
            FieldError(
                f"{where}.timezone",
                f"Has at most {longest} characters (an IANA name).",
                "max_length",
            )
        )
    elif timezone is not None and (not isinstance(timezone, str) or timezone not in _zones()):
        found.append(
            FieldError(f"{where}.timezone", f"Unknown time zone {timezone!r} (use an IANA name).")
        )
    if "filter" in trigger:
        try:
            entity_filter_clean(trigger["filter"], path=f"{where}.filter")
        except InvalidInput as exc:
            found += exc.details
    return found


def _cron_too_long(cron: str) -> str | None:
    """Why the cron is longer than what stores it, or None."""
    if len(cron) > CRON_MAX_LENGTH:
        return f"Has at most {CRON_MAX_LENGTH} characters."
    for name, part in zip(CRON_PARTS, cron.split(), strict=False):
        longest = CrontabSchedule._meta.get_field(name).max_length
        if len(part) > longest:
            return f"Its {name.replace('_', ' ')} part has at most {longest} characters."
    return None


def schedule_key(trigger: dict) -> tuple[str, str, str]:
    """What makes two schedule triggers the same schedule: their cron (spacing aside), time
    zone (UTC when not given) and filter (key order aside)."""
    return (
        " ".join(trigger["cron"].split()),
        trigger.get("timezone") or "UTC",
        json.dumps(trigger.get("filter") or {}, sort_keys=True),
    )


def _duplicate_problems(triggers: list[dict]) -> list[FieldError]:
    """A schedule alike an earlier one (the cleaned triggers, in order)."""
    first: dict[tuple, int] = {}
    found = []
    for index, trigger in enumerate(triggers):
        if trigger.get("on") != "schedule":
            continue
        key = schedule_key(trigger)
        if key in first:
            found.append(
                FieldError(
                    f"triggers[{index}]",
                    f"The same schedule as triggers[{first[key]}] (cron, time zone and filter): "
                    "it would start the same run twice.",
                    "duplicate",
                )
            )
        else:
            first[key] = index
    return found


def triggers_clean(triggers, entity_type: EntityType) -> list[dict]:
    """The triggers as stored, or InvalidInput naming every problem by its path."""
    if triggers is None:
        return []
    if not isinstance(triggers, list) or len(triggers) > MAX_TRIGGERS:
        message = f"Must be a list of at most {MAX_TRIGGERS} triggers."
        raise InvalidInput(f"triggers: {message}", details=[FieldError("triggers", message)])
    known = _known_fields(entity_type)
    problems = [
        p
        for index, trigger in enumerate(triggers)
        for p in _trigger_problems(trigger, f"triggers[{index}]", known)
    ]
    if problems:
        _raise(problems)
    cleaned = []
    for trigger in triggers:
        trigger = dict(trigger)
        if "filter" in trigger:
            trigger["filter"] = entity_filter_clean(trigger["filter"])
        cleaned.append(trigger)
    if problems := _duplicate_problems(cleaned):
        _raise(problems)
    return cleaned


def _raise(problems: list[FieldError]):
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise InvalidInput(f"{first.field}: {first.message}{more}", details=problems)
