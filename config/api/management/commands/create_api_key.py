from django.core.management.base import BaseCommand

from config.api.services import api_key_create, api_user_get_or_create


class Command(BaseCommand):
    help = (
        "Create an API key for USERNAME (creating the user if needed) and print only the key. "
        "A user created here may do everything through the API, or only read with --read-only."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--read-only", action="store_true", help="The key can only read.")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, *args, username, read_only, name, **options):
        user = api_user_get_or_create(username=username, read_only=read_only)
        _, raw_key = api_key_create(
            user=user, name=name or "created by manage.py", read_only=read_only
        )
        self.stdout.write(raw_key)
