import pytest


@pytest.fixture
def staff(client, django_user_model):
    django_user_model.objects.create_superuser("staff", "s@example.com", "pw-for-tests-1")
    client.login(username="staff", password="pw-for-tests-1")
    return client
