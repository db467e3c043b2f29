from __future__ import annotations

import json

from django import forms

from runs.execution.launch import Overrides
from runs.execution.pytest_input import LaunchError, check_expression
from runs.models import DIST_MODES, ENGINES, MAX_WORKERS, RunConfig, Suite


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
    class Meta:
        model = RunConfig
        fields = [
            "workers", "engine", "dist", "repeat", "reruns", "timeout", "keyword", "markers",
            "machines", "queue",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["machines"].required = False  # empty: 1, a run on this server

    def clean_machines(self):
        value = self.cleaned_data.get("machines")
        return 1 if value is None else value


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

    def clean_keyword(self):
        return self._expression("keyword")

    def clean_markers(self):
        return self._expression("markers")

    def _expression(self, field: str) -> str:
        value = self.cleaned_data[field]
        if value:
            try:
                check_expression(field, value)
            except LaunchError as exc:
                raise forms.ValidationError(exc.message) from None
        return value

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
        return {k: v for k, v in self.cleaned_data.items() if k != "config" and v not in ("", None)}
