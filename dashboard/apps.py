"""App configurations of the project itself (not of the `runs` app)."""

from django.contrib.staticfiles.apps import StaticFilesConfig as DjangoStaticFilesConfig


class StaticFilesConfig(DjangoStaticFilesConfig):
    """Static files, without the parts of plotly's and ninja's packages that no page loads
    (plotly's datasets, templates and Jupyter widget bundle, ninja's ReDoc):
    `serve` collects and compresses what is left at every start."""

    ignore_patterns = [
        *DjangoStaticFilesConfig.ignore_patterns,
        "datasets",
        "templates",
        "widgetbundle.js",
        "redoc.standalone.js",
    ]
