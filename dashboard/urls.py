from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.urls import include, path

from runs.api import api


def api_root(request, **kwargs):
    """/api/ itself is no resource: a JSON 404 like the API's others (ninja's is a page)."""
    return JsonResponse({"detail": "Not Found: the API's operations are at /api/docs"}, status=404)


def api_urls():
    """The API authenticates by token or session itself: exempt it from the login redirect."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if pattern.name == "api-root":
            pattern.callback = api_root
        pattern.callback = login_not_required(pattern.callback)
    return patterns, app_name, namespace


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", api_urls()),
    path("", include("runs.urls")),
]
