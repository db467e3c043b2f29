"""Issue #17: a run that hit its timeout is `timed_out` (it was `error`, "Timed out after ...");
runs that did not run their tests to their end keep no speedup, efficiency or measured speedup."""

from django.db import migrations, models

WITHHELD = ("cancelled", "timed_out", "error", "interrupted")


def forwards(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    Run.objects.filter(status="error", message__startswith="Timed out after").update(
        status="timed_out"
    )
    no_figures = dict.fromkeys(("speedup", "efficiency", "speedup_measured"))
    Run.objects.filter(status__in=WITHHELD).update(**no_figures)
    Run.objects.filter(tests_total__lte=models.F("tests_skipped")).update(**no_figures)


def backwards(apps, schema_editor):
    apps.get_model("runs", "Run").objects.filter(status="timed_out").update(status="error")


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0011_load"),
    ]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("passed", "Passed"),
                    ("failed", "Failed"),
                    ("error", "Error"),
                    ("cancelled", "Cancelled"),
                    ("timed_out", "timed out"),
                    ("interrupted", "Interrupted"),
                ],
                default="queued",
                max_length=12,
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
