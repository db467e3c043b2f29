from django.urls import path

from runs.live import consumers

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", consumers.RunConsumer.as_asgi()),
]
