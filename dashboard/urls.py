from django.urls import include, path

from classroom.urls import api_urlpatterns as classroom_api

from . import views

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("workflows/<slug:slug>/", views.workflow_page, name="workflow-page"),
    path("lessons/", views.lessons_page, name="lessons-page"),
    path("lessons/<slug:slug>/", views.lesson_page, name="lesson-page"),
    path("runs/", views.runs_page, name="runs-page"),
    path("runs/<int:run_id>/", views.run_page, name="run-page"),
    path("api/", include("flows.urls")),
    path("api/", include(classroom_api)),
    path("", include("classroom.urls")),
]

handler404 = "dashboard.views.not_found"
handler500 = "dashboard.views.server_error"
