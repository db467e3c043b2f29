import gc

from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Test runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # manage.py turns the garbage collector off while Django starts: importing it and
        # building the app registry makes ~200,000 objects that all live as long as the
        # process, and collecting among them found nothing but cost every command ~50 ms
        # (run_suite in CI above all). This app is the last one made ready: what start-up
        # made is set aside for good (gc.freeze), and collecting resumes for what follows.
        if not gc.isenabled():
            gc.freeze()
            gc.enable()
