"""A page for the one error Django answers with an empty body in the browser: 405."""

from __future__ import annotations

from django.template.loader import render_to_string


class MethodNotAllowedPage:
    """A GET of a POST-only page (a bookmarked 'cancel' URL) shows a page, not a blank one.

    The API keeps its own JSON answers; only empty 405 responses of pages are filled in.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code == 405
            and not response.content
            and not request.path_info.startswith("/api/")
        ):
            response.content = render_to_string(
                "405.html", {"allowed": response.get("Allow", "")}, request=request
            )
            response["Content-Type"] = "text/html; charset=utf-8"
        return response
