"""The error answers Django would give in the wrong shape: a JSON body for every error under
/api/, a page for the pages' empty ones, and a 400 for a NUL character in an address."""

from __future__ import annotations

from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

API = "/api/"
API_DETAIL = {
    404: "Not Found: the API's operations are at /api/docs",
    405: "Method not allowed",
}


def _nul_in(request) -> str | None:
    """Where the address holds a NUL character (the path, or a query parameter), or None."""
    if "\x00" in request.path_info:
        return "the path"
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            return f"the query parameter {key.replace(chr(0), '?')!r}"
    return None


class ErrorBodies:
    """Every client gets its errors in the form it reads.

    - An address (path or query string) holding NUL is refused with a 400 before any view
      runs: PostgreSQL refuses NUL in text, so a lookup by such a name or filter failed with
      a 500 (SQLite merely found nothing).
    - Under /api/, an error Django made (an unknown address, a wrong method, too many query
      parameters, a server error) is JSON ``{"detail": ...}`` like every API error, not an
      HTML page.
    - A page's 405 (a bookmarked "cancel" URL: Django answers with an empty body) shows a
      page saying to use the button.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        api = request.path_info.startswith(API)
        try:
            where = _nul_in(request)
        except SuspiciousOperation as exc:  # e.g. too many query parameters: Django's 400
            if api:
                return JsonResponse({"detail": f"bad request: {exc}"}, status=400)
            raise
        if where:
            problem = f"{where} holds a NUL character (%00)"
            if api:
                return JsonResponse({"detail": problem}, status=400)
            return self._page(request, "400.html", {"problem": problem}, 400)
        response = self.get_response(request)
        status = response.status_code
        if api and status >= 400 and not _is_json(response):
            detail = API_DETAIL.get(status) or response.reason_phrase
            body = JsonResponse({"detail": detail}, status=status)
            if response.has_header("Allow"):
                body["Allow"] = response["Allow"]
            return body
        if status == 405 and not api and not response.content:
            response.content = render_to_string(
                "405.html", {"allowed": response.get("Allow", "")}, request=request
            )
            response["Content-Type"] = "text/html; charset=utf-8"
        return response

    @staticmethod
    def _page(request, template, context, status):
        return HttpResponse(render_to_string(template, context, request=request), status=status)


def _is_json(response) -> bool:
    return response.get("Content-Type", "").startswith("application/json")
