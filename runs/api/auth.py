"""Who calls the API: a bearer token or the browser session (with CSRF), and who reads its docs."""

import json
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from ninja import NinjaAPI
from ninja.openapi.docs import Swagger
from ninja.security import HttpBearer, SessionAuth

from runs import permissions
from runs.models import ApiToken


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        found = ApiToken.objects.authenticate(token)
        if found is None or not permissions.can_view(found.user):
            return None
        found.touch()
        request.user = found.user
        return found.user


class ActiveSession(SessionAuth):
    def _get_key(self, request: HttpRequest):
        # No session cookie: nothing to check CSRF for; a bad or missing token stays a 401.
        if self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key):
        user = super().authenticate(request, key)
        return user if permissions.can_view(user) else None


def docs_login_required(view):
    """The schema and docs page are for users too: a session or a valid bearer token (CI tools
    such as schemathesis load the schema with the token). Else the login page, or a 401 for
    the JSON schema."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            header = request.headers.get("Authorization", "")
            scheme, _, raw = header.partition(" ")
            bearer = scheme.lower() == "bearer"
            if not bearer or ApiToken.objects.authenticate(raw.strip()) is None:
                if request.path.endswith(".json"):
                    return JsonResponse({"detail": "Unauthorized"}, status=401)
                return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


class LocalSwagger(Swagger):
    """ninja's Swagger page, always from its local template and static files (settings).

    ninja falls back to a CDN unless "ninja" is in INSTALLED_APPS; it is not, because importing
    it there would cost every command (run_suite in CI above all) ~0.3 s of start-up.
    """

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {
            "swagger_settings": json.dumps(self.settings, indent=1),
            "api": api,
            "add_csrf": True,  # session auth is one of the API's authentications
        }
        return render(request, self.template, context)
