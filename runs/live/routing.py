from django.urls import path, re_path

from runs.live import consumers

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", consumers.RunConsumer.as_asgi()),
    # Any other path (/ws/runs/abc/, /ws/runs/-1/): closed with 4404, not a 500 and a
    # traceback (Channels' router raises when no route matches).
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]
