from django.core.management.base import BaseCommand, CommandError

from config.api.services import api_key_create, api_user_get_or_create


class Command(BaseCommand):
    help = (
        "Create an API key for USERNAME (creating the user if needed) and print only the key. "
        "A user created here may do everything through the API, only read with --read-only, or "
        "only send events with --events-only."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--read-only", action="store_true", help="The key can only read.")
        parser.add_argument(
            "--events-only",
            action="store_true",
            help="The key may only send and list events (POST /api/v1/events), and a user "
            "created here may do nothing else either.",
        )
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, *args, username, read_only, events_only, name, **options):
        if read_only and events_only:
            raise CommandError("Give --read-only or --events-only, not both.")
        user = api_user_get_or_create(
            username=username, read_only=read_only, events_only=events_only
        )
        _, raw_key = api_key_create(
            user=user,
            name=name or "created by manage.py",
            read_only=read_only,
            events_only=events_only,
        )
        self.stdout.write(raw_key)
