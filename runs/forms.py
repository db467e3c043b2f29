from __future__ import annotations

import json

from django import forms

from runs.models import DIST_MODES, ENGINES, MAX_WORKERS, RunConfig, Suite
from runs.services import LaunchError, Overrides


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


class SuiteForm(forms.ModelForm):
    pytest_args = JSONTextField(kind=list, help_text='e.g. ["-x", "--tb=short"]')
    env = JSONTextField(kind=dict, help_text='e.g. {"API_URL": "http://127.0.0.1:8080"}')

    class Meta:
        model = Suite
        fields = ["name", "path", "python", "pytest_args", "env", "description"]


class RunConfigForm(forms.ModelForm):
    class Meta:
        model = RunConfig
        fields = ["workers", "engine", "dist", "repeat", "reruns", "timeout", "keyword", "markers"]


class LaunchForm(forms.Form):
    """Choose a configuration and optionally override its options for one run."""

    config = forms.ModelChoiceField(queryset=RunConfig.objects.none(), empty_label=None)
    workers = forms.CharField(
        required=False, max_length=4, help_text=f"1-{MAX_WORKERS} or 'auto'; empty: as configured"
    )
    engine = forms.ChoiceField(choices=[("", "as configured"), *ENGINES], required=False)
    dist = forms.ChoiceField(choices=[("", "as configured"), *DIST_MODES], required=False)
    repeat = forms.IntegerField(required=False, min_value=1, max_value=1000)
    reruns = forms.IntegerField(required=False, min_value=0, max_value=20)
    timeout = forms.IntegerField(required=False, min_value=1, label="Timeout (s)")
    keyword = forms.CharField(required=False, max_length=500, label="-k")
    markers = forms.CharField(required=False, max_length=500, label="-m")

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

    def overrides(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "config" and v not in ("", None)}
