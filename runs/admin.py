from django.contrib import admin

from runs.models import ApiToken, Run, RunConfig, Suite, TestResult, TestStat, WorkerStat


class RunConfigInline(admin.TabularInline):
    model = RunConfig
    extra = 0


@admin.register(Suite)
class SuiteAdmin(admin.ModelAdmin):
    list_display = ["name", "path", "python", "created_at"]
    search_fields = ["name", "path", "description"]
    inlines = [RunConfigInline]


@admin.register(RunConfig)
class RunConfigAdmin(admin.ModelAdmin):
    list_display = ["suite", "name", "workers", "engine", "dist", "repeat", "reruns", "is_default"]
    list_filter = ["engine", "dist"]
    search_fields = ["name", "suite__name"]


class WorkerStatInline(admin.TabularInline):
    model = WorkerStat
    extra = 0
    readonly_fields = ["worker", "tests", "busy_seconds", "first_start", "last_stop", "crashed"]
    exclude = ["current_test"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "suite",
        "status",
        "trigger",
        "workers",
        "wall_seconds",
        "speedup",
        "created_at",
    ]
    list_filter = ["status", "trigger", "suite"]
    search_fields = ["id", "suite__name", "commit", "branch"]
    date_hierarchy = "created_at"
    list_select_related = ["suite"]
    raw_id_fields = ["config", "user"]
    inlines = [WorkerStatInline]


@admin.register(TestResult)
class TestResultAdmin(admin.ModelAdmin):
    list_display = ["nodeid", "run", "worker", "outcome", "attempt", "duration"]
    list_filter = ["outcome"]
    search_fields = ["nodeid"]
    raw_id_fields = ["run"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "created_at", "last_used_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "hashed", "created_at", "last_used_at"]


@admin.register(TestStat)
class TestStatAdmin(admin.ModelAdmin):
    list_display = ["nodeid", "suite", "runs_seen", "flip_count", "fail_rate", "quarantined"]
    list_filter = ["quarantined", "suite"]
    search_fields = ["nodeid"]
    raw_id_fields = ["last_run", "last_flip_run", "quarantined_by"]
    readonly_fields = ["recent", "commits", "by_workers", "by_worker_id"]
