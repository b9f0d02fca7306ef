from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from entities.data_search import DataIContains


class EntityType(models.Model):
    """A kind of record (product, article, listing) with an optional JSON Schema for its data."""

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("ety"), editable=False
    )
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    schema = models.JSONField(
        null=True, blank=True, help_text="A JSON Schema every entity's data must satisfy."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class Entity(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        PUBLISHED = "published"

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("ent"), editable=False
    )
    # Indexed by `entity_type_newest` (its first column): no index of its own to update.
    entity_type = models.ForeignKey(
        EntityType, on_delete=models.PROTECT, related_name="entities", db_index=False
    )
    data = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    version = models.PositiveIntegerField(default=1, editable=False)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "entities"
        indexes = [
            models.Index(fields=["entity_type", "-id"], name="entity_type_newest"),
            models.Index(fields=["status", "-id"], name="entity_status_newest"),
        ]

    def __str__(self) -> str:
        return self.id


# `data__icontains` reads the data as its text reads on both engines (entities/data_search.py).
Entity._meta.get_field("data").register_lookup(DataIContains)


class EntityEvent(models.Model):
    """The outbox of entity changes: written in the transaction of the change (so a crash
    cannot separate them), one row per write of a batch of entities, read and deleted by the
    layer above (`jobs.triggers`), which starts the runs of workflow triggers."""

    class Kind(models.TextChoices):
        CREATED = "entity.created"
        UPDATED = "entity.updated"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    entity_type_id = models.CharField(max_length=ID_LENGTH)
    entity_ids = models.JSONField(help_text="The entities changed alike by one write.")
    # len(entity_ids): the dispatch takes events up to RUN_MAX_IDS entities without loading
    # the ids of those it leaves for the next.
    # db_default: a process still on the code before this column (a rolling deploy) writes
    # events without it.
    size = models.PositiveIntegerField(default=1, db_default=1)
    fields = models.JSONField(default=list, help_text="The top-level data keys changed.")
    # Set when a run made the change: its workflow does not trigger itself on it, and a
    # chain of triggered runs is cut at TRIGGER_MAX_DEPTH.
    origin_workflow_id = models.CharField(max_length=ID_LENGTH, blank=True)
    depth = models.PositiveSmallIntegerField(default=0)
    # The run that made the change (blank: a person): a chain cut at TRIGGER_MAX_DEPTH says
    # so in that run's log. db_default: a process on the code before it writes events too.
    origin_run_id = models.CharField(max_length=ID_LENGTH, blank=True, default="", db_default="")
    # Those that heard the change when it was made (the layer above's workflows whose
    # triggers it met then; one alone for a change held back for it): only they may act on
    # it. Null: recorded before this was kept (anyone).
    listener_ids = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.kind} x{len(self.entity_ids)}"


class EntityRevision(models.Model):
    """One version of an entity: what changed (each top-level data key changed, its value
    before and after; status and publishedAt when they changed), when and by whom. Not a
    copy of the entity: an older version is the current one with the changes of the newer
    revisions undone (`entities.revisions`)."""

    class Source(models.TextChoices):
        API = "api"
        ADMIN = "admin"
        RUN = "run"
        REVIEW = "review"
        RESTORE = "restore"
        REVERT = "revert"

    id = models.BigAutoField(primary_key=True)
    # Indexed by `entity_revision_version` (its first column). Not checked by the database:
    # revisions are written only with their entity's new version, in the statement that
    # writes it, and a checked key costs a trigger per revision at commit, a fifth of what
    # keeping a run's revisions cost. Deleting an entity deletes its revisions all the same
    # (the ORM's cascade, `entities.services.entity_delete`).
    entity = models.ForeignKey(
        Entity,
        on_delete=models.CASCADE,
        related_name="revisions",
        db_index=False,
        db_constraint=False,
    )
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    # Plain ids, not foreign keys: this layer knows nothing of runs, and a revision outlives
    # the run, the user or the key that made it.
    run_id = models.CharField(max_length=ID_LENGTH, blank=True)
    step_id = models.CharField(max_length=200, blank=True)
    user_id = models.CharField(max_length=64, blank=True)
    api_key_id = models.CharField(max_length=ID_LENGTH, blank=True)
    # [{"field": "data.<key>" | "status" | "publishedAt", "before"?, "after"?}]: a missing
    # "before" (or "after") means the key was absent.
    changes = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entity", "version"], name="entity_revision_version")
        ]
        indexes = [
            # The entities a run changed, in entity order (reverting it reads them in batches).
            models.Index(
                fields=["run_id", "entity"],
                condition=~models.Q(run_id=""),
                name="entity_revision_run",
            )
        ]

    def __str__(self) -> str:
        return f"{self.entity_id} v{self.version}"
