from __future__ import annotations

import json

from django import forms

from runner import options
from runner.options import LOAD_ONLY
from runs.execution.launch import Overrides, clean_option
from runs.execution.pytest_input import LaunchError
from runs.load import thresholds
from runs.models import DIST_MODES, ENGINES, MAX_WORKERS, RunConfig, Suite
from runs.models.suites import MODES

# Load mode's options (issue #16): optional in the forms, the model's defaults when empty.
LOAD_FIELDS = ["mode", "users", "spawn_rate", "duration", "iterations", "think_time", "thresholds"]
THRESHOLDS_HELP = "One per line, e.g. p95<300ms, errors<1%, rps>200, GET /items/{id}: p99<1s abort"


class ThresholdsField(forms.CharField):
    """Load thresholds edited one per line, checked by runs.load.thresholds."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3}))
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", THRESHOLDS_HELP)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        if isinstance(value, list):
            value = "\n".join(value)
        try:
            return thresholds.clean(value or "")
        except thresholds.ThresholdError as exc:
            raise forms.ValidationError(str(exc)) from None


class JSONTextField(forms.CharField):
    """A JSON value edited as text."""

    def __init__(self, *args, kind=list, **kwargs):
        self.kind = kind
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3}))
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | dict):
            return json.dumps(value)
        return value

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return self.kind()
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg}.") from None
        if not isinstance(parsed, self.kind):
            raise forms.ValidationError(f"Give a JSON {self.kind.__name__}.")
        return parsed


class StackedForm(forms.ModelForm):
    """Rendered with as_div in a ``form.stacked`` (see ptd.css): no colon after labels."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SuiteForm(StackedForm):
    pytest_args = JSONTextField(kind=list, help_text='e.g. ["-x", "--tb=short"]')
    env = JSONTextField(kind=dict, help_text='e.g. {"API_URL": "http://127.0.0.1:8080"}')

    class Meta:
        model = Suite
        fields = ["name", "path", "python", "pytest_args", "env", "description"]


class RunConfigForm(StackedForm):
    thresholds = ThresholdsField()

    class Meta:
        model = RunConfig
        fields = [
            "workers", "engine", "dist", "repeat", "reruns", "timeout", "keyword", "markers",
            "capture_passed", *LOAD_FIELDS, "machines", "queue",
        ]  # fmt: skip
        labels = {
            "mode": "Mode",
            "spawn_rate": "Spawn rate (users/s)",
            "duration": "Duration (s)",
            "iterations": "Iterations per user",
            "think_time": "Think time (s)",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in LOAD_FIELDS:
            self.fields[name].required = False
        self.fields["machines"].required = False  # empty: 1, a run on this server

    def clean_machines(self):
        value = self.cleaned_data.get("machines")
        return 1 if value is None else value

    def clean(self):
        data = super().clean()
        for name in LOAD_FIELDS:  # left empty: the model's default (a run of tests)
            default = RunConfig._meta.get_field(name).get_default()
            if data.get(name) in (None, "") and default is not None:
                data[name] = default
        # The launch's own checks (bounds, -k/-m grammar, thresholds): saved, it runs. The
        # model's validators know only part of it (a timeout of 10^13 s once saved, and ran
        # with no timeout at all).
        load = data.get("mode") == "load"
        for name in options.NAMES:
            value = data.get(name)
            if name not in self.fields or name in self.errors or value in (None, "", []):
                continue
            if name in options.LOAD_ONLY and not load:  # kept for when it runs as a load
                continue
            try:
                clean_option(name, options.as_given(name, value))
            except LaunchError as exc:
                self.add_error(name, exc.message)
        return data


class NamedRunConfigForm(RunConfigForm):
    """A suite's configuration of its own (name, default flag and options)."""

    class Meta(RunConfigForm.Meta):
        fields = ["name", "is_default", *RunConfigForm.Meta.fields]
        labels = {"is_default": "Default for this suite"}

    def __init__(self, suite: Suite, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.suite = suite

    def clean_name(self):
        # (suite, name) is unique, but suite is not a field here: the model form cannot tell.
        name = self.cleaned_data["name"]
        clash = self.suite.configs.filter(name=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"{self.suite.name} already has a configuration {name!r}.")
        return name

    def clean_is_default(self):
        if self.instance.pk and self.instance.is_default and not self.cleaned_data["is_default"]:
            raise forms.ValidationError("Make another configuration the default instead.")
        return self.cleaned_data["is_default"]


class LaunchForm(forms.Form):
    """Choose a configuration and optionally override its options for one run."""

    config = forms.ModelChoiceField(queryset=RunConfig.objects.none(), empty_label=None)
    # No max_length: the browser would cut "100000" to "1000" silently; clean_workers says why.
    workers = forms.CharField(
        required=False, help_text=f"1-{MAX_WORKERS} or 'auto'; empty: as configured"
    )
    engine = forms.ChoiceField(choices=[("", "as configured"), *ENGINES], required=False)
    dist = forms.ChoiceField(choices=[("", "as configured"), *DIST_MODES], required=False)
    repeat = forms.IntegerField(required=False, min_value=1, max_value=1000)
    reruns = forms.IntegerField(required=False, min_value=0, max_value=20)
    timeout = forms.IntegerField(required=False, min_value=1, label="Timeout (s)")
    keyword = forms.CharField(required=False, max_length=500, label="-k")
    markers = forms.CharField(required=False, max_length=500, label="-m")
    capture_passed = forms.TypedChoiceField(
        choices=[("", "as configured"), ("yes", "yes"), ("no", "no")],
        coerce=lambda v: v == "yes",
        empty_value=None,
        required=False,
        label="Passing tests' output",
        help_text="keep what passing tests print too (like -rP)",
    )
    mode = forms.ChoiceField(choices=[("", "as configured"), *MODES], required=False)
    users = forms.IntegerField(required=False, min_value=1, max_value=1000, label="Users")
    spawn_rate = forms.FloatField(required=False, min_value=0.01, label="Spawn rate (users/s)")
    duration = forms.IntegerField(required=False, min_value=1, label="Duration (s)")
    iterations = forms.IntegerField(required=False, min_value=1, label="Iterations per user")
    think_time = forms.FloatField(required=False, min_value=0, label="Think time (s)")
    thresholds = ThresholdsField(help_text=THRESHOLDS_HELP + "; empty: as configured")
    machines = forms.CharField(
        required=False, help_text="agents to spread the run over, or 'all'; empty: as configured"
    )
    queue = forms.CharField(required=False, max_length=40, help_text="the agents' queue")

    def __init__(self, suite: Suite, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.suite = suite
        self.fields["config"].queryset = suite.configs.all()

    def clean_workers(self):
        value = self.cleaned_data["workers"].strip()
        if value and value.lower() != "auto":
            try:
                Overrides.clean({"workers": value})
            except LaunchError as exc:
                raise forms.ValidationError(exc.message) from None
        return value

    def clean_machines(self):
        return self._option("machines")

    def clean_queue(self):
        return self._option("queue")

    def _option(self, name: str) -> str:
        value = self.cleaned_data[name].strip()
        if value:
            try:
                Overrides.clean({name: value})
            except LaunchError as exc:
                raise forms.ValidationError(exc.message) from None
        return value

    def overrides(self) -> dict:
        return {
            k: v for k, v in self.cleaned_data.items() if k != "config" and v not in ("", None, [])
        }

    def sections(self) -> list[tuple[str, list, bool]]:
        """(title, fields, open) as the page shows them: the options of every run, then the
        load's and the machines' in sections of their own, closed unless the user filled one
        in or one has an error (a "tests" run never needs them)."""
        load = set(LOAD_ONLY)
        machines = {"machines", "queue"}
        groups: dict[str, list] = {"": [], "Load mode": [], "Machines (agents)": []}
        for field in self:
            title = "Load mode" if field.name in load else (
                "Machines (agents)" if field.name in machines else "")  # fmt: skip
            groups[title].append(field)
        return [(title, fields, not title or _filled(fields)) for title, fields in groups.items()]


def _filled(fields: list) -> bool:
    return any(f.errors or f.value() not in (None, "", []) for f in fields)
