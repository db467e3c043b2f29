"""A base test case with the three kinds of users every permission test needs."""

from django.contrib.auth import get_user_model
from django.test import TestCase

from runs.models import RunConfig, Suite
from tests.factories import DEMO_DIR


class BaseTestCase(TestCase):
    """staff (owner of suites), member (logged-in user), outsider (not logged in)."""

    @classmethod
    def setUpTestData(cls):
        User = get_user_model()
        cls.staff = User.objects.create_user("alice", password="pw-alice-1234", is_staff=True)
        cls.member = User.objects.create_user("bob", password="pw-bob-1234")
        cls.suite = Suite.objects.create(name="demo", path=str(DEMO_DIR), created_by=cls.staff)
        cls.config = RunConfig.objects.create(suite=cls.suite, name="default", is_default=True)

    def login_staff(self):
        self.client.force_login(self.staff)

    def login_member(self):
        self.client.force_login(self.member)
