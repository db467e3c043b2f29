"""Run configurations saved with a value no launch takes are brought within its bounds.

The forms once checked only part of the rules (a timeout of 10^13 s was saved and ran with no
timeout at all); every launch now checks a configuration's options as the launch form does
(runs.execution.launch.check_selection), which would refuse such a configuration, and a run
queued with one would fail at dispatch. The bounds are runner.options' at the time of this
migration, written out: a migration must not change with later code.
"""

from django.db import migrations

BOUNDS = {  # option: (lowest, highest) a launch takes
    "repeat": (1, 1000),
    "reruns": (0, 20),
    "timeout": (1, 7 * 24 * 3600),
    "users": (1, 1000),
    "spawn_rate": (0.01, 1e4),
    "duration": (1, 7 * 24 * 3600),
    "iterations": (1, 10**7),
    "think_time": (0, 3600),
}


def clamped(value, low, high):
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if value != value:  # NaN
        return low
    return min(max(value, low), high)


def clamp(apps, schema_editor):
    RunConfig = apps.get_model("runs", "RunConfig")
    Run = apps.get_model("runs", "Run")
    for config in RunConfig.objects.all().iterator():
        changed = []
        for name, (low, high) in BOUNDS.items():
            value = getattr(config, name)
            if clamped(value, low, high) != value:
                setattr(config, name, clamped(value, low, high))
                changed.append(name)
        if changed:
            config.save(update_fields=changed)
    for run in Run.objects.filter(status="queued").iterator():
        snap = dict(run.config_snapshot or {})
        fixed = {
            name: clamped(snap[name], low, high)
            for name, (low, high) in BOUNDS.items()
            if name in snap
        }
        if any(fixed[name] != snap[name] for name in fixed):
            run.config_snapshot = {**snap, **fixed}
            run.save(update_fields=["config_snapshot"])


class Migration(migrations.Migration):
    dependencies = [("runs", "0014_history_pending")]

    operations = [migrations.RunPython(clamp, migrations.RunPython.noop)]
