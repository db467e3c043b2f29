"""Issue #12: API tokens that older ingestion plugins uploaded with the pytest command line
(``--ptd-token ptd_...``) are redacted from the runs' stored configuration (its arguments),
which every logged-in user could see."""

from django.db import migrations

from runs.models import redact_tokens


def redact(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    for run in Run.objects.only("id", "config_snapshot").iterator(chunk_size=500):
        clean = redact_tokens(run.config_snapshot)
        if clean != run.config_snapshot:
            Run.objects.filter(pk=run.pk).update(config_snapshot=clean)


class Migration(migrations.Migration):
    dependencies = [("runs", "0005_suite_names_and_log_cut")]

    operations = [migrations.RunPython(redact, migrations.RunPython.noop)]
