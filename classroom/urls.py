"""Classroom routes; ``api_urlpatterns`` hang under ``/api/`` beside the flows API."""

from django.urls import path

from . import views

urlpatterns = [
    path("classroom/", views.instructor_link, name="classroom"),
    path("join/<str:code>/", views.join_page, name="join-page"),
]

api_urlpatterns = [
    path("rooms/", views.rooms_api, name="rooms"),
    path("rooms/<str:code>/", views.room_detail, name="room-detail"),
]
